"""How a training step runs fast on this hardware: memory format and autocast precision.

Kept apart from the loop so the loop only calls a few functions. Both choices change speed,
not the model: channels-last is a memory layout, and bf16 autocast keeps fp32 master weights
and fp32 losses. Each is used only where it is known to help (bench/accuracy.md, "Training
speed"):

- ``precision="auto"`` uses bf16 only for image batches and only where the hardware computes
  it natively (CUDA with bf16, a CPU with AVX-512 BF16 or AMX): elsewhere oneDNN emulates
  bf16 and a step is several times *slower* (Zen 3 EPYC without AVX-512: VGG-7 at 64 px,
  14 img/s fp32 vs 1.8 bf16). 1-D signal models are too small to gain (MNIST-1D study net on
  a Zen 4 with ``avx512_bf16``: 14.3k signals/s bf16 vs 15.1k fp32), so they keep fp32 and
  the same weights on every CPU generation.
- channels-last for image batches on CUDA and on CPUs with AVX-512 (the issue measured
  1.7× for the VGG-7 at 224 px there); on the AVX2-only Zen 3 it measured 0.79× of NCHW.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from cnnlens.device import cpu_has_native_bf16, resolve_precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for the forward pass when ``precision`` is ``"bf16"``, else a no-op
    (``precision`` as :func:`resolve_precision` resolved it)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"autocast takes a resolved precision, got {precision!r}")
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(sample: torch.Tensor, device: torch.device) -> bool:
    """Channels-last for image batches ``(N, C, H, W)`` where it helps: CUDA, AVX-512 CPUs."""
    if sample.dim() != 4:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store the model's 4-D weights channels-last (in place; returns the model)."""
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def prepare_batch(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Image batches in the memory format the model runs in (a no-op when they already are).

    Batches may arrive channels-last (the image datasets build them as a free view of NHWC
    tiles), so the NCHW case makes them contiguous too.
    """
    if x.dim() != 4:
        return x
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


__all__ = ["autocast", "cpu_has_native_bf16", "prepare_batch", "resolve_precision",
           "to_channels_last", "uses_channels_last"]
