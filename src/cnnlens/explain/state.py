"""Leave the caller's model exactly as found: train/eval flags, requires_grad and .grad."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[None]:
    """Switch ``model`` to eval mode with frozen parameters, and restore everything after.

    Eval mode makes a sample's map independent of its batch (BatchNorm, Dropout); frozen
    parameters mean no weight-gradient work and no ``.grad`` writes. Restored in ``finally``
    so an exception leaves the model as it was.
    """
    training = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _, _ in params:
            p.requires_grad_(False)
        yield
    finally:
        for m, flag in training:
            m.training = flag
        for p, requires_grad, grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad
