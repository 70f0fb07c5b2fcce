"""Mixed precision: which dtype to autocast to, decided once per run.

ENVIRONMENT.md measured bf16 autocast at ~2.9x the FP32 training speed on this CPU (AMX);
on CPUs without native bf16 it is slower than FP32, so ``auto`` only picks it where the
CPU advertises ``amx_bf16`` or ``avx512_bf16``. fp16 is meant for GPUs (with a GradScaler).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import Precision


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return any(f in flags.split() for f in ("amx_bf16", "avx512_bf16"))


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    if precision != Precision.AUTO:
        return precision
    if device.type == "cuda":  # pragma: no cover - no GPU here
        return Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP16
    return Precision.BF16 if cpu_has_native_bf16() else Precision.FP32


def autocast_factory(
    precision: Precision, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager]:
    """A zero-argument factory of the autocast context for ``precision`` (resolved)."""
    if precision == Precision.FP32:
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == Precision.BF16 else torch.float16
    return functools.partial(torch.autocast, device_type=device.type, dtype=dtype)


def grad_scaler(precision: Precision, device: torch.device):
    """A GradScaler for fp16 on CUDA (fp16 gradients underflow without one), else None."""
    if precision == Precision.FP16 and device.type == "cuda":  # pragma: no cover
        return torch.amp.GradScaler("cuda")
    return None
