"""One builder per Keras layer class: the torch module and its output shape, channels-first."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.keras_config import GraphLayer
from cnnlens.models.keras_modules import (
    AvgPoolSame,
    ChannelsDense,
    ChannelsLastFlatten,
    Concat,
    KerasReLU,
    KerasReshape,
    Merge,
    SamePad,
    Shape,
    pool_size,
)
from cnnlens.models.layers import ConvReLU


# -- building ----------------------------------------------------------------------------------
@dataclass
class Ctx:
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


def _one_input(ctx: Ctx, shapes: list[Shape], ranks: tuple[int, ...] | None = None) -> Shape:
    if len(shapes) != 1:
        raise ctx.error(f"is called on {len(shapes)} tensors; expected 1")
    if ranks is not None and len(shapes[0]) not in ranks:
        raise ctx.error(f"gets a tensor of rank {len(shapes[0]) + 1} (with batch); expected "
                        + " or ".join(str(r + 1) for r in ranks))
    return shapes[0]


def _channels(ctx: Ctx, shape: Shape) -> int:
    if shape[0] is None:
        raise ctx.error("gets an input with an unknown channel count")
    return shape[0]


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


def _activation(ctx: Ctx, act: Any) -> tuple[str, nn.Module | None]:
    name = activation_name(act)
    if name == "linear":
        return name, None
    if name not in _ACTIVATIONS:
        raise ctx.error(f"has activation {name!r}, which is not supported (accepted: linear, "
                        + ", ".join(sorted(_ACTIVATIONS)) + ")")
    return name, _ACTIVATIONS[name]()


def _with_activation(ctx: Ctx, core_name: str, core: nn.Module,
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


def _build_conv(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
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
        conv = conv_cls(c_in, filters, pool_size(k), stride=pool_size(s), padding=torch_pad,
                        dilation=pool_size(d), bias=use_bias)
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


def _build_pool(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
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
        module = pool_cls(pool_size(pool), pool_size(stride))
    elif padding == "same" and is_max:
        module = nn.Sequential(OrderedDict(
            pad=SamePad(pool, stride, (1,) * dims, value=-math.inf),
            pool=(nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(pool_size(pool), pool_size(stride))))
    elif padding == "same":
        module = AvgPoolSame(pool, stride)
    else:
        raise ctx.option("padding", padding, "'valid', 'same'")
    spatial = tuple(_out_size(n, p, st, 1, padding) for n, p, st in
                    zip(shape[1:], pool, stride, strict=True))
    return module, (shape[0], *spatial)


def _build_global_pool(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
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


def _build_flatten(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    shape = _one_input(ctx, shapes)
    size = None if None in shape else math.prod(s for s in shape if s is not None)
    targets = ctx.plain_flatten.get(ctx.layer.name)
    if len(shape) == 1 or (targets is not None and size is not None):
        for dense in targets or []:
            ctx.dense_rows[dense] = shape
        return nn.Flatten(), (size,)
    return ChannelsLastFlatten(), (size,)


def _build_dense(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
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


def _build_batch_norm(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
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


def _build_activation(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
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


def _build_identity(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    """Dropout and noise layers: the identity at inference."""
    shape = _one_input(ctx, shapes)
    if ctx.layer.class_name == "Dropout":
        return nn.Dropout(float(ctx.cfg.get("rate", 0.5))), shape
    return nn.Identity(), shape


def _build_zero_padding(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    dims = int(ctx.layer.class_name[-2])
    shape = _one_input(ctx, shapes, (dims + 1,))
    raw = ctx.cfg.get("padding", 1)
    per_axis = [raw] * dims if isinstance(raw, int) or (dims == 1 and len(raw) == 2 and all(
        isinstance(v, int) for v in raw)) else list(raw)
    pads = [_ints(p, 2) for p in per_axis]  # [(before, after)] per spatial axis
    module: nn.Module = (nn.ConstantPad1d(pool_size(pads[0]), 0.0) if dims == 1
                         else nn.ZeroPad2d(pool_size((*pads[1], *pads[0]))))
    spatial = tuple(None if n is None else n + a + b for n, (a, b) in
                    zip(shape[1:], pads, strict=True))
    return module, (shape[0], *spatial)


def _build_reshape(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    shape = _one_input(ctx, shapes)
    target = tuple(int(t) for t in ctx.cfg["target_shape"])
    keras_out: list[int | None] = list(target)
    if -1 in target:
        size = None if None in shape else math.prod(s for s in shape if s is not None)
        known = math.prod(t for t in target if t != -1)
        keras_out[target.index(-1)] = None if size is None else size // known
    out = tuple(keras_out) if len(keras_out) == 1 else (keras_out[-1], *keras_out[:-1])
    return KerasReshape(target), out


def _build_merge(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    if len(shapes) < 2:
        raise ctx.error(f"is called on {len(shapes)} tensor(s); expected at least 2")
    if ctx.layer.class_name == "Subtract" and len(shapes) != 2:
        raise ctx.error("is called on more than 2 tensors; expected 2")
    if len({len(s) for s in shapes}) != 1:
        raise ctx.error(f"merges tensors of different ranks: {shapes}")
    out = tuple(next((d for d in dims if d is not None), None) for dims in zip(*shapes,
                                                                              strict=True))
    return Merge(ctx.layer.class_name), out


def _build_concatenate(ctx: Ctx, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
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


_Builder = Callable[[Ctx, list[Shape]], tuple[nn.Module, Shape]]
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
