"""A model that ends in softmax, back to its logits.

cnnlens differentiates the class score a model outputs and applies softmax where it needs
probabilities. A model trained elsewhere often ends in a Softmax (or LogSoftmax) layer; its
maps would then explain a saturated probability (all-zero Ablation-CAM maps are the
symptom) and faithfulness would score a softmax of probabilities. :func:`logits_model`
removes such a final layer when, and only when, the result provably gives the logits: the
model's own outputs must equal the softmax (or log-softmax) of the new outputs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

#: What a removed head was, and how to get the model's own outputs back from the logits.
HEADS = {"softmax": lambda z: torch.softmax(z, dim=1),
         "log_softmax": lambda z: torch.log_softmax(z, dim=1),
         "sigmoid": torch.sigmoid}


def output_kind(out: torch.Tensor) -> str | None:
    """``"softmax"`` or ``"log_softmax"`` when every row of ``out`` is a probability
    distribution (or its log), else None (logits or independent scores)."""
    if out.dim() != 2 or out.shape[1] < 2 or not torch.isfinite(out).all():
        return None
    ones = torch.ones(out.shape[0], dtype=out.dtype)
    if (out >= 0).all() and torch.allclose(out.sum(1), ones, atol=1e-4):
        return "softmax"
    if (out <= 0).all() and torch.allclose(out.exp().sum(1), ones, atol=1e-4):
        return "log_softmax"
    return None


def remove_head(model: nn.Module, head: str, input_shape: tuple[int, ...],
                ) -> nn.Module | None:
    """A copy of ``model`` without its final ``head`` layer, or None when no layer can be
    removed so that the model's outputs are ``head`` of the copy's (checked on two random
    inputs of ``input_shape``)."""
    leaves = [name for name, m in model.named_modules() if name and not list(m.children())]
    if not leaves:
        return None
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        for name in reversed(leaves[-3:]):  # the head is registered last, or nearly
            candidate = copy.deepcopy(model)
            parent_name, _, attr = name.rpartition(".")
            setattr(candidate.get_submodule(parent_name), attr, nn.Identity())
            try:
                got = candidate(x)
            except Exception:  # the layer was not a head: the graph no longer runs
                continue
            if isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(
                    HEADS[head](got), expected, atol=1e-5, rtol=1e-4):
                return candidate
    return None


def logits_model(model: nn.Module, input_shape: tuple[int, ...]
                 ) -> tuple[nn.Module, str | None, str]:
    """``(model, removed head or None, note)``: the model giving logits where possible."""
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    head = output_kind(out) if isinstance(out, torch.Tensor) else None
    if head is None:
        return model, None, "outputs taken as logits (rows are not probability distributions)"
    stripped = remove_head(model, head, input_shape)
    if stripped is None:
        return model, None, (f"the model outputs {head} probabilities but no final layer "
                             "could be removed to reach its logits: CAMs differentiate the "
                             "probability")
    return stripped, head, (f"the model ends in {head}: removed, so CAMs and scores use its "
                            "logits (the model's probabilities are their softmax)")


__all__ = ["HEADS", "logits_model", "output_kind", "remove_head"]
