"""Any Keras HDF5 CNN (Sequential or functional) as a channels-first torch module.

The registry import (:mod:`cnnlens.models.keras_h5`) maps a file onto one of cnnlens's own
architectures; this module instead rebuilds whatever graph the file describes, so a user's
own Keras CNN can be explained without retraining. Only h5py is needed, no TensorFlow.

Each Keras layer becomes a submodule named after it (``--layer conv2d_3`` works). A layer
with a fused activation is a block ending in that activation, so a hook on the name sees
what Keras calls the layer's output (DESIGN §3); a ``Conv(activation='relu', 'same')`` is the
registry's :class:`~cnnlens.models.layers.ConvReLU`, so the course files give the same
structure and state-dict keys as the registry models.

Keras is channels-last, the module channels-first: conv kernels are transposed, axis-based
layers (Concatenate, BatchNormalization, Softmax) are remapped, a Dense after Flatten gets
its rows permuted (or, where the flattened vector feeds anything but Dense layers, the
Flatten itself moves channels last), and TF's asymmetric ``same`` padding is applied
explicitly wherever torch's own ``padding="same"`` would differ. Read formats: Keras 2
(``model_config`` with list-style ``inbound_nodes``, ``kernel:0`` weights) and the legacy
HDF5 that Keras 3 ``model.save("x.h5")`` writes (``args``/``kwargs`` nodes, ``batch_shape``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.keras_config import (
    GraphLayer,
    KerasGraphFile,
    read_keras_graph,
)
from cnnlens.models.keras_layers import BUILDERS, Ctx
from cnnlens.models.keras_modules import (
    AvgPoolSame,
    ChannelsLastFlatten,
    KerasGraph,
    Key,
    SamePad,
    Shape,
    Step,
)

#: Layers through which a flattened vector keeps its meaning per element (any order works).
_ELEMENTWISE = ("Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Activation",
                "ReLU", "LeakyReLU", "ELU")


def _plain_flattens(graph: KerasGraphFile) -> dict[str, list[str]]:
    """Flatten layers whose output reaches only Dense layers (through element-wise ones):
    those can flatten channels first, with the Dense rows permuted to match."""
    consumers: dict[str, list[GraphLayer]] = {}
    for la in graph.layers:
        for node in la.nodes:
            for key in node:
                consumers.setdefault(key[0], []).append(la)
    plain: dict[str, list[str]] = {}
    for la in graph.layers:
        if la.class_name != "Flatten" or len(la.nodes) != 1:
            continue
        denses: list[str] = []
        frontier, ok = [la.name], True
        while frontier and ok:
            name = frontier.pop()
            users = consumers.get(name, [])
            ok = name != graph.out[0] and bool(users) and all(len(u.nodes) == 1 for u in users)
            for user in users:
                if user.class_name == "Dense":
                    denses.append(user.name)
                elif user.class_name in _ELEMENTWISE:
                    frontier.append(user.name)
                else:
                    ok = False
        if ok:
            plain[la.name] = denses
    return plain


def _order(path: Path, graph: KerasGraphFile) -> list[tuple[GraphLayer, int]]:
    """Every layer call in an order where its inputs come first (Keras' own file order
    usually is; a shared layer's later calls may not be)."""
    pending = [(la, i) for la in graph.layers for i in range(len(la.nodes))]
    ready = {graph.inp}
    order: list[tuple[GraphLayer, int]] = []
    while pending:
        for j, (la, i) in enumerate(pending):
            if all(k in ready for k in la.nodes[i]):
                order.append(pending.pop(j))
                ready.add((la.name, i, 0))
                break
        else:
            la, i = pending[0]
            missing = [k[0] for k in la.nodes[i] if k not in ready]
            raise CnnlensError(f"{path}: layer {la.name!r} ({la.class_name}) needs the output "
                               f"of {', '.join(map(repr, missing))}, which the model never "
                               "computes from its input")
    return order


def build_module(path: Path, graph: KerasGraphFile) -> tuple[nn.Module, dict[str, Shape]]:
    """The torch module for a graph, and each layer's output shape (channels first)."""
    if graph.inp[1:] != (0, 0) or next((la.class_name for la in graph.layers
                                        if la.name == graph.inp[0]), None) != "InputLayer":
        raise CnnlensError(f"{path}: the model input {graph.inp[0]!r} is not an InputLayer")
    dense_rows: dict[str, Shape] = {}
    plain = _plain_flattens(graph)
    keras_in = graph.input_shape
    in_shape: Shape = keras_in if len(keras_in) < 2 else (keras_in[-1], *keras_in[:-1])
    shapes: dict[Key, Shape] = {graph.inp: in_shape}
    modules: dict[str, nn.Module] = {}
    first_inputs: dict[str, list[Shape]] = {}
    steps: list[Step] = []
    for layer, i in _order(path, graph):
        ctx = Ctx(path, layer, dense_rows, plain)
        if layer.class_name not in BUILDERS:
            raise ctx.error("is not supported; supported: InputLayer, "
                            + ", ".join(BUILDERS))
        fmt = layer.config.get("data_format")
        if fmt not in (None, "channels_last"):
            raise ctx.option("data_format", fmt, "'channels_last'")
        if any(k[2] != 0 for k in layer.nodes[i]):
            raise ctx.error("uses a second output of a layer; not supported")
        in_shapes = [shapes[k] for k in layer.nodes[i]]
        if layer.name not in modules:
            modules[layer.name], out = BUILDERS[layer.class_name](ctx, in_shapes)
            first_inputs[layer.name] = in_shapes
        elif in_shapes != first_inputs[layer.name]:
            raise ctx.error("is shared between inputs of different shapes; not supported")
        else:
            out = shapes[(layer.name, 0, 0)]
        shapes[(layer.name, i, 0)] = out
        steps.append(Step(layer.name, tuple(layer.nodes[i]), (layer.name, i, 0)))
    if graph.out not in shapes:
        raise CnnlensError(f"{path}: the model output {graph.out[0]!r} is never computed")
    out_shapes = {name: shapes[(name, 0, 0)] for name in modules}
    out_shapes[graph.inp[0]] = in_shape
    return _assemble(path, modules, steps, graph), out_shapes


def _assemble(path: Path, modules: dict[str, nn.Module], steps: list[Step],
              graph: KerasGraphFile) -> nn.Module:
    """An ``nn.Sequential`` when the graph is a chain (like the registry models), else a
    :class:`KerasGraph`."""
    chain = all(len(st.inputs) == 1 and st.inputs[0] == (steps[j - 1].output if j else graph.inp)
                for j, st in enumerate(steps)) and len(steps) == len(modules)
    try:
        if chain and steps and steps[-1].output == graph.out:
            return nn.Sequential(OrderedDict((st.layer, modules[st.layer]) for st in steps))
        return KerasGraph(modules, steps, graph.inp, graph.out)
    except KeyError as exc:  # a Keras name torch refuses ("forward", "training", ...)
        raise CnnlensError(f"{path}: a layer name cannot name a torch module ({exc})") from None


def _final_activation(module: nn.Module, graph: KerasGraphFile) -> str | None:
    """``softmax`` or ``sigmoid`` when the output layer ends in one (fused or standalone)."""
    last = module.get_submodule(graph.out[0])
    while isinstance(last, nn.Sequential) and len(last):
        last = last[-1]
    if isinstance(last, nn.Softmax):
        return "softmax"
    return "sigmoid" if isinstance(last, nn.Sigmoid) else None


def load_keras_module(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild any supported Keras HDF5 CNN as a channels-first torch module.

    Returns the module (eval mode, float32; input ``(N, C, L)`` or ``(N, C, H, W)``; a final
    softmax is kept, so it outputs what Keras does) and an info dict: ``input_shape``
    (channels first), ``num_classes``, ``final_activation``, ``layers`` (the submodule names
    a CAM can hook), ``keras_version`` and ``notes``. Anything unsupported raises one
    :class:`CnnlensError` naming the file, the layer and the class or option.
    """
    p = Path(path)
    graph = read_keras_graph(p)
    with torch.random.fork_rng(devices=[]):  # init is overwritten: spare the caller's RNG
        module, shapes = build_module(p, graph)
    module = module.float().eval()
    out_shape = shapes[graph.out[0]]
    final = _final_activation(module, graph)
    names = [name for name, _ in module.named_children()]
    return module, {
        "format": "keras-hdf5",
        "input_shape": shapes[graph.inp[0]],
        "num_classes": out_shape[0],
        "final_activation": final,
        "layers": names,
        "keras_version": graph.keras_version,
        "backend": graph.backend,
        "notes": _notes(module, graph, final),
    }


def _notes(module: nn.Module, graph: KerasGraphFile, final: str | None) -> list[str]:
    notes = []
    if graph.keras_version.startswith("3"):
        notes.append("read as a Keras 3 legacy HDF5 file")
    if final is not None:
        notes.append(f"the final {final} is kept: the module outputs probabilities")
    kinds = {type(m) for m in module.modules()}
    if nn.Dropout in kinds:
        notes.append("Dropout is the identity in eval mode")
    if SamePad in kinds or AvgPoolSame in kinds:
        notes.append("TF 'same' padding (asymmetric for strides > 1 or even kernels) is "
                     "applied explicitly")
    if ChannelsLastFlatten in kinds:
        notes.append("a Flatten not followed only by Dense layers flattens channels last, "
                     "as Keras does")
    if isinstance(module, KerasGraph) and len(module.steps) > len(list(module.children())):
        notes.append("a shared layer runs more than once per forward; a hook on it fires "
                     "once per call")
    return notes
