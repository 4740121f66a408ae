"""Finding the layer to explain: by dotted name, with suggestions, and the network after it."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from cnnlens.errors import CnnlensError

_MAX_LISTED = 30


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule called ``name`` (dotted, as in ``model.named_modules()``).

    An unknown name raises a :class:`CnnlensError` that suggests the closest valid names,
    because layer names are typed by users (``--layer conv2d_3``).
    """
    modules = {n: m for n, m in model.named_modules() if n}
    if name in modules:
        return modules[name]
    names = list(modules)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    listed = ", ".join(names[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
    raise CnnlensError(f"unknown layer {name!r}{hint}; valid: {listed}")


def candidate_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of layers whose output has the input's spatial rank, in forward order.

    Found by one no-grad forward pass on ``x[:1]`` (model state restored), so it works for
    any architecture; the last name is the usual CAM choice.
    """
    from cnnlens.explain.state import preserved_model_state

    found: list[str] = []
    handles = []

    def make_hook(layer_name: str):  # type: ignore[no-untyped-def]
        def hook(_m: nn.Module, _i: object, out: object) -> None:
            if isinstance(out, torch.Tensor) and out.dim() == x.dim() and layer_name not in found:
                found.append(layer_name)

        return hook

    with preserved_model_state(model):
        try:
            for layer_name, module in model.named_modules():
                if layer_name:
                    handles.append(module.register_forward_hook(make_hook(layer_name)))
            with torch.no_grad():
                model(x[:1])
        finally:
            for h in handles:
                h.remove()
    return found


def sequential_tail(model: nn.Module, name: str) -> nn.Module | None:
    """The part of the network that runs after layer ``name``, or None if it cannot be split.

    Splitting works when every module on the dotted path is a plain ``nn.Sequential``
    (forward not overridden): then the tail is the remaining children of each, innermost
    first. This is what lets Ablation-CAM re-run only the layers after the target.
    """
    parts = name.split(".")
    parent = model
    pieces: list[list[nn.Module]] = []
    for part in parts:
        if not _is_plain_sequential(parent):
            return None
        children = list(parent.named_children())
        idx = next((i for i, (n, _) in enumerate(children) if n == part), None)
        if idx is None:
            return None
        pieces.append([m for _, m in children[idx + 1 :]])
        parent = children[idx][1]
    tail: list[nn.Module] = [m for rest in reversed(pieces) for m in rest]
    return nn.Sequential(*tail)


def _is_plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward
