"""The one engine every CAM method runs on: capture a layer's activations and gradients.

A forward hook on the target layer swaps its output for a detached leaf tensor ``A``;
``torch.autograd.grad`` then gives ``g = dy/dA`` for the whole chunk in one backward pass.
An in-place op after the layer (``ReLU(inplace=True)``) cannot modify a leaf that requires
grad, so autograd refuses it; the engine then re-runs that chunk with a clone of ``A`` going
on, and keeps cloning for the rest of the call (gradient-free passes always clone).
Parameters are frozen while this runs, so the part of the network before the layer builds
no autograd graph at all.
Work is split into chunks bounded by a memory budget: large activations make the allocator
page-fault on every call, so small chunks are faster on CPU, and memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cached_property

import torch
from torch import Tensor, nn

from cnnlens.device import fast_forward, fast_layout, is_oom
from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.explain.checks import check_class_bound, model_error
from cnnlens.explain.context import LayerContext, target_scores
from cnnlens.explain.layers import flatten_linear, sequential_tail, split_zero_preserving
from cnnlens.explain.options import SCORES
from cnnlens.explain.tail import GraphTail, graph_tail

PROBE_FACTOR = 16


class Engine:
    """Runs a model with a target layer hooked; chunk sizes come from a one-sample probe."""

    def __init__(
        self,
        model: nn.Module,
        layer_name: str,
        layer: nn.Module,
        *,
        score: str,
        memory_budget_mb: float,
        batch_size: int | None,
    ) -> None:
        if score not in SCORES:
            raise unknown_choice("score", score, SCORES)
        if not memory_budget_mb > 0:
            raise CnnlensError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
        if batch_size is not None and batch_size < 1:
            raise CnnlensError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.model = model
        self.layer_name = layer_name
        self.layer = layer
        self.score = score
        self.budget = int(memory_budget_mb * 2**20)
        self.batch_size = batch_size
        self.num_classes: int | None = None
        self.clone_output = False
        self.planned = False
        self.sample_rows = 1
        self.tail_rows = 1
        self.tail_peak = 1
        self.input_rows = 1
        #: How ablated copies run: "sequential", "graph" (once checked), or "full-forward: why".
        self.tail_path = "unused"
        #: Trailing size-1 axes the layer's output has beyond the input's (a 1-D signal
        #: model written with Conv2d over (N, C, L, 1)): the methods see the activations
        #: without them, and they are put back wherever activations go into the model.
        self.extra_axes: tuple[int, ...] = ()

    def expand(self, a: Tensor) -> Tensor:
        """Activations as the layer outputs them (its trailing size-1 axes put back)."""
        return a.reshape(*a.shape, *self.extra_axes) if self.extra_axes else a

    def squeeze(self, a: Tensor) -> Tensor:
        """Activations as the methods see them (trailing size-1 axes beyond the input's)."""
        return a.reshape(a.shape[: a.dim() - len(self.extra_axes)]) if self.extra_axes else a

    # -- the network after the layer (built on first use) ----------------------------------
    # Only Ablation-CAM and the hook fallback use these; building them creates modules, which
    # gradient methods should not pay for on every call.
    @cached_property
    def tail(self) -> nn.Module | None:
        """The layers after the target as one module, or None if the model cannot be split."""
        tail = sequential_tail(self.model, self.layer_name)
        if tail is not None:
            self.tail_path = "sequential"
        return tail

    @cached_property
    def graph(self) -> GraphTail | None:
        """The traced graph cut after the layer, when there is no Sequential tail."""
        if self.tail is not None:
            return None
        found = graph_tail(self.model, self.layer_name, self.layer)
        if isinstance(found, str):
            self.tail_path = f"full-forward: {found}"
            return None
        return found

    def graph_saved(self, ctx: LayerContext) -> tuple[Tensor, ...] | None:
        """The pre-cut values the graph tail needs for this chunk, or None to run whole passes.

        The first time, the tail must reproduce the model's own logits on the unablated
        activations (to 1e-4 of their scale): a trace that does not match the model (Python
        side effects, a randomised op, an in-place op the cut misses) falls back to whole
        passes, with the reason kept in :attr:`tail_path`.
        """
        graph = self.graph
        if graph is None:
            return None
        try:
            saved = graph.saved(fast_layout(self.model, ctx.x))  # as the capture ran
            if isinstance(saved, str):
                self.tail_path, self.graph = f"full-forward: {saved}", None
                return None
            if self.tail_path != "graph":
                with torch.no_grad():
                    logits = graph.tail(self.expand(ctx.activations.clone()),
                                        *(v.clone() for v in saved))
                ref = ctx.logits
                if not (isinstance(logits, Tensor) and logits.shape == ref.shape
                        and torch.allclose(logits, ref, rtol=1e-4,
                                           atol=1e-4 * float(ref.abs().max()))):
                    self.tail_path = "full-forward: the traced tail does not reproduce the model"
                    self.graph = None
                    return None
                self.tail_path = "graph"
        except Exception as exc:  # a cut the model does not survive: keep whole passes
            if is_oom(exc):
                raise
            self.tail_path, self.graph = f"full-forward: the traced tail fails ({exc})", None
            return None
        return saved

    @cached_property
    def _ablation_split(self) -> tuple[nn.Sequential, nn.Sequential]:
        return split_zero_preserving(self.tail)

    @property
    def ablation_prefix(self) -> nn.Sequential:
        """The tail's leading zero-preserving per-channel layers (run once, not per copy)."""
        return self._ablation_split[0]

    @property
    def ablation_rest(self) -> nn.Sequential:
        """The rest of the tail, run on ablated copies."""
        return self._ablation_split[1]

    @cached_property
    def linear_head(self) -> nn.Linear | None:
        """The Linear when the rest is exactly ``Flatten → Linear`` (closed-form ablation)."""
        return flatten_linear(self.ablation_rest)

    # -- chunk planning ------------------------------------------------------------------
    @contextmanager
    def _probe(self) -> Iterator[dict[str, int]]:
        """Record the largest per-sample output of any layer (and of the layers after ours)."""
        stats = {"peak": 1, "tail_peak": 1, "after": 0}
        handles = []

        def hook(module: nn.Module, _i: object, out: object) -> None:
            if isinstance(out, Tensor):
                size = out.numel() * out.element_size()
                stats["peak"] = max(stats["peak"], size)
                if stats["after"]:
                    stats["tail_peak"] = max(stats["tail_peak"], size)
            if module is self.layer:
                stats["after"] = 1

        try:
            for name, module in self.model.named_modules():
                if name:
                    handles.append(module.register_forward_hook(hook))
            yield stats
        finally:
            for h in handles:
                h.remove()

    def _plan(self, stats: dict[str, int], act_bytes: int, n: int) -> None:
        """Chunk sizes from the probe's largest outputs (for ``n`` samples)."""
        peak = max(1, stats["peak"] // n)
        tail_peak = max(1, stats["tail_peak"] // n)
        self.sample_rows = max(1, self.budget // peak)
        if self.batch_size is not None:
            self.sample_rows = min(self.sample_rows, self.batch_size)
        self.tail_peak = tail_peak
        self.tail_rows = max(1, self.budget // max(act_bytes, tail_peak))
        # Whole-model no-grad passes (Score-CAM) hold a layer's input and output at once:
        # budget two peak activations per row (measured: 1.45x faster on the VGG-7 at 224 px).
        self.input_rows = max(1, self.budget // (2 * peak))
        self.planned = True

    def require_plan(self) -> None:
        """Extra passes are sized by the probe; running them unplanned is a bug here."""
        if not self.planned:
            raise RuntimeError("internal: extra passes need the probe's chunk plan")

    def shrink(self, rows: int) -> bool:
        """Halve every chunk size after an out-of-memory error in a chunk of ``rows`` samples.

        False when nothing is left to halve. Also works before any plan exists (the first
        chunk, whose probe never finished, or a call that skipped the probe): later chunks
        then take half the failed one.
        """
        if max(rows, self.tail_rows, self.input_rows) <= 1:
            return False
        self.sample_rows = max(1, (min(self.sample_rows, rows) if self.planned else rows) // 2)
        self.tail_rows = max(1, self.tail_rows // 2)
        self.input_rows = max(1, self.input_rows // 2)
        self.budget = max(1, self.budget // 2)
        self.batch_size = self.sample_rows
        return True

    def chunks(self, x: Tensor) -> Iterator[slice]:
        """Sample chunks; the first is sized from the input alone and probes the rest.

        Layers rarely output more than ``PROBE_FACTOR`` × the input size per sample, so the
        first chunk stays within the budget; small inputs run as one chunk.
        """
        n = x.shape[0]
        per_sample = max(1, math.prod(x.shape[1:]) * x.element_size())
        first = max(1, min(n, self.budget // (per_sample * PROBE_FACTOR)))
        if self.batch_size is not None:
            first = min(first, self.batch_size)
        start = 0
        while start < n:
            stop = min(n, start + (first if start == 0 else self.sample_rows))
            yield slice(start, stop)
            start = stop

    # -- passes --------------------------------------------------------------------------
    def capture(
        self, x: Tensor, targets: Tensor | None, *, need_grad: bool, probe: bool
    ) -> LayerContext:
        """One forward (and, if ``need_grad``, one backward to the layer) for a chunk."""
        try:
            store, logits, stats = self._forward(x, need_grad=need_grad, probe=probe)
        except RuntimeError as exc:
            if is_oom(exc):
                raise
            if not need_grad or self.clone_output or "in-place" not in str(exc):
                raise model_error(exc, x) from exc
            self.clone_output = True  # an in-place op after the layer: protect the leaf
            store, logits, stats = self._forward(x, need_grad=need_grad, probe=probe)
        if not store:
            raise CnnlensError(
                f"layer {self.layer_name!r} is not on the model's forward path (it never ran); "
                "choose a layer that the forward pass uses"
            )
        acts = store[0]
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise CnnlensError(f"the model must return (N, classes) scores, got {shape}")
        if self.num_classes is None:
            self.num_classes = logits.shape[1]
        if probe and stats is not None:
            self._plan(stats, acts[:1].numel() * acts.element_size(), x.shape[0])
        if targets is None:
            chosen = logits.detach().argmax(dim=1)  # the prediction (the caller reuses it)
        else:
            check_class_bound(targets, self.num_classes)
            chosen = targets.to(logits.device)
        grads = None
        with torch.set_grad_enabled(need_grad):
            scores = target_scores(logits, chosen, self.score)
            if need_grad:
                if not scores.requires_grad:
                    raise _unused_layer(self.layer_name)
                (grads,) = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
                if grads is None:
                    raise _unused_layer(self.layer_name)
        return LayerContext(
            x=x,
            activations=acts.detach(),
            gradients=grads,
            logits=logits.detach(),
            targets=chosen,
            scores=scores.detach(),
            engine=self,
        )

    def _forward(
        self, x: Tensor, *, need_grad: bool, probe: bool
    ) -> tuple[list[Tensor], object, dict[str, int] | None]:
        store: list[Tensor] = []
        clone = self.clone_output or not need_grad

        def hook(_m: nn.Module, _i: object, out: object) -> Tensor:
            if store:
                raise CnnlensError(
                    f"layer {self.layer_name!r} runs more than once per forward pass; "
                    "choose a layer that runs once"
                )
            if not isinstance(out, Tensor):
                raise CnnlensError(
                    f"layer {self.layer_name!r} returns {type(out).__name__}, not a tensor; "
                    "choose a layer with a tensor output"
                )
            _check_layer_output(self.layer_name, out, x)
            self.extra_axes = tuple(out.shape[x.dim():])
            leaf = self.squeeze(out.detach()).requires_grad_(need_grad)
            store.append(leaf)
            return self.expand(leaf.clone() if clone else leaf)

        handle = self.layer.register_forward_hook(hook)
        try:
            with (
                self._probe() if probe else nullcontext() as stats,
                torch.set_grad_enabled(need_grad),
            ):
                def retry() -> None:  # forget what the failed channels-last pass saw
                    store.clear()
                    if stats is not None:
                        stats.update(peak=1, tail_peak=1, after=0)

                logits = fast_forward(self.model, x, retry=retry)
        finally:
            handle.remove()
        return store, logits, stats

    def run_after_layer(self, acts: Tensor, x: Tensor, rows: Tensor) -> Tensor:
        """Logits when the layer outputs ``acts``: only the tail if the graph splits."""
        with torch.no_grad():
            if self.tail is not None:
                return self.tail(self.expand(acts))
            used: list[bool] = []

            def replace(_m: nn.Module, _i: object, _out: object) -> Tensor:
                used.append(True)
                return self.expand(acts)

            handle = self.layer.register_forward_hook(replace)
            try:
                return fast_forward(self.model, x[rows.to(x.device)])
            finally:
                handle.remove()


def _check_layer_output(name: str, out: Tensor, x: Tensor) -> None:
    if out.dim() < 3:
        raise CnnlensError(
            f"layer {name!r} has output shape {tuple(out.shape)} with no spatial dimension; "
            "choose a convolutional layer (see candidate_layers)"
        )
    if out.dim() < x.dim() or any(d != 1 for d in out.shape[x.dim():]):
        raise CnnlensError(
            f"layer {name!r} has {out.dim() - 2} spatial dimension(s) but the input has "
            f"{x.dim() - 2}; choose a layer with the input's spatial layout"
        )


def _unused_layer(name: str) -> CnnlensError:
    return CnnlensError(
        f"the model's output does not depend on layer {name!r}; choose a layer on the path "
        "to the output"
    )
