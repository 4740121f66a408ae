"""A Keras HDF5 model file read as a graph: layers, their configs, weights and calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlens.errors import CnnlensError
from cnnlens.models.keras_modules import Key


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


@contextmanager
def open_keras_h5(path: str | Path) -> Iterator[tuple[Path, Any, Any]]:
    """Open a Keras HDF5 model file: its path, the open ``h5py.File`` and the parsed
    ``model_config``. A missing, weights-only, unparsable or unreadable file (also while
    the caller reads it) is an error naming the file: both readers share these checks."""
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
            yield p, f, config
    except OSError as exc:
        raise CnnlensError(f"{p}: not a readable Keras HDF5 file ({exc})") from None


def file_versions(f: Any) -> tuple[str, str]:
    """The Keras version and backend a file was saved with ("unknown" when absent)."""
    return _text(f.attrs.get("keras_version", "unknown")), _text(f.attrs.get("backend",
                                                                             "unknown"))


def read_keras_graph(path: str | Path) -> KerasGraphFile:
    """Read any Keras 2 (or Keras 3 legacy) HDF5 model's graph and weights with h5py."""
    with open_keras_h5(path) as (p, f, config):
        graph = _parse_model(p, config)
        graph.keras_version, graph.backend = file_versions(f)
        root = f.get("model_weights", f)
        for layer in graph.layers:
            layer.weights = read_layer_weights(p, root, layer.name)
    return graph


def read_layer_weights(path: Path, root: Any, name: str, label: str | None = None
                       ) -> dict[str, np.ndarray]:
    """A layer's arrays keyed by base name (``kernel``, ``moving_mean``...), ``:0`` dropped;
    ``label`` names the layer in errors (default ``layer 'NAME'``)."""
    if name not in root:
        return {}
    group = root[name]
    out: dict[str, np.ndarray] = {}
    for wname in group.attrs.get("weight_names", []):
        key = _text(wname).rsplit("/", 1)[-1].split(":")[0]
        try:
            out[key] = np.asarray(group[_text(wname)], dtype=np.float32)
        except KeyError:
            raise CnnlensError(f"{path}: weight {_text(wname)!r} of "
                               f"{label or f'layer {name!r}'} is missing") from None
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


