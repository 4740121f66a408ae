"""Leave the caller's model exactly as found: train/eval flags, requires_grad and .grad."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from cnnlens.device import eval_mode


@contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[None]:
    """Switch ``model`` to eval mode with frozen parameters, and restore everything after.

    Eval mode makes a sample's map independent of its batch (BatchNorm, Dropout); frozen
    parameters mean no weight-gradient work and no ``.grad`` writes. Restored in ``finally``
    so an exception leaves the model as it was. Only what changed is written back: every
    call pays this, and ``Module.__setattr__`` and ``requires_grad_`` are slow Python paths
    next to a millisecond-sized forward pass.
    """
    params = list(model.parameters())
    requires = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        with eval_mode(model):
            for p, flag in zip(params, requires, strict=True):
                if flag:
                    p.requires_grad_(False)
            yield
    finally:
        for p, flag, grad in zip(params, requires, grads, strict=True):
            if p.requires_grad != flag:
                p.requires_grad_(flag)
            if p.grad is not grad:
                p.grad = grad
