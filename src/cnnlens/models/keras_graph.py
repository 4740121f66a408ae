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

import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.layers import ConvReLU

Shape = tuple[int | None, ...]  # channels-first, without the batch axis
Key = tuple[str, int, int]  # a Keras tensor: (layer name, node index, tensor index)


# -- torch modules for what torch lacks ----------------------------------------------------
class SamePad(nn.Module):
    """TF ``same`` padding, computed from the input size at run time.

    TF pads ``total = max((ceil(n/s) - 1) * s + (k - 1) * d + 1 - n, 0)`` per axis, half
    (rounded down) before and the rest after; with a stride that depends on ``n``, and for
    even kernels torch's ``padding="same"`` would copy the input, so it is done here.
    """

    def __init__(self, kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...], value: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride, self.dilation, self.value = kernel, stride, dilation, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for n, k, s, d in reversed(list(zip(x.shape[2:], self.kernel, self.stride,
                                            self.dilation, strict=True))):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=self.value)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, dilation={self.dilation}"


class AvgPoolSame(nn.Module):
    """Average pooling with TF ``same`` padding: padded cells are left out of each mean."""

    def __init__(self, pool: tuple[int, ...], stride: tuple[int, ...]) -> None:
        super().__init__()
        self.pad = SamePad(pool, stride, (1,) * len(pool))
        self.pool = (nn.AvgPool1d if len(pool) == 1 else nn.AvgPool2d)(_size(pool), _size(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:1, :1])
        return self.pool(self.pad(x)) / self.pool(self.pad(ones))


class ChannelsLastFlatten(nn.Module):
    """Keras' Flatten order ``(*spatial, C)``, for a Flatten whose output is not only Dense
    input (there, the Dense rows are permuted instead and a plain ``nn.Flatten`` is used)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.movedim(1, -1).flatten(1)


class KerasReshape(nn.Module):
    """Keras ``Reshape(target)``: reshaped in channels-last order, then channels first."""

    def __init__(self, target: tuple[int, ...]) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.movedim(1, -1).reshape(x.shape[0], *self.target)
        return y.movedim(-1, 1) if y.dim() > 2 else y

    def extra_repr(self) -> str:
        return f"target={self.target}"


class ChannelsDense(nn.Linear):
    """A Dense on a tensor with spatial axes: Keras applies it to the channel (last) axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class KerasReLU(nn.Module):
    """Keras ``ReLU(max_value, negative_slope, threshold)`` when any differs from plain ReLU."""

    def __init__(self, max_value: float | None, negative_slope: float, threshold: float) -> None:
        super().__init__()
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        return y if self.max_value is None else y.clamp(max=self.max_value)


class Merge(nn.Module):
    """Keras' element-wise merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum)."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.op == "Subtract":
            return xs[0] - xs[1]
        out = xs[0]
        for x in xs[1:]:
            if self.op in ("Add", "Average"):
                out = out + x
            elif self.op == "Multiply":
                out = out * x
            else:
                out = torch.maximum(out, x) if self.op == "Maximum" else torch.minimum(out, x)
        return out / len(xs) if self.op == "Average" else out

    def extra_repr(self) -> str:
        return self.op


class Concat(nn.Module):
    """Keras ``Concatenate`` along the torch axis its Keras axis maps to."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Step(NamedTuple):
    """One call of a Keras layer: which submodule, on which tensors, giving which tensor."""

    layer: str
    inputs: tuple[Key, ...]
    output: Key


class KerasGraph(nn.Module):
    """A functional Keras model: submodules named as the Keras layers, run in graph order."""

    def __init__(self, modules: dict[str, nn.Module], steps: list[Step], inp: Key,
                 out: Key) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.steps, self.inp, self.out = steps, inp, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.inp: x}
        for step in self.steps:
            module = self._modules[step.layer]
            assert module is not None
            values[step.output] = module(*(values[k] for k in step.inputs))
        return values[self.out]


# -- reading ---------------------------------------------------------------------------------
@dataclass
class GraphLayer:
    """A Keras layer of the file: its config and the input tensors of each call (node)."""

    name: str
    class_name: str
    config: dict[str, Any]
    nodes: list[list[Key]]
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class KerasGraphFile:
    """A model file as a graph: layers in file order, the input and output tensors."""

    layers: list[GraphLayer]
    inp: Key
    out: Key
    input_shape: tuple[int | None, ...]  # channels-last, without the batch axis
    keras_version: str
    backend: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_keras_graph(path: str | Path) -> KerasGraphFile:
    """Read any Keras 2 (or Keras 3 legacy) HDF5 model's graph and weights with h5py."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise CnnlensError(f"{p}: file not found (expected a Keras .h5 model file)")
    try:
        with h5py.File(p, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise CnnlensError(
                    f"{p}: no 'model_config' attribute, so not a Keras model file; save the "
                    "model with model.save(...h5), not model.save_weights()"
                )
            try:
                config = json.loads(_text(raw))
            except json.JSONDecodeError as exc:
                raise CnnlensError(f"{p}: model_config is not valid JSON ({exc})") from None
            graph = _parse_model(p, config)
            graph.keras_version = _text(f.attrs.get("keras_version", "unknown"))
            graph.backend = _text(f.attrs.get("backend", "unknown"))
            root = f.get("model_weights", f)
            for layer in graph.layers:
                layer.weights = _read_weights(p, root, layer.name)
    except OSError as exc:
        raise CnnlensError(f"{p}: not a readable Keras HDF5 file ({exc})") from None
    return graph


def _read_weights(path: Path, root: Any, name: str) -> dict[str, np.ndarray]:
    """A layer's arrays keyed by base name (``kernel``, ``moving_mean``...), ``:0`` dropped."""
    if name not in root:
        return {}
    group = root[name]
    out: dict[str, np.ndarray] = {}
    for wname in group.attrs.get("weight_names", []):
        key = _text(wname).rsplit("/", 1)[-1].split(":")[0]
        try:
            out[key] = np.asarray(group[_text(wname)], dtype=np.float32)
        except KeyError:
            raise CnnlensError(f"{path}: weight {_text(wname)!r} of layer {name!r} is missing"
                               ) from None
    return out


def _parse_model(path: Path, config: Any) -> KerasGraphFile:
    kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
    inner = config.get("config") if isinstance(config, dict) else None
    if kind == "Sequential":
        return _parse_sequential(path, inner)
    if kind in ("Functional", "Model") and isinstance(inner, dict):
        return _parse_functional(path, inner)
    raise CnnlensError(f"{path}: model is {kind!r}; expected a Keras Sequential or functional "
                       "model (Functional/Model)")


def _entry(path: Path, entry: Any) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise CnnlensError(f"{path}: model_config has a malformed layer entry {entry!r:.80}")
    cfg = entry["config"]
    return str(entry.get("name", cfg.get("name", "?"))), str(entry.get("class_name")), cfg


def _batch_shape(cfg: dict[str, Any]) -> tuple[int | None, ...] | None:
    shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")  # Keras 2 / Keras 3
    return tuple(shape[1:]) if shape else None


def _parse_sequential(path: Path, inner: Any) -> KerasGraphFile:
    """A Sequential as a chain; an explicit InputLayer or the first layer gives the shape."""
    raw = inner.get("layers") if isinstance(inner, dict) else inner  # Keras <2.2: a list
    if not isinstance(raw, list) or not raw:
        raise CnnlensError(f"{path}: model_config has no layer list")
    layers: list[GraphLayer] = []
    shape = inner.get("build_input_shape") if isinstance(inner, dict) else None
    input_shape = tuple(shape[1:]) if shape else None
    for i, entry in enumerate(raw):
        name, cls, cfg = _entry(path, entry)
        input_shape = input_shape or _batch_shape(cfg)
        if cls == "InputLayer":
            if i:
                raise CnnlensError(f"{path}: layer {name!r} (InputLayer) inside a Sequential")
            layers.append(GraphLayer(name, cls, cfg, []))
            continue
        if not layers:  # no InputLayer entry: make one, as Keras does
            layers.append(GraphLayer(f"{name}_input", "InputLayer", {}, []))
        layers.append(GraphLayer(name, cls, cfg, [[(layers[-1].name, 0, 0)]]))
    if input_shape is None:
        raise CnnlensError(f"{path}: the model has no input shape; build it with keras.Input")
    return KerasGraphFile(layers, (layers[0].name, 0, 0), (layers[-1].name, 0, 0),
                          input_shape, "", "")


def _parse_functional(path: Path, inner: dict[str, Any]) -> KerasGraphFile:
    layers = []
    for entry in inner.get("layers", []):
        name, cls, cfg = _entry(path, entry)
        nodes = [_node_inputs(path, name, node) for node in entry.get("inbound_nodes", [])]
        layers.append(GraphLayer(name, cls, cfg, nodes))
    inputs = _tensor_list(path, inner.get("input_layers"))
    outputs = _tensor_list(path, inner.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        raise CnnlensError(f"{path}: the model has {len(inputs)} inputs and {len(outputs)} "
                           "outputs; only single-input, single-output models are supported")
    first = next((la for la in layers if la.name == inputs[0][0]), None)
    shape = _batch_shape(first.config) if first else None
    if shape is None:
        raise CnnlensError(f"{path}: the model input {inputs[0][0]!r} has no shape")
    return KerasGraphFile(layers, inputs[0], outputs[0], shape, "", "")


def _tensor_list(path: Path, raw: Any) -> list[Key]:
    """``[[name, node, tensor], ...]``; Keras 3 writes a single tensor unnested."""
    if isinstance(raw, list) and raw and isinstance(raw[0], str):
        raw = [raw]
    if not isinstance(raw, list):
        raise CnnlensError(f"{path}: model_config lacks input_layers/output_layers")
    return [(str(t[0]), int(t[1]), int(t[2])) for t in raw]


def _node_inputs(path: Path, name: str, node: Any) -> list[Key]:
    """The input tensors of one call: Keras 2 ``[[layer, node, tensor, kwargs], ...]`` or
    Keras 3 ``{"args": [...keras_history...], "kwargs": {...}}``."""
    if isinstance(node, dict):
        keys = _histories(node.get("args", []))
        if _histories(node.get("kwargs", {})):
            raise CnnlensError(f"{path}: layer {name!r} takes tensors as keyword arguments; "
                               "not supported")
        return keys
    if isinstance(node, list) and all(isinstance(t, list) and t and isinstance(t[0], str)
                                      for t in node):
        return [(t[0], int(t[1]), int(t[2])) for t in node]
    raise CnnlensError(f"{path}: layer {name!r} has an unreadable inbound node {node!r:.80}")


def _histories(obj: Any) -> list[Key]:
    if isinstance(obj, dict):
        hist = obj.get("config", {}).get("keras_history") if obj.get(
            "class_name") == "__keras_tensor__" else None
        if hist:
            return [(str(hist[0]), int(hist[1]), int(hist[2]))]
        return [k for v in obj.values() for k in _histories(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in _histories(v)]
    return []


# -- building ----------------------------------------------------------------------------------
@dataclass
class _Ctx:
    """What a layer builder needs: the layer, where errors point, and graph-wide decisions."""

    path: Path
    layer: GraphLayer
    dense_rows: dict[str, Shape]  # Dense name -> torch shape its Flatten flattened
    plain_flatten: dict[str, list[str]]  # Flatten name -> the Dense layers it feeds

    @property
    def cfg(self) -> dict[str, Any]:
        return self.layer.config

    def error(self, what: str) -> CnnlensError:
        return CnnlensError(
            f"{self.path}: layer {self.layer.name!r} ({self.layer.class_name}) {what}")

    def option(self, key: str, got: Any, accepted: str) -> CnnlensError:
        return self.error(f"has {key}={got!r}, which is not supported (accepted: {accepted})")

    def weight(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        w = self.layer.weights.get(key)
        if w is None:
            raise self.error(f"has no {key!r} weights in the file")
        if w.shape != shape:
            raise self.error(f"{key} has shape {list(w.shape)}; expected {list(shape)}")
        return w


def _ints(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, list | tuple) else (int(value),) * dims


def _one_input(ctx: _Ctx, shapes: list[Shape], ranks: tuple[int, ...] | None = None) -> Shape:
    if len(shapes) != 1:
        raise ctx.error(f"is called on {len(shapes)} tensors; expected 1")
    if ranks is not None and len(shapes[0]) not in ranks:
        raise ctx.error(f"gets a tensor of rank {len(shapes[0]) + 1} (with batch); expected "
                        + " or ".join(str(r + 1) for r in ranks))
    return shapes[0]


def _channels(ctx: _Ctx, shape: Shape) -> int:
    if shape[0] is None:
        raise ctx.error("gets an input with an unknown channel count")
    return shape[0]


def _size(value: tuple[int, ...]) -> Any:
    """A per-axis size for torch (whose stubs want a fixed-length tuple per dimensionality)."""
    return value


def _set(module: nn.Module, name: str, array: np.ndarray) -> None:
    """Copy a Keras array into a parameter or buffer of ``module`` (same shape)."""
    target = module.get_parameter(name) if name in dict(module.named_parameters()) else (
        module.get_buffer(name))
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU, "selu": nn.SELU,
    "softplus": nn.Softplus, "softsign": nn.Softsign, "swish": nn.SiLU, "silu": nn.SiLU,
    "gelu": nn.GELU, "relu6": nn.ReLU6, "mish": nn.Mish,
    "softmax": lambda: nn.Softmax(dim=1), "log_softmax": lambda: nn.LogSoftmax(dim=1),
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # the Keras 3 function's default slope
}


def activation_name(act: Any) -> str:
    """The activation's name, whether serialised as a string or (newer Keras) an object."""
    if isinstance(act, dict):
        act = act.get("config", {}).get("name", act.get("class_name"))
    return "linear" if act is None else str(act).lower()


def _activation(ctx: _Ctx, act: Any) -> tuple[str, nn.Module | None]:
    name = activation_name(act)
    if name == "linear":
        return name, None
    if name not in _ACTIVATIONS:
        raise ctx.error(f"has activation {name!r}, which is not supported (accepted: linear, "
                        + ", ".join(sorted(_ACTIVATIONS)) + ")")
    return name, _ACTIVATIONS[name]()


def _with_activation(ctx: _Ctx, core_name: str, core: nn.Module,
                     pad: nn.Module | None = None) -> nn.Module:
    """``core`` alone, or a block ``[pad,] core, activation`` whose output is the layer's."""
    act_name, act = _activation(ctx, ctx.cfg.get("activation", "linear"))
    if act is None and pad is None:
        return core
    parts = [("pad", pad)] if pad is not None else []
    parts.append((core_name, core))
    if act is not None:
        parts.append((act_name, act))
    return nn.Sequential(OrderedDict(parts))


def _build_conv(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    dims = int(ctx.layer.class_name[4])
    shape = _one_input(ctx, shapes, (dims + 1,))
    cfg = ctx.cfg
    if cfg.get("groups", 1) != 1:
        raise ctx.option("groups", cfg["groups"], "1")
    k = _ints(cfg.get("kernel_size"), dims)
    s = _ints(cfg.get("strides", 1), dims)
    d = _ints(cfg.get("dilation_rate", 1), dims)
    padding = str(cfg.get("padding", "valid")).lower()
    if padding not in ("valid", "same") and not (padding == "causal" and dims == 1):
        raise ctx.option("padding", padding, "'valid', 'same'" + (", 'causal'" * (dims == 1)))
    if any(st > 1 for st in s) and any(di > 1 for di in d):
        raise ctx.option("strides", list(s), "1 when dilation_rate > 1, as in Keras")
    c_in, filters = _channels(ctx, shape), int(cfg["filters"])
    kernel = ctx.weight("kernel", (*k, c_in, filters))
    use_bias = bool(cfg.get("use_bias", True))
    weight = kernel.transpose(dims + 1, dims, *range(dims))  # -> (out, in, *k)
    bias = ctx.weight("bias", (filters,)) if use_bias else None
    symmetric = all(st == 1 and (kk - 1) * di % 2 == 0 for kk, st, di in zip(k, s, d, strict=True))
    act = activation_name(cfg.get("activation", "linear"))
    if (act == "relu" and padding == "same" and symmetric and use_bias and len(set(k)) == 1
            and set(d) == {1}):  # the registry models' block
        block: nn.Module = ConvReLU(dims, c_in, filters, k[0])
        conv = block.get_submodule("conv")
    else:
        conv_cls = nn.Conv1d if dims == 1 else nn.Conv2d
        torch_pad = "same" if padding == "same" and symmetric else 0
        conv = conv_cls(c_in, filters, _size(k), stride=_size(s), padding=torch_pad,
                        dilation=_size(d), bias=use_bias)
        pad: nn.Module | None = None
        if padding == "same" and not symmetric:
            pad = SamePad(k, s, d)
        elif padding == "causal":
            pad = nn.ConstantPad1d(((k[0] - 1) * d[0], 0), 0.0)
        block = _with_activation(ctx, "conv", conv, pad)
    _set(conv, "weight", weight)
    if bias is not None:
        _set(conv, "bias", bias)
    spatial = tuple(_out_size(n, kk, st, di, padding) for n, kk, st, di in
                    zip(shape[1:], k, s, d, strict=True))
    return block, (filters, *spatial)


def _out_size(n: int | None, k: int, s: int, d: int, padding: str) -> int | None:
    if n is None:
        return None
    if padding == "valid":
        return (n - (k - 1) * d - 1) // s + 1
    return math.ceil(n / s)  # same, causal


def _build_pool(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    cls = ctx.layer.class_name
    dims = int(cls[-2])
    shape = _one_input(ctx, shapes, (dims + 1,))
    pool = _ints(ctx.cfg.get("pool_size", 2), dims)
    stride = _ints(ctx.cfg.get("strides") or pool, dims)
    padding = str(ctx.cfg.get("padding", "valid")).lower()
    is_max = cls.startswith("Max")
    module: nn.Module
    if padding == "valid":
        pool_cls: type[nn.Module] = {(True, 1): nn.MaxPool1d, (True, 2): nn.MaxPool2d,
                                     (False, 1): nn.AvgPool1d, (False, 2): nn.AvgPool2d}[
            (is_max, dims)]
        module = pool_cls(_size(pool), _size(stride))
    elif padding == "same" and is_max:
        module = nn.Sequential(OrderedDict(
            pad=SamePad(pool, stride, (1,) * dims, value=-math.inf),
            pool=(nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(_size(pool), _size(stride))))
    elif padding == "same":
        module = AvgPoolSame(pool, stride)
    else:
        raise ctx.option("padding", padding, "'valid', 'same'")
    spatial = tuple(_out_size(n, p, st, 1, padding) for n, p, st in
                    zip(shape[1:], pool, stride, strict=True))
    return module, (shape[0], *spatial)


def _build_global_pool(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    cls = ctx.layer.class_name
    dims = int(cls[-2])
    shape = _one_input(ctx, shapes, (dims + 1,))
    pool_cls: type[nn.Module] = {
        ("Average", 1): nn.AdaptiveAvgPool1d, ("Average", 2): nn.AdaptiveAvgPool2d,
        ("Max", 1): nn.AdaptiveMaxPool1d, ("Max", 2): nn.AdaptiveMaxPool2d}[
        ("Average" if "Average" in cls else "Max", dims)]
    if ctx.cfg.get("keepdims", False):
        return pool_cls(1), (shape[0], *(1,) * dims)
    return nn.Sequential(pool_cls(1), nn.Flatten()), (shape[0],)


def _build_flatten(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    shape = _one_input(ctx, shapes)
    size = None if None in shape else math.prod(s for s in shape if s is not None)
    targets = ctx.plain_flatten.get(ctx.layer.name)
    if len(shape) == 1 or (targets is not None and size is not None):
        for dense in targets or []:
            ctx.dense_rows[dense] = shape
        return nn.Flatten(), (size,)
    return ChannelsLastFlatten(), (size,)


def _build_dense(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    shape = _one_input(ctx, shapes)
    units, c_in = int(ctx.cfg["units"]), _channels(ctx, shape)
    use_bias = bool(ctx.cfg.get("use_bias", True))
    kernel = ctx.weight("kernel", (c_in, units))
    rows = ctx.dense_rows.get(ctx.layer.name)
    if rows is not None:  # after a channels-first Flatten: Keras' rows are (*spatial, C)
        sizes = [r for r in rows if r is not None]  # all known: _build_flatten checked
        kernel = np.moveaxis(kernel.reshape(*sizes[1:], sizes[0], units), -2, 0).reshape(
            c_in, units)
    linear = (nn.Linear if len(shape) == 1 else ChannelsDense)(c_in, units, bias=use_bias)
    _set(linear, "weight", kernel.T)
    if use_bias:
        _set(linear, "bias", ctx.weight("bias", (units,)))
    return _with_activation(ctx, "linear", linear), (units, *shape[1:])


def _build_batch_norm(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    shape = _one_input(ctx, shapes, (1, 2, 3))
    rank = len(shape) + 1
    axis = ctx.cfg.get("axis", -1)
    axes = [a % rank for a in (axis if isinstance(axis, list) else [axis])]
    if axes != [rank - 1]:
        raise ctx.option("axis", axis, "-1, the channel axis")
    if ctx.cfg.get("renorm"):
        raise ctx.option("renorm", True, "False")
    c = _channels(ctx, shape)
    bn = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(c, eps=float(ctx.cfg.get(
        "epsilon", 1e-3)))
    _set(bn, "running_mean", ctx.weight("moving_mean", (c,)))
    _set(bn, "running_var", ctx.weight("moving_variance", (c,)))
    if ctx.cfg.get("scale", True):  # else gamma stays 1
        _set(bn, "weight", ctx.weight("gamma", (c,)))
    if ctx.cfg.get("center", True):  # else beta stays 0
        _set(bn, "bias", ctx.weight("beta", (c,)))
    return bn, shape


def _build_activation(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    shape = _one_input(ctx, shapes)
    cls, cfg = ctx.layer.class_name, ctx.cfg
    module: nn.Module | None
    if cls == "Activation":
        module = _activation(ctx, cfg.get("activation", "linear"))[1]
    elif cls == "ReLU":
        slope, threshold = float(cfg.get("negative_slope") or 0), float(cfg.get("threshold") or 0)
        top = cfg.get("max_value")
        plain = top is None and slope == 0 and threshold == 0
        module = nn.ReLU() if plain else KerasReLU(None if top is None else float(top), slope,
                                                   threshold)
    elif cls == "LeakyReLU":
        module = nn.LeakyReLU(float(cfg.get("negative_slope", cfg.get("alpha", 0.3))))
    elif cls == "ELU":
        module = nn.ELU(float(cfg.get("alpha", 1.0)))
    else:  # Softmax
        if cfg.get("axis", -1) not in (-1, len(shape)):
            raise ctx.option("axis", cfg.get("axis"), "-1")
        module = nn.Softmax(dim=1)
    return module or nn.Identity(), shape


def _build_identity(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    """Dropout and noise layers: the identity at inference."""
    shape = _one_input(ctx, shapes)
    if ctx.layer.class_name == "Dropout":
        return nn.Dropout(float(ctx.cfg.get("rate", 0.5))), shape
    return nn.Identity(), shape


def _build_zero_padding(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    dims = int(ctx.layer.class_name[-2])
    shape = _one_input(ctx, shapes, (dims + 1,))
    raw = ctx.cfg.get("padding", 1)
    per_axis = [raw] * dims if isinstance(raw, int) or (dims == 1 and len(raw) == 2 and all(
        isinstance(v, int) for v in raw)) else list(raw)
    pads = [_ints(p, 2) for p in per_axis]  # [(before, after)] per spatial axis
    module: nn.Module = (nn.ConstantPad1d(_size(pads[0]), 0.0) if dims == 1
                         else nn.ZeroPad2d(_size((*pads[1], *pads[0]))))
    spatial = tuple(None if n is None else n + a + b for n, (a, b) in
                    zip(shape[1:], pads, strict=True))
    return module, (shape[0], *spatial)


def _build_reshape(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    shape = _one_input(ctx, shapes)
    target = tuple(int(t) for t in ctx.cfg["target_shape"])
    keras_out: list[int | None] = list(target)
    if -1 in target:
        size = None if None in shape else math.prod(s for s in shape if s is not None)
        known = math.prod(t for t in target if t != -1)
        keras_out[target.index(-1)] = None if size is None else size // known
    out = tuple(keras_out) if len(keras_out) == 1 else (keras_out[-1], *keras_out[:-1])
    return KerasReshape(target), out


def _build_merge(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    if len(shapes) < 2:
        raise ctx.error(f"is called on {len(shapes)} tensor(s); expected at least 2")
    if ctx.layer.class_name == "Subtract" and len(shapes) != 2:
        raise ctx.error("is called on more than 2 tensors; expected 2")
    if len({len(s) for s in shapes}) != 1:
        raise ctx.error(f"merges tensors of different ranks: {shapes}")
    out = tuple(next((d for d in dims if d is not None), None) for dims in zip(*shapes,
                                                                              strict=True))
    return Merge(ctx.layer.class_name), out


def _build_concatenate(ctx: _Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    if len(shapes) < 2 or len({len(s) for s in shapes}) != 1:
        raise ctx.error(f"concatenates tensors of shapes {shapes}; expected 2+ of one rank")
    rank = len(shapes[0]) + 1
    axis = int(ctx.cfg.get("axis", -1)) % rank
    if axis == 0:
        raise ctx.option("axis", ctx.cfg.get("axis"), "a non-batch axis")
    dim = 1 if axis == rank - 1 else axis + 1  # channels last -> 1; spatial axes shift by one
    sizes = [s[dim - 1] for s in shapes]
    total = None if None in sizes else sum(x for x in sizes if x is not None)
    out = list(shapes[0])
    out[dim - 1] = total
    return Concat(dim), tuple(out)


_Builder = Callable[[_Ctx, list[Shape]], tuple[nn.Module, Shape]]
BUILDERS: dict[str, _Builder] = {
    "Conv1D": _build_conv, "Conv2D": _build_conv,
    "MaxPooling1D": _build_pool, "MaxPooling2D": _build_pool,
    "AveragePooling1D": _build_pool, "AveragePooling2D": _build_pool,
    "GlobalMaxPooling1D": _build_global_pool, "GlobalMaxPooling2D": _build_global_pool,
    "GlobalAveragePooling1D": _build_global_pool, "GlobalAveragePooling2D": _build_global_pool,
    "Flatten": _build_flatten, "Dense": _build_dense,
    "BatchNormalization": _build_batch_norm,
    "Activation": _build_activation, "ReLU": _build_activation,
    "LeakyReLU": _build_activation, "ELU": _build_activation, "Softmax": _build_activation,
    "Dropout": _build_identity, "SpatialDropout1D": _build_identity,
    "SpatialDropout2D": _build_identity, "GaussianNoise": _build_identity,
    "GaussianDropout": _build_identity, "AlphaDropout": _build_identity,
    "ZeroPadding1D": _build_zero_padding, "ZeroPadding2D": _build_zero_padding,
    "Reshape": _build_reshape, "Concatenate": _build_concatenate,
    **{op: _build_merge for op in ("Add", "Subtract", "Multiply", "Average", "Maximum",
                                   "Minimum")},
}
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
        ctx = _Ctx(path, layer, dense_rows, plain)
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
