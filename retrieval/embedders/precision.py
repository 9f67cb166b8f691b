"""Which number format the model runs in: fp32, or bf16/fp16 where the hardware does it natively.

``auto`` picks bf16 on CUDA devices that support it (fp16 on older ones) and on CPUs with native
bf16 matrix units (Intel AMX or AVX512-BF16: about 4x the fp32 ViT-B-32 image throughput
measured here), else fp32. bf16 runs open_clip's own mixed precision (``precision='bf16'``:
weights of linear and conv layers in bf16, LayerNorm in fp32), the embeddings come out as fp32
and agree with the fp32 ones to a cosine of 0.9999 (``tests/unit/test_precision.py``), so one
collection can mix vectors of both.
"""

from __future__ import annotations

import logging
from typing import Final

import torch

from retrieval.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS: Final = ("auto", "fp32", "bf16", "fp16")


def cpu_bf16_units() -> str:
    """This CPU's bf16 matrix units: 'AMX', 'AVX512-BF16', or '' (none, or torch cannot tell)."""
    try:
        capability = torch._C._cpu._get_cpu_capability()
    except (AttributeError, RuntimeError):  # older torch: do not guess
        return ""
    if capability.get("amx_bf16"):
        return "AMX"
    return "AVX512-BF16" if capability.get("avx512_bf16") else ""


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX512-BF16)."""
    return bool(cpu_bf16_units())


def resolve_precision(precision: str, device: str) -> str:
    """'auto' becomes the fastest exact-enough format for the device; others are validated."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    on_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        if on_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if native_cpu_bf16() else "fp32"
    if precision == "fp16" and not on_cuda:
        raise ConfigError("precision fp16 needs a CUDA device; on a CPU use bf16 or fp32")
    if precision == "bf16" and not on_cuda and not native_cpu_bf16():
        log.warning("this CPU has no native bf16 units: bf16 will be slower than fp32")
    return precision


def input_dtype(precision: str) -> torch.dtype:
    """The dtype image tensors must have for a model created at this precision."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


__all__ = ["PRECISIONS", "cpu_bf16_units", "input_dtype", "native_cpu_bf16", "resolve_precision"]
