"""The network after a layer, cut out of a traced graph, for models that are not Sequential.

Ablation-CAM scores K ablated copies of a layer's output per sample. For a plain
``nn.Sequential`` the layers after the target are its remaining children
(:func:`~cnnlens.explain.layers.sequential_tail`); a model with its own ``forward`` (a
ResNet) or a converted graph (onnx2torch's ``torch.fx.GraphModule``) has no such list, so
without a cut every copy re-runs the whole network.

Here the model's ``forward`` is traced with ``torch.fx`` (a ``GraphModule`` is used as is),
with the target layer kept as one call, and the graph is cut at that call:

* the *tail* recomputes every node that depends on the layer's output;
* a residual connection skips over the layer, so the tail also needs values computed before
  the cut (a ResNet block's ``identity``): those become extra tail inputs, computed once per
  sample by the *head*, a graph of just what they need, and repeated for the ablated copies;
* values that do not depend on the input at all (constants, parameters) are recomputed in
  the tail.

Tracing runs the forward's Python once on symbolic values (never the model's layers) and
fails on data-dependent control flow; the engine then keeps the (batched) whole-model
passes. ``torch.export``'s unflattened modules (``.pt2``) do not trace (their forward
flattens its arguments) and take that path too. The engine also checks once per call that
the tail reproduces the model's own output before trusting it (``Engine.graph_saved``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, fx, nn


@dataclass(frozen=True)
class GraphTail:
    """A model cut at one layer: ``tail(acts, *head(x)) == model(x)`` when ``acts`` is the
    layer's output on ``x``."""

    head: fx.GraphModule  # x -> tuple of the pre-cut values the tail needs
    tail: fx.GraphModule  # (layer output, *pre-cut values) -> model output
    saved_names: tuple[str, ...]  # the graph's names of those values (for messages, tests)

    def saved(self, x: Tensor) -> tuple[Tensor, ...] | str:
        """The pre-cut values for a batch ``x``, or why they cannot be repeated per copy.

        Each must be a tensor with one row per sample (``x.shape[0]``): anything else (a
        Python int such as ``x.shape[0]``, a tensor without a batch dimension) cannot be
        expanded to the ablated batch with certainty.
        """
        with torch.no_grad():
            values = self.head(x)
        n = x.shape[0]
        for name, value in zip(self.saved_names, values, strict=True):
            if not isinstance(value, Tensor) or value.dim() == 0 or value.shape[0] != n:
                kind = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                return (f"the tail needs {name!r} from before the layer, which is {kind}, not a "
                        f"tensor with one row per sample")
        return tuple(values)


class _CutTracer(fx.Tracer):
    """torch.fx's tracer, keeping the target layer (and a graph's own calls) as leaves.

    The target must be a single call in the graph to cut there, even when it is a block
    (``layer4``) that the default tracer would trace into. Modules that contain the target
    are always traced into, so the cut can reach it.
    """

    def __init__(self, layer: nn.Module, leaves: set[int], containers: set[int]) -> None:
        super().__init__()
        self.layer = layer
        self.leaves = leaves
        self.containers = containers

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if m is self.layer:
            return True
        if id(m) in self.containers:
            return False
        return id(m) in self.leaves or super().is_leaf_module(m, module_qualified_name)


def _cut_nodes(gm: fx.GraphModule, layer: nn.Module) -> list[fx.Node]:
    return [
        n for n in gm.graph.nodes
        if n.op == "call_module" and gm.get_submodule(str(n.target)) is layer
    ]


def traced(model: nn.Module, layer_name: str, layer: nn.Module) -> fx.GraphModule | str:
    """The model as a graph in which ``layer`` is one call, or why it cannot be traced.

    A ``GraphModule`` that calls the layer directly is used as it is (onnx2torch's output);
    otherwise the model is traced, keeping the graph's own calls (if it is one) and the
    standard torch layers as leaves.
    """
    if isinstance(model, fx.GraphModule) and len(_cut_nodes(model, layer)) == 1:
        return model
    parts = layer_name.split(".")
    containers = {id(model)} | {id(model.get_submodule(".".join(parts[:i])))
                                for i in range(1, len(parts))}
    leaves: set[int] = set()
    if isinstance(model, fx.GraphModule):
        leaves = {id(model.get_submodule(str(n.target))) for n in model.graph.nodes
                  if n.op == "call_module"}
    try:
        graph = _CutTracer(layer, leaves, containers).trace(model)
    except Exception as exc:  # any failure means "not traceable"; the caller falls back
        return f"torch.fx cannot trace the model ({type(exc).__name__}: {exc})".split("\n")[0]
    return fx.GraphModule(model, graph)


def _closure(start: Iterable[fx.Node]) -> set[fx.Node]:
    """``start`` and every node they (transitively) read."""
    seen: set[fx.Node] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(node.all_input_nodes)
    return seen


def cut_graph(gm: fx.GraphModule, layer: nn.Module) -> GraphTail | str:
    """Split ``gm`` at the one call of ``layer`` into head and tail (see the module doc)."""
    cuts = _cut_nodes(gm, layer)
    if len(cuts) != 1:
        return f"the layer is called {len(cuts)} times in the traced graph, not once"
    cut = cuts[0]
    nodes = list(gm.graph.nodes)
    after = {cut}  # nodes whose value depends on the layer's output
    varying: set[fx.Node] = set()  # nodes whose value depends on the input
    for node in nodes:
        inputs = node.all_input_nodes
        if node.op == "placeholder" or any(i in varying for i in inputs):
            varying.add(node)
        if any(i in after for i in inputs):
            after.add(node)
    output = next(n for n in nodes if n.op == "output")
    if output not in after:
        return "the model's output does not depend on the layer in the traced graph"
    rest = [n for n in nodes if n in after and n is not cut]
    saved = list(dict.fromkeys(
        i for n in rest for i in n.all_input_nodes if i not in after and i in varying))
    constants = _closure(i for n in rest for i in n.all_input_nodes if i not in varying)

    tail = fx.Graph()
    env: dict[fx.Node, fx.Node] = {cut: tail.placeholder("activations")}
    for i, node in enumerate(saved):
        env[node] = tail.placeholder(f"saved_{i}")
    for node in nodes:
        if node in constants or node in rest:
            env[node] = tail.node_copy(node, env.__getitem__)

    head = fx.Graph()
    wanted = _closure(saved)
    hold: dict[fx.Node, fx.Node] = {}
    for node in nodes:
        if node.op == "placeholder" or (node in wanted and node.op != "output"):
            hold[node] = head.node_copy(node, hold.__getitem__)
    head.output(tuple(hold[n] for n in saved))
    return GraphTail(
        head=fx.GraphModule(gm, head),
        tail=fx.GraphModule(gm, tail),
        saved_names=tuple(n.name for n in saved),
    )


def graph_tail(model: nn.Module, layer_name: str, layer: nn.Module) -> GraphTail | str:
    """The model cut after ``layer`` (head and tail graphs), or why it cannot be cut."""
    gm = traced(model, layer_name, layer)
    return gm if isinstance(gm, str) else cut_graph(gm, layer)
