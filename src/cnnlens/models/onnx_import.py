"""ONNX files converted to torch with onnx2torch (the ``onnx`` extra).

onnx2torch builds a ``torch.fx.GraphModule`` with one submodule per graph node, named after
the node (``/layer4/layer4.1/conv2/Conv`` becomes ``layer4/layer4/1/conv2/Conv``: torch
forbids dots in module names), so CAM hooks can be attached by node name.

Two things are fixed up first:

* Exporters other than torch's often store weights as ``Constant`` nodes rather than
  initializers; onnx2torch only looks weights up among initializers (a ``KeyError`` on the
  weight's name), so such constants are turned into initializers.
* onnx2torch 1.5.15 imports torchvision at import time, for its NonMaxSuppression and
  RoiAlign converters only. cnnlens installs it without dependencies (torchvision would
  replace the CPU torch with a multi-GB build), so when torchvision is absent a stand-in
  whose functions raise is placed in ``sys.modules`` just for ``import onnx2torch`` and
  removed right after; graphs that use those two operators are refused up front.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlens.errors import CnnlensError
from cnnlens.models.imported import FINAL_ACTIVATIONS, Imported

#: Operators whose onnx2torch converters call torchvision.
TORCHVISION_OPS = ("NonMaxSuppression", "RoiAlign")
_INSTALL = 'install the onnx extra: pip install onnx; pip install --no-deps "onnx2torch==1.5.15"'


def _unavailable(name: str) -> Callable[..., Any]:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"torchvision is not installed (cnnlens stand-in for {name})")

    return fail


def _torchvision_standin() -> dict[str, types.ModuleType]:
    """``sys.modules`` entries for the part of torchvision onnx2torch imports."""
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    for name in ("nms", "box_convert", "roi_align"):
        setattr(ops, name, _unavailable(f"torchvision.ops.{name}"))
    tv.ops = ops  # type: ignore[attr-defined]
    return {"torchvision": tv, "torchvision.ops": ops}


def has_torchvision() -> bool:
    """True when the real torchvision is importable (a stand-in some other code put in
    ``sys.modules`` has no ``__spec__`` and does not count)."""
    module = sys.modules.get("torchvision")
    if module is not None:
        return getattr(module, "__spec__", None) is not None
    try:
        return importlib.util.find_spec("torchvision") is not None
    except (ValueError, ImportError):
        return False


def import_onnx2torch() -> types.ModuleType:
    """``onnx2torch``, importable without torchvision; a missing package names the fix."""
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    for package in ("onnx", "onnx2torch"):
        if importlib.util.find_spec(package) is None:
            raise CnnlensError(f"loading .onnx files needs the {package} package; {_INSTALL}")
    if has_torchvision():
        return importlib.import_module("onnx2torch")
    standin = _torchvision_standin()
    before = {name: sys.modules.get(name) for name in standin}
    sys.modules.update(standin)
    try:
        return importlib.import_module("onnx2torch")
    finally:  # leave sys.modules as found (another stand-in included)
        for name, module in standin.items():
            if sys.modules.get(name) is module:
                if before[name] is None:
                    del sys.modules[name]
                else:
                    sys.modules[name] = before[name]  # type: ignore[assignment]


def _domain(domain: str) -> str:
    """The default ONNX domain is spelt "" or "ai.onnx"."""
    return "" if domain == "ai.onnx" else domain


def constants_to_initializers(model: Any) -> int:
    """Turn top-level ``Constant`` nodes holding a tensor into initializers; their count."""
    from onnx import helper, numpy_helper

    graph = model.graph
    outputs = {o.name for o in graph.output}
    moved: list[int] = []
    for i, node in enumerate(graph.node):
        if (node.op_type != "Constant" or _domain(node.domain) != ""
                or len(node.attribute) != 1 or node.output[0] in outputs):
            continue
        attr = node.attribute[0]
        value = helper.get_attribute_value(attr)
        if attr.name == "value":
            tensor = value
        elif attr.name in ("value_float", "value_floats", "value_int", "value_ints"):
            dtype = np.float32 if "float" in attr.name else np.int64
            tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype))
        else:  # sparse or string constants stay nodes
            continue
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        moved.append(i)
    for i in reversed(moved):
        del graph.node[i]
    return len(moved)


def _check_operators(model: Any, path: Path) -> None:
    """Refuse, by node, the first operator onnx2torch cannot convert (after its import)."""
    from onnx2torch.node_converters.registry import get_converter

    opsets = {_domain(o.domain): o.version for o in model.opset_import}
    torchvision = has_torchvision()
    for i, node in enumerate(model.graph.node):
        where = f"node {node.name or '#' + str(i)} ({node.op_type})"
        domain = _domain(node.domain)
        if domain not in opsets:
            raise CnnlensError(
                f"model file {path}: {where} uses domain {domain!r}, which the model does "
                "not import"
            )
        try:
            get_converter(operation_type=node.op_type, version=opsets[domain], domain=domain)
        except NotImplementedError:
            in_domain = f"domain {domain!r}, " if domain else ""
            raise CnnlensError(
                f"model file {path}: operator {node.op_type} ({in_domain}opset "
                f"{opsets[domain]}) of node {node.name or '#' + str(i)} is not supported by "
                f"onnx2torch {_version('onnx2torch')}"
            ) from None
        if node.op_type in TORCHVISION_OPS and not torchvision:
            raise CnnlensError(
                f"model file {path}: {where} needs torchvision, which is not installed"
            )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _dims(value_info: Any) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def load_onnx(path: Path) -> Imported:
    """Convert an ONNX file into a ``GraphModule`` whose layers are named after its nodes."""
    o2t = import_onnx2torch()
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise CnnlensError(f"model file {path}: not a readable ONNX model: {exc}") from exc
    notes: list[str] = []
    moved = constants_to_initializers(model)
    if moved:
        notes.append(f"turned {moved} Constant node(s) into initializers (weights stored as "
                     "constants)")
    _check_operators(model, path)
    try:
        module = o2t.convert(model)
    except Exception as exc:
        raise CnnlensError(
            f"model file {path}: onnx2torch could not convert it ({type(exc).__name__}: {exc})"
        ) from exc
    notes.append("layers are named after the ONNX graph's nodes ('.' becomes '/')")
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    input_shape = None
    if len(inputs) == 1:
        dims = _dims(inputs[0])[1:]
        if dims and all(isinstance(d, int) and d > 0 for d in dims):
            input_shape = tuple(int(d) for d in dims)
    else:
        notes.append(f"the graph takes {len(inputs)} inputs; cnnlens feeds one image batch")
    num_classes = None
    if model.graph.output:
        out = _dims(model.graph.output[0])
        if len(out) == 2 and isinstance(out[1], int) and out[1] > 0:
            num_classes = out[1]
    return Imported(
        module=module,
        converter=f"onnx2torch {_version('onnx2torch')}",
        input_shape=input_shape,
        num_classes=num_classes,
        final_activation=_final_activation(model),
        head_read=True,
        notes=notes,
    )


def _final_activation(model: Any) -> str | None:
    """The activation of the node producing the graph's first output, if it is one."""
    if not model.graph.output:
        return None
    first = model.graph.output[0].name
    producer = next((n for n in reversed(model.graph.node) if first in n.output), None)
    return FINAL_ACTIVATIONS.get(producer.op_type) if producer is not None else None


__all__ = ["constants_to_initializers", "import_onnx2torch", "load_onnx"]
