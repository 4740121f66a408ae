"""Public entry points: :func:`explain` (one method), :func:`explain_methods` (several at one
layer, sharing the forward and backward passes) and :func:`cam` (just the maps)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

import torch
from torch import Tensor, nn

from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.explain.checks import check_batch_size, check_inputs, check_targets, match_model_dtype
from cnnlens.explain.engine import Engine, is_oom
from cnnlens.explain.layers import LayerRef, layer_name_of, resolve_layer
from cnnlens.explain.methods import METHODS, CamMethod, normalize_maps, upsample_maps
from cnnlens.explain.state import preserved_model_state

DEFAULT_MEMORY_BUDGET_MB = 32.0

Targets = int | Sequence[int] | Tensor | None


class CamKeywords(TypedDict, total=False):
    """The keywords :func:`explain` and :func:`cam` pass on to :func:`explain_methods`,
    which declares their defaults (once)."""

    targets: Targets
    score: str
    batch_size: int | None
    upsample: bool
    normalize: bool
    memory_budget_mb: float


@dataclass(frozen=True)
class CamResult:
    """Maps and what they explain; all tensors are detached, on the input's device."""

    maps: Tensor  # (N, *input_spatial) float32, upsampled/normalised as requested
    raw: Tensor  # (N, *layer_spatial) ReLU'd map before upsampling or normalisation
    targets: Tensor  # (N,) class explained per sample
    predicted: Tensor  # (N,) argmax of the model output
    scores: Tensor  # (N,) target score (logit or probability, see ``score``)
    logits: Tensor  # (N, classes) the model output of the pass that made the maps
    method: str
    layer: str
    score: str
    seconds: float


def explain_methods(
    model: nn.Module,
    x: Tensor,
    *,
    layer: LayerRef,
    methods: Sequence[str],
    targets: Targets = None,
    score: str = "logit",
    batch_size: int | None = None,
    upsample: bool = True,
    normalize: bool = True,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
) -> dict[str, CamResult]:
    """Maps of several methods at one layer from one forward (and backward) pass per chunk.

    Same contract as :func:`explain`; a method's ``seconds`` is its own computation plus an
    equal share of the shared passes.
    """
    specs = []
    for method in dict.fromkeys(methods):
        spec = METHODS.get(method)
        if spec is None:
            raise unknown_choice("CAM method", method, METHODS)
        specs.append(spec)
    if not specs:
        raise CnnlensError(f"methods is empty; valid: {', '.join(METHODS)}")
    x = check_inputs(x)
    batch_size = check_batch_size(batch_size)
    module = resolve_layer(model, layer)
    name = layer if isinstance(layer, str) else layer_name_of(model, module)
    n = x.shape[0]
    wanted = check_targets(targets, n)
    engine = Engine(
        model, name, module, score=score, memory_budget_mb=memory_budget_mb, batch_size=batch_size
    )
    x = match_model_dtype(model, x.detach())
    if x.is_inference():
        x = x.clone()
    with preserved_model_state(model):
        raws, own, shared, outs = _chunked(engine, x, wanted, specs)
    # Copied even from one chunk: targets may be a view of the caller's tensor, and with no
    # given targets the prediction is the same tensor as the targets.
    targets_t = torch.cat([o[0] for o in outs])
    predicted = torch.cat([o[1] for o in outs])
    scores = torch.cat([o[2] for o in outs]).float()
    logits = torch.cat([o[3] for o in outs])
    results: dict[str, CamResult] = {}
    for spec in specs:
        t1 = time.perf_counter()
        raw = _joined(raws[spec.name])
        maps = upsample_maps(raw, tuple(x.shape[2:])) if upsample else raw
        if normalize:
            maps = normalize_maps(maps)
        own[spec.name] += time.perf_counter() - t1
        results[spec.name] = CamResult(
            maps=maps, raw=raw, targets=targets_t, predicted=predicted, scores=scores,
            logits=logits, method=spec.name, layer=name, score=score,
            seconds=own[spec.name] + shared / len(specs),
        )
    return results


def _chunked(engine: Engine, x: Tensor, wanted: Tensor | None, specs: list[CamMethod]
             ) -> tuple[dict[str, list[Tensor]], dict[str, float], float,
                        list[tuple[Tensor, Tensor, Tensor, Tensor]]]:
    """Every method's raw maps, chunk by chunk: one capture (forward, and backward when a
    method needs gradients) per chunk, shared by the methods; a chunk that runs out of
    device memory is halved and run again. Returns the maps per method, each method's own
    seconds, the shared seconds and per chunk (targets, predicted, scores, logits)."""
    n = x.shape[0]
    need_grad = any(s.uses_gradients for s in specs)
    extra_passes = any(s.extra_passes for s in specs)
    raws: dict[str, list[Tensor]] = {s.name: [] for s in specs}
    own = dict.fromkeys(raws, 0.0)
    shared = 0.0
    outs: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    start, first = 0, True
    chunks = engine.chunks(x)
    size = next(chunks).stop  # the probe chunk; later sizes come from the plan
    while start < n:
        sl = slice(start, min(n, start + size))
        # The probe plans later chunks and extra passes: one chunk with neither skips it.
        probe = first and (sl.stop - sl.start < n or extra_passes)
        t0 = time.perf_counter()
        try:
            ctx = engine.capture(x[sl], None if wanted is None else wanted[sl],
                                 need_grad=need_grad, probe=probe)
            shared += time.perf_counter() - t0
            done: dict[str, Tensor] = {}
            for spec in specs:
                t1 = time.perf_counter()
                with torch.no_grad():
                    done[spec.name] = torch.relu(spec.compute(ctx)).float()
                own[spec.name] += time.perf_counter() - t1
        except RuntimeError as exc:
            if not is_oom(exc) or not engine.shrink(sl.stop - sl.start):
                raise
            if x.is_cuda:
                torch.cuda.empty_cache()
            size = max(1, (sl.stop - sl.start) // 2)
            continue  # the same chunk again, halved
        for method, raw in done.items():
            raws[method].append(raw)
        # Without given targets, the engine's targets are the prediction already.
        predicted = ctx.targets if wanted is None else ctx.logits.argmax(dim=1)
        outs.append((ctx.targets, predicted, ctx.scores, ctx.logits.detach()))
        del ctx
        start, first = sl.stop, False
        size = engine.sample_rows
    return raws, own, shared, outs


def _joined(parts: list[Tensor]) -> Tensor:
    """The chunks' maps as one tensor; a single chunk's (a fresh tensor) is used as is."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def explain(
    model: nn.Module,
    x: Tensor,
    *,
    layer: LayerRef,
    method: str = "gradcam",
    **keywords: Unpack[CamKeywords],
) -> CamResult:
    """Class activation maps of ``model`` at ``layer`` for inputs ``(N, C, *spatial)``.

    ``layer``: a dotted name (``"conv2d_3"``, ``"layer4.1"``) or the module itself.
    Keywords (defaults as in :func:`explain_methods`): ``targets``: None (predicted class),
    one int for all samples, or one index per sample; ``score``: differentiate/ablate the
    ``"logit"`` (default) or the softmax ``"prob"``; ``upsample``/``normalize`` the maps to
    the input's size and [0, 1]. Work runs in chunks whose largest activation stays under
    ``memory_budget_mb`` (and at most ``batch_size`` samples); results do not depend on the
    chunking, and a chunk that runs out of device memory is halved and retried. Inputs are
    cast to the model's dtype. The model's train/eval flags, ``requires_grad`` and ``.grad``
    are left as found; no hook survives.
    """
    if method not in METHODS:
        raise unknown_choice("CAM method", method, METHODS)
    return explain_methods(model, x, layer=layer, methods=[method], **keywords)[method]


def cam(
    model: nn.Module,
    x: Tensor,
    *,
    layer: LayerRef,
    method: str = "gradcam",
    **keywords: Unpack[CamKeywords],
) -> Tensor:
    """Just the maps of :func:`explain`: ``(N, *input_spatial)`` float32 by default."""
    return explain(model, x, layer=layer, method=method, **keywords).maps
