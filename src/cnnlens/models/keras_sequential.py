"""Read a Keras 2 HDF5 ``Sequential`` model file with h5py only (no TensorFlow).

The ``model_config`` JSON gives the architecture, ``model_weights/<layer>`` the arrays.
Standalone activation layers are folded into the layer before, as Keras fuses them, so the
layers line up one to one with a registry model's children (:mod:`cnnlens.models.keras_h5`
checks and converts them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlens.errors import CnnlensError
from cnnlens.models.keras_config import file_versions, open_keras_h5, read_layer_weights

SUPPORTED_LAYERS = (
    "InputLayer",
    "Conv1D",
    "Conv2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "Flatten",
    "Dense",
    "Activation",
    "ReLU",
    "Softmax",
)
_ACTIVATION_LAYERS = ("Activation", "ReLU", "Softmax")


@dataclass
class KerasLayer:
    """One weight-carrying or shape-changing Keras layer, activation layers folded in."""

    name: str
    class_name: str
    config: dict[str, Any]
    activation: str = "linear"
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"layer {self.name!r} ({self.class_name})"


@dataclass
class KerasFile:
    """What an HDF5 file holds: the ordered layers, the input shape and provenance."""

    layers: list[KerasLayer]
    input_shape: tuple[int | None, ...] | None  # channels-last, without the batch axis
    keras_version: str
    backend: str


def read_keras_h5(path: str | Path) -> KerasFile:
    """Read the architecture and weights of a Keras 2 HDF5 model file (no TensorFlow)."""
    with open_keras_h5(path) as (p, f, config):
        _check_sequential(p, config)
        keras_version, backend = file_versions(f)
        weights_root = f.get("model_weights", f)
        layers, input_shape = _parse_layers(p, config)
        for layer in layers:
            layer.weights = _read_weights(p, weights_root, layer)
    return KerasFile(layers, input_shape, keras_version, backend)


def _check_sequential(path: Path, config: Any) -> None:
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise CnnlensError(
            f"{path}: model is {kind!r}; only Keras Sequential models can be imported"
        )


def _parse_layers(
    path: Path, config: dict[str, Any]
) -> tuple[list[KerasLayer], tuple[int | None, ...] | None]:
    """Ordered layers with standalone activation layers folded into the layer before."""
    inner = config.get("config")
    raw_layers = inner.get("layers") if isinstance(inner, dict) else inner  # Keras <2.2: list
    if not isinstance(raw_layers, list):
        raise CnnlensError(f"{path}: model_config has no layer list")
    layers: list[KerasLayer] = []
    input_shape: tuple[int | None, ...] | None = None
    for entry in raw_layers:
        cls = str(entry.get("class_name"))
        cfg = entry.get("config", {})
        name = str(cfg.get("name", "?"))
        if cls not in SUPPORTED_LAYERS:
            raise CnnlensError(
                f"{path}: layer {name!r} ({cls}) is not supported; supported: "
                + ", ".join(c for c in SUPPORTED_LAYERS if c not in _ACTIVATION_LAYERS)
                + " (with ReLU/softmax activations)"
            )
        if input_shape is None and cfg.get("batch_input_shape"):
            input_shape = tuple(cfg["batch_input_shape"][1:])
        if cls == "InputLayer":
            continue
        if cls in _ACTIVATION_LAYERS:
            _fold_activation(path, layers, name, cls, cfg)
            continue
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise CnnlensError(
                f"{path}: layer {name!r} ({cls}) uses data_format "
                f"{cfg['data_format']!r}; accepted: 'channels_last'"
            )
        act = _activation_name(path, name, cls, cfg.get("activation", "linear"))
        layers.append(KerasLayer(name, cls, cfg, act))
    return layers, input_shape


def _activation_name(path: Path, name: str, cls: str, act: Any) -> str:
    if isinstance(act, dict):  # newer Keras serialises activations as objects
        act = act.get("config", {}).get("name", act.get("class_name"))
    act = str(act).lower()
    if act not in ("linear", "relu", "softmax"):
        raise CnnlensError(
            f"{path}: layer {name!r} ({cls}) has activation {act!r}; "
            "accepted: 'relu', 'softmax', 'linear'"
        )
    return act


def _fold_activation(
    path: Path, layers: list[KerasLayer], name: str, cls: str, cfg: dict[str, Any]
) -> None:
    """Attach a standalone activation layer to the layer it follows, as Keras fuses it."""
    if cls == "ReLU":
        if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get(
            "threshold", 0
        ):
            raise CnnlensError(
                f"{path}: layer {name!r} (ReLU) has max_value/negative_slope/threshold set; "
                "only a plain ReLU is supported"
            )
        act = "relu"
    elif cls == "Softmax":
        act = "softmax"
    else:
        act = _activation_name(path, name, cls, cfg.get("activation", "linear"))
    if act == "linear":
        return
    prev = layers[-1] if layers else None
    if prev is None or prev.class_name not in ("Conv1D", "Conv2D", "Dense") or (
        prev.activation != "linear"
    ):
        raise CnnlensError(
            f"{path}: layer {name!r} ({cls}) must directly follow a Conv or Dense layer "
            "that has no activation of its own"
        )
    prev.activation = act


def _read_weights(path: Path, root: Any, layer: KerasLayer) -> dict[str, np.ndarray]:
    """The layer's arrays keyed ``kernel`` / ``bias``; a weighted layer must have a kernel."""
    if layer.class_name not in ("Conv1D", "Conv2D", "Dense"):
        return {}
    if layer.name not in root:
        raise CnnlensError(f"{path}: no weights stored for {layer.label}")
    out = read_layer_weights(path, root, layer.name, layer.label)
    if "kernel" not in out:
        raise CnnlensError(f"{path}: {layer.label} has no kernel weights")
    return out


__all__ = ["SUPPORTED_LAYERS", "KerasFile", "KerasLayer", "read_keras_h5"]
