"""Which number format the model runs in: fp32, or bf16/fp16 where the hardware does it natively.

``auto`` picks bf16 on CUDA devices that support it (fp16 on older ones), and on CPUs whose bf16
units beat fp32, else fp32. Measured with ViT-B-32: Intel AMX about 4x fp32; AVX512-BF16 alone
1.9x on an AMD EPYC (Zen 4) but 0.67x on an Intel Xeon without AMX (16.1 against 23.9 images/s),
so on Intel CPUs AVX512-BF16 alone keeps fp32. The choice depends only on the CPU, never on a
timing, so every process of a server (and every tool of a bench run) picks the same format.
bf16 runs open_clip's own mixed precision (``precision='bf16'``: weights of linear and conv
layers in bf16, LayerNorm in fp32), the embeddings come out as fp32 and agree with the fp32 ones
to a cosine of 0.9999 (``tests/unit/test_precision.py``), so one collection can mix vectors of
both.
"""

from __future__ import annotations

import logging
from pathlib import Path
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


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's vendor id from /proc/cpuinfo ('GenuineIntel', 'AuthenticAMD'), or ''."""
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def faster_cpu_bf16(units: str, vendor: str) -> bool:
    """Whether bf16 beats fp32 on a CPU with these bf16 units from this vendor."""
    return units == "AMX" or (units == "AVX512-BF16" and vendor == "AuthenticAMD")


def resolve_precision(precision: str, device: str) -> str:
    """'auto' becomes the fastest exact-enough format for the device; others are validated."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    on_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        if on_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if faster_cpu_bf16(cpu_bf16_units(), cpu_vendor()) else "fp32"
    if precision == "fp16" and not on_cuda:
        raise ConfigError("precision fp16 needs a CUDA device; on a CPU use bf16 or fp32")
    if precision == "bf16" and not on_cuda and not faster_cpu_bf16(cpu_bf16_units(), cpu_vendor()):
        log.warning("bf16 is slower than fp32 on this CPU (no AMX, and no AVX512-BF16 on an "
                    "AMD CPU): use MMRAG_PRECISION=auto or fp32")
    return precision


def input_dtype(precision: str) -> torch.dtype:
    """The dtype image tensors must have for a model created at this precision."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


__all__ = [
    "PRECISIONS", "cpu_bf16_units", "cpu_vendor", "faster_cpu_bf16", "input_dtype",
    "native_cpu_bf16", "resolve_precision",
]
