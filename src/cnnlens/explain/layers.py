"""Finding the layer to explain: by dotted name, with suggestions, and the network after it."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from cnnlens.errors import CnnlensError

_MAX_LISTED = 30


LayerRef = str | nn.Module


def layer_name_of(model: nn.Module, module: nn.Module) -> str:
    """The dotted name of ``module`` inside ``model`` (error if it is not a submodule)."""
    for name, m in model.named_modules():
        if m is module and name:
            return name
    raise CnnlensError(
        f"layer {type(module).__name__} is not a submodule of the model; pass one of its "
        "layers (or its dotted name)"
    )


def resolve_layer(model: nn.Module, name: LayerRef) -> nn.Module:
    """Return the submodule called ``name`` (dotted, as in ``model.named_modules()``).

    ``name`` may also be the module object itself (it must belong to ``model``). An unknown
    name raises a :class:`CnnlensError` that suggests the closest valid names, because layer
    names are typed by users (``--layer conv2d_3``).
    """
    if isinstance(name, nn.Module):
        layer_name_of(model, name)
        return name
    if not isinstance(name, str):
        raise CnnlensError(f"layer must be a name or a module, got {type(name).__name__}")
    names = []
    for found, module in model.named_modules():
        if found == name and found:
            return module
        if found:
            names.append(found)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    listed = ", ".join(names[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
    raise CnnlensError(f"unknown layer {name!r}{hint}; valid: {listed}")


_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
               nn.ConvTranspose3d)


def keeps_input_layout(out: object, x: torch.Tensor) -> bool:
    """An output ``(N, K, *spatial)`` with the input's spatial axes (and at most trailing
    size-1 axes more: a 1-D signal model written with Conv2d over ``(N, C, L, 1)``)."""
    return (isinstance(out, torch.Tensor) and out.dim() >= x.dim()
            and all(d == 1 for d in out.shape[x.dim():]))


def _is_conv(module: nn.Module) -> bool:
    """A convolution module, or any module holding a kernel of rank >= 3 (out, in, *k) of its
    own: converted graphs (``torch.export`` unflattened, custom conv classes) run their convs
    as functions of such parameters."""
    return isinstance(module, _CONV_TYPES) or any(
        p.dim() >= 3 for p in module.parameters(recurse=False))


def default_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The last conv-like layer with spatial output: what to explain when none is named.

    "Conv-like" = a convolution (or a module with a conv kernel) or a block containing one;
    among those whose output keeps the input's spatial rank, the one finishing last in the
    forward pass (for a block ``ConvReLU`` that is the block, after its activation; for a
    ResNet, its last stage).
    Found by one no-grad forward pass on ``x[:1]`` with the model's state restored.
    """
    from cnnlens.explain.state import preserved_model_state

    order: list[str] = []
    handles = []
    modules = dict(model.named_modules())
    has_conv = {n for n, m in modules.items() if n and any(
        _is_conv(sub) for sub in m.modules())}

    def make_hook(layer_name: str):  # type: ignore[no-untyped-def]
        def hook(_m: nn.Module, _i: object, out: object) -> None:
            if keeps_input_layout(out, x):
                order.append(layer_name)

        return hook

    with preserved_model_state(model):
        try:
            for layer_name in has_conv:
                handles.append(modules[layer_name].register_forward_hook(make_hook(layer_name)))
            with torch.no_grad():
                model(x[:1])
        finally:
            for h in handles:
                h.remove()
    if not order:
        raise CnnlensError(
            "the model has no convolutional layer with spatial output to explain; pass "
            "--layer NAME (a layer whose output is (N, K, *spatial))"
        )
    return order[-1]


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
            if keeps_input_layout(out, x) and layer_name not in found:
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


_ZERO_PRESERVING: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
)  # fmt: skip


def _leaves(module: nn.Module) -> list[nn.Module]:
    """A tail as a flat list, expanding plain nested ``nn.Sequential`` containers."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [leaf for child in module.children() for leaf in _leaves(child)]
    return [module]


def split_zero_preserving(tail: nn.Module | None) -> tuple[nn.Sequential, nn.Sequential]:
    """Split a tail into (per-channel layers that map a zero channel to zero, the rest).

    Exact types only (a subclass may change behaviour); in eval mode Dropout is identity.
    """
    mods = _leaves(tail) if tail is not None else []
    cut = 0
    while (
        cut < len(mods)
        and type(mods[cut]) in _ZERO_PRESERVING
        and not getattr(mods[cut], "return_indices", False)
    ):
        cut += 1
    return nn.Sequential(*mods[:cut]), nn.Sequential(*mods[cut:])


def flatten_linear(tail: nn.Module | None) -> nn.Linear | None:
    """The Linear of a tail that is exactly ``Flatten(1) → Linear``, else None."""
    mods = list(tail.children()) if tail is not None else []
    if (
        len(mods) == 2
        and type(mods[0]) is nn.Flatten
        and mods[0].start_dim == 1
        and mods[0].end_dim == -1
        and type(mods[1]) is nn.Linear
    ):
        return mods[1]
    return None
