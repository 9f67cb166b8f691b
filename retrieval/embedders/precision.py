"""Which number format the model runs in: fp32, or bf16/fp16 where the hardware does it natively.

``auto`` picks bf16 on CUDA devices that support it (fp16 on older ones), on CPUs with Intel AMX
(about 4x the fp32 ViT-B-32 image throughput), and on CPUs with AVX512-BF16 only where a short
probe finds bf16 matrix products faster than fp32 ones, since that varies by CPU (1.9x the fp32
ingest rate on an AMD EPYC, 0.67x the fp32 encode rate on an Intel Xeon without AMX); else fp32.
bf16 runs open_clip's own mixed precision (``precision='bf16'``: weights of linear and conv
layers in bf16, LayerNorm in fp32), the embeddings come out as fp32 and agree with the fp32 ones
to a cosine of 0.9999 (``tests/unit/test_precision.py``), so one
collection can mix vectors of both.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Final

import torch

from retrieval.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS: Final = ("auto", "fp32", "bf16", "fp16")
# auto takes bf16 on AVX512-BF16 only when it multiplies at least this much faster than fp32
BF16_MIN_SPEEDUP: Final = 1.2


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


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a ViT-B-sized linear layer on this CPU (best of 5; ~0.2 s, once
    per process): above 1, bf16 multiplies faster here."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(400, 768, generator=generator)
    weight = torch.randn(3072, 768, generator=generator)
    best: dict[torch.dtype, float] = {}
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            x, w = inputs.to(dtype), weight.to(dtype)
            torch.nn.functional.linear(x, w)  # warm-up: kernel choice, packing
            times = []
            for _ in range(5):
                started = time.perf_counter()
                torch.nn.functional.linear(x, w)
                times.append(time.perf_counter() - started)
            best[dtype] = min(times)
    return best[torch.float32] / max(best[torch.bfloat16], 1e-9)


def auto_cpu_precision() -> str:
    """bf16 with AMX, or with AVX512-BF16 where the probe finds it faster; else fp32."""
    units = cpu_bf16_units()
    if units == "AMX":
        return "bf16"
    if units == "AVX512-BF16":
        speedup = cpu_bf16_speedup()
        chosen = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
        log.info("precision auto: %s (bf16 matrix products %.2fx fp32 on this CPU)", chosen,
                 speedup)
        return chosen
    return "fp32"


def resolve_precision(precision: str, device: str) -> str:
    """'auto' becomes the fastest exact-enough format for the device; others are validated."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    on_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        if on_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return auto_cpu_precision()
    if precision == "fp16" and not on_cuda:
        raise ConfigError("precision fp16 needs a CUDA device; on a CPU use bf16 or fp32")
    if precision == "bf16" and not on_cuda and not native_cpu_bf16():
        log.warning("this CPU has no native bf16 units: bf16 will be slower than fp32")
    return precision


def input_dtype(precision: str) -> torch.dtype:
    """The dtype image tensors must have for a model created at this precision."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


__all__ = [
    "PRECISIONS", "auto_cpu_precision", "cpu_bf16_speedup", "cpu_bf16_units", "input_dtype",
    "native_cpu_bf16", "resolve_precision",
]
