"""``.pt2`` files (``torch.export.save``) turned back into a module with named, hookable layers.

An exported program is one flat graph; ``ep.module()`` runs it but its layers never run
as submodules, so forward hooks would not fire. ``torch.export.unflatten`` rebuilds the
original module tree (``layer4.1.conv2`` stays ``layer4.1.conv2``) with each submodule
running its own part of the graph, which is what CAM hooks need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.imported import Imported

#: aten ops (by name prefix) that end a classifier with probabilities.
_FINAL_OPS = {"aten.softmax": "softmax", "aten._softmax": "softmax",
              "aten.log_softmax": "log_softmax", "aten._log_softmax": "log_softmax",
              "aten.sigmoid": "sigmoid"}


def load_exported(path: Path) -> Imported:
    """Load ``path`` with ``torch.export.load`` and unflatten it into named submodules."""
    try:
        program = torch.export.load(path)
    except Exception as exc:
        raise CnnlensError(
            f"model file {path}: torch.export.load failed ({type(exc).__name__}: {exc}); "
            "was it written by torch.export.save?"
        ) from exc
    notes: list[str] = []
    module: nn.Module
    try:
        module = torch.export.unflatten(program)
        notes.append("unflattened the exported program: layers keep the model's module paths")
    except Exception as exc:
        module = program.module()
        notes.append(
            f"torch.export.unflatten failed ({type(exc).__name__}: {exc}); using the flat "
            "program, whose layers do not run as submodules (forward hooks will not fire)"
        )
    graph = program.graph
    input_shape, num_classes = _shapes(program, notes)
    if any(_training_op(node) for node in graph.nodes):
        notes.append("the program was exported in training mode (BatchNorm uses batch "
                     "statistics / dropout is active); re-export after model.eval()")
    return Imported(
        module=module,
        converter=f"torch.export {torch.__version__.split('+')[0]}",
        input_shape=input_shape,
        num_classes=num_classes,
        final_activation=_final_activation(graph),
        head_read=True,
        notes=notes,
    )


def _static(dims: Any) -> tuple[int, ...] | None:
    """Dimensions as ints, or None if any is symbolic (a dynamic dimension)."""
    out = []
    for d in dims:
        if not isinstance(d, int):
            return None
        out.append(int(d))
    return tuple(out)


def _shapes(program: Any, notes: list[str]) -> tuple[tuple[int, ...] | None, int | None]:
    """(C, *spatial) of the single example input and the output width, when static."""
    nodes = {n.name: n for n in program.graph.nodes}
    user_inputs = list(program.graph_signature.user_inputs)
    inputs = [nodes[name].meta.get("val") for name in user_inputs]
    tensors = [v for v in inputs if isinstance(v, torch.Tensor)]
    input_shape = None
    if len(tensors) != 1 or len(inputs) != 1:
        notes.append(f"the program takes {len(inputs)} inputs; cnnlens feeds one image batch")
    else:
        shape = tensors[0].shape
        input_shape = _static(shape[1:])
        if isinstance(shape[0], int):
            notes.append(
                f"the batch size is fixed at {shape[0]} by the export: re-export with "
                f"dynamic_shapes={{{user_inputs[0]!r}: {{0: torch.export.Dim.DYNAMIC}}}} to run "
                "other batch sizes"
            )
    output = next(n for n in program.graph.nodes if n.op == "output").args[0]
    first = output[0] if isinstance(output, (tuple, list)) and output else output
    val = first.meta.get("val") if isinstance(first, torch.fx.Node) else None
    num_classes = None
    if isinstance(val, torch.Tensor) and val.dim() == 2 and isinstance(val.shape[1], int):
        num_classes = int(val.shape[1])
    return input_shape, num_classes


def _training_op(node: torch.fx.Node) -> bool:
    name = str(node.target)
    if name.startswith("aten.batch_norm") and len(node.args) > 5:
        return node.args[5] is True
    if name.startswith("aten.dropout") and len(node.args) > 2:
        return node.args[2] is True
    return False


def _final_activation(graph: torch.fx.Graph) -> str | None:
    """The activation whose result the program returns (its first output), if any."""
    output = next(n for n in graph.nodes if n.op == "output").args[0]
    last = output[0] if isinstance(output, (tuple, list)) and output else output
    if not isinstance(last, torch.fx.Node) or last.op != "call_function":
        return None
    name = str(last.target)
    return next((act for op, act in _FINAL_OPS.items() if name.startswith(op + ".")), None)


__all__ = ["load_exported"]
