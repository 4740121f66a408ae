"""Device selection (``auto`` picks CUDA when present) and how models are run for inference:
out-of-memory detection, batch sizes, channels-last forwards, eval mode that restores."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

from cnnlens.errors import CnnlensError, unknown_choice


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a usable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise CnnlensError(
            f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CnnlensError(
            f"--device {name!r}: CUDA is not available on this machine; use cpu or auto"
        )
    return dev


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode, then give every submodule back its own train flag.

    Eval mode makes a sample's output independent of its batch (BatchNorm, Dropout). The
    flags are restored one module at a time, in ``finally``: a caller's model may mix modes
    on purpose (a frozen BatchNorm inside a training model), which ``model.train(flag)``
    would overwrite. Only changed flags are written back (``Module.__setattr__`` is a slow
    Python path next to a small forward pass); a model already in eval mode is not walked
    unless a module overrides ``train()``, whose override then still runs.
    """
    modules = list(model.modules())
    training = [m.training for m in modules]
    try:
        if any(training) or any(type(m).train is not nn.Module.train for m in modules):
            model.eval()
        yield
    finally:
        for m, flag in zip(modules, training, strict=True):
            if m.training != flag:
                m.training = flag


def is_oom(exc: BaseException) -> bool:
    """A device out-of-memory error (callers halve their batch and retry)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(exc, oom_type)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


#: Input values per inference forward of image batches (2 tiles of 3×224×224, 128 of 3×32×32).
#: Measured on this project's 2-core CPU with the VGG-7 at 224 px, no gradients: 2–3 tiles
#: in channels-last format score 35–41 tiles/s; 6 tiles NCHW 13.6, 16 tiles NCHW 10–12
#: (larger batches leave the cache).
INFERENCE_ELEMENTS = 2**19

#: Models whose forward failed on a channels-last batch (e.g. a ``view`` on a strided tensor).
_NCHW_ONLY: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def inference_rows(x: torch.Tensor) -> int:
    """Samples per inference forward so that one holds about ``INFERENCE_ELEMENTS`` values."""
    per = max(1, math.prod(x.shape[1:]))
    return max(1, min(int(x.shape[0]) or 1, INFERENCE_ELEMENTS // per))


def fast_forward(model: nn.Module, x: torch.Tensor, retry: Callable[[], None] | None = None
                 ) -> torch.Tensor:
    """``model(x)``, with image batches ``(N, C, H, W)`` in channels-last memory format.

    Same values up to float rounding (about 1e-6), 1.3–2.8x faster for the VGG-7 on this
    project's CPUs, forward and backward alike. A model that cannot take a channels-last
    input is remembered and run as given; ``retry`` is called before that second call
    (e.g. to drop what forward hooks captured in the failed one).
    """
    if _INFERENCE_PRECISION.get() == "bf16" and x.device.type in ("cpu", "cuda"):
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return _layout_forward(model, x, retry)
    return _layout_forward(model, x, retry)


def _layout_forward(model: nn.Module, x: torch.Tensor, retry: Callable[[], None] | None
                    ) -> torch.Tensor:
    if x.dim() != 4 or model in _NCHW_ONLY:
        return model(x)
    try:
        out: torch.Tensor = model(x.contiguous(memory_format=torch.channels_last))
        return out
    except RuntimeError as exc:
        if is_oom(exc):
            raise
    # outside the except block, so the failed pass's tensors are freed before the retry
    if retry is not None:
        retry()
    out = model(x)  # an error here is not the layout's: it propagates, nothing is marked
    _NCHW_ONLY.add(model)
    return out


def fast_layout(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory format :func:`fast_forward` runs ``model`` on (for passes that
    must round like it, e.g. values saved from a second partial forward)."""
    if x.dim() != 4 or model in _NCHW_ONLY:
        return x
    return x.contiguous(memory_format=torch.channels_last)


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively on this CPU (AVX-512 BF16 / AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # pragma: no cover - a build without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device, spatial_dims: int = 2) -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` (auto, fp32, bf16) means on ``device`` for
    samples with ``spatial_dims`` spatial axes (1 for signals, 2 for images)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise unknown_choice("--precision", precision, ["auto", "fp32", "bf16"])
    if precision != "auto":
        return precision
    if spatial_dims < 2:
        return "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


#: The precision inference passes run in (see :func:`inference_precision`).
_INFERENCE_PRECISION: ContextVar[str] = ContextVar("inference_precision", default="fp32")


@contextmanager
def inference_precision(precision: str) -> Iterator[None]:
    """Run the :func:`fast_forward` calls inside in ``precision`` (``"fp32"`` or ``"bf16"``,
    as :func:`resolve_precision` resolved it): bf16 autocast halves the cost of a forward on
    hardware that computes bf16 natively, at about 1e-2 relative error in the logits."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"inference_precision takes a resolved precision, got {precision!r}")
    token = _INFERENCE_PRECISION.set(precision)
    try:
        yield
    finally:
        _INFERENCE_PRECISION.reset(token)
