"""What a CAM method sees for one chunk of samples, and the passes it may ask for.

A method is a small function of a :class:`LayerContext`: the layer's activations and
gradients, the logits and targets, and (for Ablation- and Score-CAM) the scores of modified
activations or inputs, which the :class:`~cnnlens.explain.engine.Engine` runs in chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlens.device import fast_forward
from cnnlens.explain.tail import GraphTail

if TYPE_CHECKING:
    from cnnlens.explain.engine import Engine


def target_scores(logits: Tensor, targets: Tensor, score: str) -> Tensor:
    """Score of each row's target class: the logit, or the softmax probability."""
    values = F.softmax(logits, dim=1) if score == "prob" else logits
    return values.gather(1, targets.view(-1, 1).to(values.device)).view(-1)


class Reused:
    """A growable buffer of rows shaped like ``like[0]``, reused across chunks."""

    def __init__(self, like: Tensor) -> None:
        self.like = like
        self.buf: Tensor | None = None

    def get(self, rows: int) -> Tensor:
        if self.buf is None or self.buf.shape[0] < rows:
            self.buf = self.like.new_empty((rows, *self.like.shape[1:]))
        return self.buf[:rows]


def same_layout(t: Tensor, like: Tensor) -> Tensor:
    """``t`` in ``like``'s memory format: the ablated copies then run through the same
    kernels as the capture pass did, so their scores and the unablated one round alike
    (Ablation-CAM's weights are differences of the two)."""
    if (like.dim() == 4 and not like.is_contiguous()
            and like.is_contiguous(memory_format=torch.channels_last)):
        return t.contiguous(memory_format=torch.channels_last)
    return t


@dataclass
class LayerContext:
    """What a CAM method sees for one chunk of samples."""

    x: Tensor  # (n, C, *input_spatial), detached
    activations: Tensor  # A: (n, K, *layer_spatial), detached
    gradients: Tensor | None  # g = dy/dA, same shape, or None for gradient-free methods
    logits: Tensor  # (n, classes)
    targets: Tensor  # (n,) class explained per sample
    scores: Tensor  # (n,) target score on the unmodified input
    engine: Engine = field(repr=False)

    def tail_scores(self, rows: Tensor, build: Callable[[slice], Tensor]) -> Tensor:
        """Target scores when the layer output is replaced, row by row.

        ``rows`` holds each row's sample index (into this chunk); ``build(slice)`` returns
        the replacement activations of those rows. Runs in chunks of the memory budget.
        """
        eng = self.engine
        eng.require_plan()
        out = torch.empty(rows.numel(), dtype=self.logits.dtype, device=self.logits.device)
        # Without a tail the whole model runs on every row: size chunks like its own passes.
        step = eng.tail_rows if eng.tail is not None else min(eng.tail_rows, eng.input_rows)
        for start in range(0, rows.numel(), step):
            sl = slice(start, min(rows.numel(), start + step))
            acts = build(sl)
            logits = eng.run_after_layer(acts, self.x, rows[sl])
            out[sl] = target_scores(logits, self.targets[rows[sl]], eng.score)
        return out

    def ablated_scores(self) -> Tensor:
        """(n, K) target scores with channel k of A set to zero, for every k.

        Zeroing a channel commutes with the zero-preserving per-channel layers that often
        follow a conv (ReLU, pooling), so those run once on A; the ablated copies only go
        through the rest. When the rest is ``Flatten`` + ``Linear``, the ablated logits are
        ``logits − W_k·P_k`` exactly (no copies at all). Otherwise chunks of ablated copies,
        built in one reused buffer, run through the rest: the Sequential tail, or the traced
        graph's tail with the values it needs from before the layer (a residual's identity)
        repeated per copy, or, for a model that cannot be cut, the whole model with the
        layer's output replaced by a hook.
        """
        eng = self.engine
        eng.require_plan()
        a = self.activations
        n, k = a.shape[:2]
        if eng.tail is not None and len(eng.ablation_prefix):
            with torch.no_grad():  # the prefix may work in place
                a = eng.squeeze(eng.ablation_prefix(eng.expand(a.clone())))
        if eng.linear_head is not None:
            return self._linear_ablated_scores(a, eng.linear_head)
        rows = torch.arange(n * k, device=a.device)
        buffer = Reused(a)

        def build(sl: slice) -> Tensor:
            # One reused buffer: fresh large allocations page-fault on every chunk.
            r = rows[sl]
            batch = buffer.get(r.numel())
            torch.index_select(a, 0, r // k, out=batch)
            flat = batch.view(r.numel() * k, -1)
            flat.index_fill_(0, torch.arange(r.numel(), device=a.device) * k + r % k, 0.0)
            return same_layout(batch, a)

        saved: tuple[Tensor, ...] = ()
        if eng.tail is None:
            found = eng.graph_saved(self)
            if found is None:
                return self.tail_scores(rows // k, build).view(n, k)
            saved = found
        graph = eng.graph
        buffers = [Reused(v) for v in saved]
        row_bytes = sum(v[:1].numel() * v.element_size() for v in (a, *saved))
        out = torch.empty(n * k, dtype=self.logits.dtype, device=self.logits.device)
        step = max(1, eng.budget // max(row_bytes, eng.tail_peak))
        with torch.no_grad():
            for start in range(0, n * k, step):
                sl = slice(start, min(n * k, start + step))
                if isinstance(graph, GraphTail):
                    samples = rows[sl] // k
                    extra = [same_layout(torch.index_select(v, 0, samples,
                                                            out=b.get(samples.numel())), v)
                             for v, b in zip(saved, buffers, strict=True)]
                    logits = graph.tail(eng.expand(build(sl)), *extra)
                else:
                    logits = eng.ablation_rest(eng.expand(build(sl)))
                out[sl] = target_scores(logits, self.targets[rows[sl] // k], eng.score)
        return out.view(n, k)

    def _linear_ablated_scores(self, a: Tensor, head: nn.Linear) -> Tensor:
        """Ablated scores when the rest is ``Flatten`` + ``Linear``: ``logits − W_k·P_k``."""
        n, k = a.shape[:2]
        weight = head.weight.view(head.out_features, k, -1).to(a.dtype)
        drop = torch.einsum("nks,oks->nko", a.reshape(n, k, -1), weight)
        logits = (self.logits[:, None, :] - drop).reshape(n * k, -1)
        return target_scores(logits, self.targets.repeat_interleave(k),
                             self.engine.score).view(n, k)

    def input_scores(self, rows: Tensor, build: Callable[[slice], Tensor]) -> Tensor:
        """Target scores of whole-model forward passes on inputs built row by row."""
        eng = self.engine
        eng.require_plan()
        out = torch.empty(rows.numel(), dtype=self.logits.dtype, device=self.logits.device)
        step = eng.input_rows
        with torch.no_grad():
            for start in range(0, rows.numel(), step):
                sl = slice(start, min(rows.numel(), start + step))
                logits = fast_forward(eng.model, build(sl))
                out[sl] = target_scores(logits, self.targets[rows[sl]], eng.score)
        return out


__all__ = ["LayerContext", "Reused", "target_scores"]
