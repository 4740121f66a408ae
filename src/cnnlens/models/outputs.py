"""What a trained model returns, made into one tensor of class scores.

cnnlens differentiates and scores ``(N, K)`` class logits. Models trained elsewhere return
other things: a tuple or dict (auxiliary heads, features), chosen with ``--output
INDEX|KEY``; or one logit per sample for a binary task, ``(N, 1)``, whose sigmoid is the
positive class's probability. Both become ``(N, K)`` logits through a forward hook on the
model itself, so every stage that loads it sees the same scores and the layers keep their
names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cnnlens.errors import CnnlensError


def parse_output(text: str | int | None) -> str | int | None:
    """``--output``: an integer selects a tuple/list element, anything else a dict key."""
    if text is None or isinstance(text, int):
        return text
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else stripped


def describe(out: Any) -> str:
    """What a forward returned, for error messages: types and shapes, nested one level."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, Mapping):
        return "a dict: " + ", ".join(f"{k!r} {describe(v)}" for k, v in out.items())
    if isinstance(out, Sequence) and not isinstance(out, str):
        return f"a {type(out).__name__}: " + ", ".join(
            f"[{i}] {describe(v)}" for i, v in enumerate(out))
    return f"a {type(out).__name__}"


def select(out: Any, which: str | int | None, source: str) -> torch.Tensor:
    """The class scores in ``out`` (``which``: index or key; None: ``out`` must be one tensor)."""
    if which is None:
        if isinstance(out, torch.Tensor):
            return out
        raise CnnlensError(f"--model {source} returns {describe(out)}; pass --output INDEX or "
                           "KEY to say which holds the class scores")
    try:
        picked = out[which]
    except (KeyError, IndexError, TypeError):
        raise CnnlensError(f"--output {which!r}: not in what --model {source} returns "
                           f"({describe(out)})") from None
    if not isinstance(picked, torch.Tensor):
        raise CnnlensError(f"--output {which!r} of --model {source} is {describe(picked)}, "
                           "not a tensor of class scores")
    return picked


def binary_logits(z: torch.Tensor) -> torch.Tensor:
    """One logit per sample ``(N, 1)`` as two class logits ``[-z/2, z/2]``: their softmax is
    ``[1 - sigmoid(z), sigmoid(z)]``, and each class's score is the model's evidence for it."""
    return torch.cat([-z / 2, z / 2], dim=1)


def apply_outputs(model: nn.Module, which: str | int | None, binary: bool,
                  source: str) -> nn.Module:
    """Make ``model`` return ``(N, K)`` logits (in place, by a forward hook; returns it)."""
    if which is None and not binary:
        return model

    def scores(_module: nn.Module, _args: Any, out: Any) -> torch.Tensor:
        picked = select(out, which, source)
        return binary_logits(picked) if binary else picked

    model.register_forward_hook(scores)
    return model


__all__ = ["apply_outputs", "binary_logits", "describe", "parse_output", "select"]
