"""Import a trained Keras 2 HDF5 ``Sequential`` model into the matching cnnlens model.

The study's models were trained in Keras; importing them (rather than retraining) lets every
later stage reproduce the study's numbers. The file is read with h5py only (no TensorFlow,
:mod:`cnnlens.models.keras_sequential`): the ``model_config`` JSON gives the architecture,
``model_weights/<layer>`` the arrays. The architecture is checked layer by layer against a
registry model, so a file that does not fit fails with a message naming the layer instead of
loading silently wrong weights.
Any other Keras CNN goes through :func:`load_keras_module` (re-exported from
:mod:`cnnlens.models.keras_graph`), which rebuilds the file's own graph; for the course files
both give the same weights and outputs (the tests check it).

Layout conversions (Keras is channels-last):

* Conv kernels ``(k, in, out)`` / ``(kh, kw, in, out)`` become ``(out, in, k[, kw])``.
* A Dense after Flatten sees features in ``(*spatial, C)`` order; torch flattens ``(C,
  *spatial)``, so the kernel rows are permuted.
* Keras ``same`` padding with stride 1 pads ``(k - 1) // 2`` before and the rest after,
  exactly as torch ``padding="same"`` does (for odd and even kernels).
* A final softmax is dropped: cnnlens models output logits (argmax is unchanged); the
  dropped activation is recorded in the returned info.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from cnnlens.errors import CnnlensError
from cnnlens.models import get_model_spec
from cnnlens.models.keras_graph import load_keras_module
from cnnlens.models.keras_sequential import KerasLayer, read_keras_h5
from cnnlens.models.layers import ConvReLU

__all__ = ["load_keras_h5", "load_keras_module", "read_keras_h5"]


def load_keras_h5(path: str | Path, *, model_name: str) -> tuple[nn.Module, dict[str, Any]]:
    """Build registry model ``model_name`` holding the weights of a Keras HDF5 file.

    Returns the model (eval mode, outputs logits) and an info dict describing the source
    (Keras version, layers, the dropped final activation). Raises :class:`CnnlensError`
    naming the layer when the file does not fit the model.
    """
    p = Path(path)
    spec = get_model_spec(model_name)
    keras = read_keras_h5(p)
    with torch.random.fork_rng(devices=[]):  # init is overwritten: spare the caller's RNG
        model = spec.build()
    children = list(model.named_children())
    names = [layer.name for layer in keras.layers]
    if len(keras.layers) != len(children):
        raise CnnlensError(
            f"{p}: has {len(keras.layers)} layers ({', '.join(names)}) but {model_name} has "
            f"{len(children)} ({', '.join(n for n, _ in children)})"
        )
    shape = _check_input_shape(p, keras.input_shape, spec.input_shape, model_name)
    pre_flatten: tuple[int, ...] | None = None
    state: dict[str, torch.Tensor] = {}
    for i, (layer, (tname, module)) in enumerate(zip(keras.layers, children, strict=True)):
        expected = _expected_keras_class(module)
        if layer.name != tname or layer.class_name != expected:
            raise CnnlensError(
                f"{p}: layer {i} is {layer.name!r} ({layer.class_name}) but {model_name} "
                f"expects {tname!r} ({expected}) there"
            )
        last = i == len(children) - 1
        before = shape
        shape = _convert(p, layer, tname, module, shape, state, last=last,
                         model_name=model_name, pre_flatten=pre_flatten)
        pre_flatten = before if isinstance(module, nn.Flatten) else None
    model.load_state_dict(state)
    model.eval()
    final = keras.layers[-1].activation
    info = {
        "format": "keras-hdf5",
        "keras_version": keras.keras_version,
        "backend": keras.backend,
        "model": model_name,
        "layers": [f"{layer.name} ({layer.class_name})" for layer in keras.layers],
        "input_shape_keras": list(keras.input_shape) if keras.input_shape else None,
        "final_activation": final,
        "dropped_activation": final if final == "softmax" else None,
        "output": "logits",
    }
    return model, info


def _check_input_shape(
    path: Path,
    keras_shape: tuple[int | None, ...] | None,
    expected: tuple[int, ...],
    model_name: str,
) -> tuple[int, ...]:
    """Compare the channels-last Keras input shape with the model's ``(C, *spatial)``."""
    if not keras_shape:
        return expected
    as_torch = (keras_shape[-1], *keras_shape[:-1])
    ok = len(as_torch) == len(expected) and all(
        k is None or k == e for k, e in zip(as_torch, expected, strict=False)
    )
    if not ok:
        raise CnnlensError(
            f"{path}: input shape {list(keras_shape)} (channels last) does not fit {model_name}, "
            f"which takes {[*expected[1:], expected[0]]}"
        )
    return expected


def _expected_keras_class(module: nn.Module) -> str:
    if isinstance(module, ConvReLU):
        return f"Conv{_conv_of(module).weight.dim() - 2}D"
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        return f"MaxPooling{1 if isinstance(module, nn.MaxPool1d) else 2}D"
    if isinstance(module, nn.Sequential) and isinstance(
        module[0], nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d
    ):
        return f"GlobalAveragePooling{1 if isinstance(module[0], nn.AdaptiveAvgPool1d) else 2}D"
    if isinstance(module, nn.Flatten):
        return "Flatten"
    if isinstance(module, nn.Linear):
        return "Dense"
    return type(module).__name__  # no Keras counterpart: any Keras layer mismatches


def _conv_of(block: ConvReLU) -> _ConvNd:
    conv = block.conv
    if not isinstance(conv, _ConvNd):  # pragma: no cover - ConvReLU always holds a conv
        raise TypeError(f"ConvReLU without a conv: {conv!r}")
    return conv


def _ints(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (int(value),) * dims


def _require(path: Path, layer: KerasLayer, what: str, got: Any, want: Any) -> None:
    if got != want:
        raise CnnlensError(f"{path}: {layer.label} has {what} {got!r}; accepted: {want!r}")


def _convert(
    path: Path,
    layer: KerasLayer,
    tname: str,
    module: nn.Module,
    shape: tuple[int, ...],
    state: dict[str, torch.Tensor],
    *,
    last: bool,
    model_name: str,
    pre_flatten: tuple[int, ...] | None,
) -> tuple[int, ...]:
    """Check one layer against its torch counterpart, add its weights; return the new shape."""
    if isinstance(module, ConvReLU):
        return _convert_conv(path, layer, tname, _conv_of(module), shape, state)
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        return _convert_max_pool(path, layer, module, shape)
    if layer.class_name.startswith("GlobalAveragePooling"):
        _require(path, layer, "keepdims", bool(layer.config.get("keepdims", False)), False)
        return (shape[0],)
    if isinstance(module, nn.Flatten):
        return (math.prod(shape),)
    if isinstance(module, nn.Linear):
        _convert_dense(path, layer, tname, module, state, last=last, model_name=model_name,
                       pre_flatten=pre_flatten)
        return (module.out_features,)
    raise CnnlensError(f"{path}: {layer.label} has no cnnlens counterpart")  # pragma: no cover


def _convert_conv(path: Path, layer: KerasLayer, tname: str, conv: _ConvNd,
                  shape: tuple[int, ...], state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """A Conv1D/Conv2D ('same', stride 1, ReLU): its kernel moved to torch's layout."""
    cfg = layer.config
    dims = conv.weight.dim() - 2
    _require(path, layer, "padding", cfg.get("padding"), "same")
    _require(path, layer, "strides", _ints(cfg.get("strides", 1), dims), (1,) * dims)
    _require(path, layer, "dilation_rate", _ints(cfg.get("dilation_rate", 1), dims),
             (1,) * dims)
    _require(path, layer, "groups", cfg.get("groups", 1), 1)
    _require(path, layer, "activation", layer.activation, "relu")
    _require(path, layer, "kernel_size", _ints(cfg.get("kernel_size"), dims),
             tuple(conv.kernel_size))
    _require(path, layer, "filters", cfg.get("filters"), conv.out_channels)
    kernel = layer.weights["kernel"]
    perm = (dims + 1, dims, *range(dims))  # (*k, in, out) -> (out, in, *k)
    weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(perm)))
    _check_shape(path, layer, "kernel", weight, conv.weight)
    state[f"{tname}.conv.weight"] = weight
    state[f"{tname}.conv.bias"] = _bias(path, layer, conv.out_channels)
    return (conv.out_channels, *shape[1:])


def _convert_max_pool(path: Path, layer: KerasLayer, module: nn.MaxPool1d | nn.MaxPool2d,
                      shape: tuple[int, ...]) -> tuple[int, ...]:
    """A MaxPooling layer ('valid'): no weights, only its sizes must match."""
    cfg = layer.config
    dims = 1 if isinstance(module, nn.MaxPool1d) else 2
    pool = _ints(module.kernel_size, dims)
    stride = _ints(module.stride, dims)
    _require(path, layer, "padding", cfg.get("padding", "valid"), "valid")
    _require(path, layer, "pool_size", _ints(cfg.get("pool_size", 2), dims), pool)
    _require(path, layer, "strides", _ints(cfg.get("strides") or pool, dims), stride)
    spatial = tuple((s - k) // st + 1 for s, k, st in zip(shape[1:], pool, stride, strict=True))
    return (shape[0], *spatial)


def _convert_dense(path: Path, layer: KerasLayer, tname: str, module: nn.Linear,
                   state: dict[str, torch.Tensor], *, last: bool, model_name: str,
                   pre_flatten: tuple[int, ...] | None) -> None:
    """A Dense layer (linear; softmax only last, dropped): rows in torch's flatten order."""
    act = layer.activation
    if act == "relu" or (act == "softmax" and not last):
        raise CnnlensError(
            f"{path}: {layer.label} has activation {act!r}; {model_name} accepts "
            "'linear' here" + ("" if not last else " or 'softmax' (dropped: logits)")
        )
    _require(path, layer, "units", layer.config.get("units"), module.out_features)
    kernel = layer.weights["kernel"]
    if kernel.shape != (module.in_features, module.out_features):
        raise CnnlensError(
            f"{path}: {layer.label} kernel has shape {list(kernel.shape)}; {model_name} "
            f"expects {[module.in_features, module.out_features]}"
        )
    state[f"{tname}.weight"] = torch.from_numpy(
        np.ascontiguousarray(_channels_first_rows(kernel, pre_flatten).T)
    )
    state[f"{tname}.bias"] = _bias(path, layer, module.out_features)


def _channels_first_rows(kernel: np.ndarray, pre_flatten: tuple[int, ...] | None) -> np.ndarray:
    """Reorder Dense rows from Keras' ``(*spatial, C)`` flatten order to torch's ``(C, *S)``.

    ``pre_flatten`` is the torch-order shape that a preceding Flatten flattened, or None
    when the Dense does not follow a Flatten (then the rows are already in order).
    """
    if pre_flatten is None or len(pre_flatten) < 2:
        return kernel
    channels, spatial = pre_flatten[0], pre_flatten[1:]
    rows = kernel.reshape(*spatial, channels, kernel.shape[-1])
    return np.moveaxis(rows, -2, 0).reshape(kernel.shape)


def _bias(path: Path, layer: KerasLayer, n: int) -> torch.Tensor:
    if not layer.config.get("use_bias", True):
        return torch.zeros(n)
    if "bias" not in layer.weights:
        raise CnnlensError(f"{path}: {layer.label} has use_bias=True but no bias weights")
    bias = torch.from_numpy(layer.weights["bias"].copy())
    if bias.shape != (n,):
        raise CnnlensError(
            f"{path}: {layer.label} bias has shape {list(bias.shape)}; expected [{n}]"
        )
    return bias


def _check_shape(
    path: Path, layer: KerasLayer, what: str, got: torch.Tensor, want: torch.Tensor
) -> None:
    if got.shape != want.shape:
        raise CnnlensError(
            f"{path}: {layer.label} {what} has shape {list(got.shape)} in torch layout; "
            f"expected {list(want.shape)}"
        )
