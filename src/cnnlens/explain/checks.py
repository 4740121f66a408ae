"""One validation for every entry point that runs a model on user inputs (CAMs and metrics).

Checked before any forward pass, so a bad call fails with a message naming the parameter,
the shape or the sample index, never with a raw torch error from deep inside the model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from cnnlens.errors import CnnlensError


def shape_hint(shape: tuple[int, ...], name: str = "x") -> str:
    """How to make ``shape`` an accepted input, for the shapes users actually pass."""
    if len(shape) == 1:
        return (f"; one signal of length {shape[0]}: {name}[None, None] makes it "
                f"(1, 1, {shape[0]})")
    if len(shape) == 2:
        n, length = shape
        return (f"; {n} signals of length {length}: {name}[:, None] makes them ({n}, 1, "
                f"{length}), or one {n}-channel signal: {name}[None] makes it (1, {n}, "
                f"{length})")
    if len(shape) > 5:
        return "; CAMs take at most 3 spatial axes"
    return ""


def check_inputs(x: object, *, name: str = "x") -> Tensor:
    """A floating tensor ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``, finite, N > 0."""
    if not isinstance(x, Tensor):
        raise CnnlensError(f"{name} must be a torch tensor (N, C, *spatial), got "
                           f"{type(x).__name__}")
    if x.dim() not in (3, 4, 5):
        raise CnnlensError(
            f"{name} has shape {tuple(x.shape)}; accepted: (N, C, L), (N, C, H, W) or "
            f"(N, C, D, H, W){shape_hint(tuple(x.shape), name)}"
        )
    if not x.is_floating_point():
        raise CnnlensError(f"{name} must be floating point, got dtype {x.dtype} "
                           "(convert with x.float())")
    if x.shape[0] == 0:
        raise CnnlensError(f"{name} has no samples (N = 0)")
    # A sum is finite only if every term is (NaN and ±inf propagate), so one reduction with
    # no boolean temporary clears the usual case; a non-finite sum (NaN/inf, or finite values
    # that overflow) gets the exact per-sample check.
    if math.isfinite(float(x.sum())):
        return x
    finite = torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).reshape(-1)
        listed = ", ".join(str(int(i)) for i in bad[:5])
        more = f" and {bad.numel() - 5} more" if bad.numel() > 5 else ""
        raise CnnlensError(f"{name} holds NaN or infinite values in sample(s) {listed}{more}; "
                           "accepted: finite values")
    return x


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's first floating parameter, if any."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def match_model_dtype(model: nn.Module, x: Tensor) -> Tensor:
    """Cast inputs to the model's parameter dtype (float64 data on a float32 model)."""
    dtype = model_dtype(model)
    if dtype is not None and x.dtype != dtype:
        return x.to(dtype)
    return x


def check_targets(targets: object, n: int) -> Tensor | None:
    """Turn ``targets`` (None, an int, a sequence or a tensor of ints) into a (n,) long tensor.

    Floats, bools and strings are refused rather than truncated or coerced; the bound on
    the class count is checked once the model's output size is known.
    """
    if targets is None:
        return None
    if isinstance(targets, bool):
        raise CnnlensError(f"targets must be class indices (int), got {targets!r}")
    if isinstance(targets, int):
        t = torch.full((n,), targets, dtype=torch.long)
    else:
        if isinstance(targets, str | bytes):
            raise CnnlensError(f"targets must be class indices (int), got {targets!r}")
        try:
            t = torch.as_tensor(targets)
        except (TypeError, ValueError, RuntimeError):
            raise CnnlensError(
                "targets must be None, an int or one class index per sample"
            ) from None
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise CnnlensError(f"targets must be integer class indices, got dtype {t.dtype}")
        t = t.reshape(-1).long().cpu()
        if t.numel() != n:
            raise CnnlensError(
                f"targets has {t.numel()} entries but the batch has {n} samples; "
                "give one class index per sample, a single int, or None for the predicted class"
            )
    if t.numel() and int(t.min()) < 0:
        raise CnnlensError(f"targets must be >= 0, got {int(t.min())}")
    return t


def check_class_bound(targets: Tensor, num_classes: int) -> None:
    """Every target must index one of the model's outputs."""
    if targets.numel() and int(targets.max()) >= num_classes:
        raise CnnlensError(
            f"targets must be < {num_classes} (the model's number of classes), "
            f"got {int(targets.max())}"
        )


def check_batch_size(batch_size: Any, *, name: str = "batch_size") -> int | None:
    """None (automatic) or an integer >= 1; bools and floats are refused."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CnnlensError(f"{name}={batch_size!r} is invalid; accepted: an integer >= 1 or None")
    return batch_size


def model_error(exc: RuntimeError, x: Tensor) -> CnnlensError:
    """A torch error raised by the model on these inputs, as one line naming the shape."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CnnlensError(f"the model cannot run on inputs of shape {tuple(x.shape)} "
                        f"(dtype {x.dtype}): {first[:300]}")


__all__ = ["check_batch_size", "check_class_bound", "check_inputs", "check_targets",
           "match_model_dtype", "model_dtype", "model_error"]
