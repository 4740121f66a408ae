"""Faithfulness metrics as plain functions: model, inputs, maps, targets in; per-sample values out.

All metrics share one set of choices, stated in every result (DESIGN §6: the reference
libraries disagree on each of them):

* the score is the **softmax probability** of the target class (not the logit);
* the target is the model's **predicted class** on the unmasked input unless given;
* masking happens in the **raw input space** the model sees (HMT: pixels in [0, 1]),
  removed positions become the baseline value (zero unless stated), and a mask over
  positions is broadcast over channels;
* drops are **divided by the original score** ``Y``; a sample with ``Y == 0`` has drop 0
  (nothing to lose), which keeps means finite.

Aggregation (means, intervals, tests) lives in :mod:`cnnlens.faithfulness.stats`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlens.errors import CnnlensError
from cnnlens.explain.methods import normalize_maps as _engine_normalize
from cnnlens.faithfulness.options import DEFAULT_STEPS, METRIC_NAMES
from cnnlens.faithfulness.road import road
from cnnlens.faithfulness.scoring import (
    BASELINES,
    SCORE,
    ImputedScores,
    MetricResult,
    auto_batch,
    baseline_choice,
    check_baseline,
    check_frac,
    check_maps,
    check_steps,
    check_targets,
    device_of,
    drop_rate,
    masked_probs,
    original_scores,
    rank_positions,
    removal_probs,
    target_probs,
)


@dataclass(frozen=True)
class OutputSpec:
    """How one per-sample output is aggregated and read."""

    label: str
    scale: float  # the table shows mean * scale (rates in %)
    binary: bool  # 0/1 per sample: paired with McNemar's exact test, else Wilcoxon
    higher_is_better: bool


OUTPUTS: dict[str, OutputSpec] = {
    "drop": OutputSpec("drop rate (%)", 100.0, False, False),
    "increase": OutputSpec("increase rate (%)", 100.0, True, True),
    "avg_drop": OutputSpec("average drop (%)", 100.0, False, False),
    "inc_conf": OutputSpec("increase in confidence (%)", 100.0, True, True),
    "deletion_auc": OutputSpec("deletion AUC", 1.0, False, False),
    "insertion_auc": OutputSpec("insertion AUC", 1.0, False, True),
    "road_morf": OutputSpec("ROAD MoRF (mean prob.)", 1.0, False, False),
    "road_lerf": OutputSpec("ROAD LeRF (mean prob.)", 1.0, False, True),
    "road_gap": OutputSpec("ROAD LeRF − MoRF", 1.0, False, True),
}


# -- the study's drop / increase rate ------------------------------------------------------
def top_frac_mask(maps: Tensor, frac: float) -> Tensor:
    """The study's hard mask: ``L > thr`` with ``thr`` the ``int(P·frac)``-th largest value.

    0-based in descending order, so at most ``int(P·frac)`` positions are kept (fewer when
    values tie at ``thr``, because the comparison is strict). ``frac = 1`` makes the index
    ``P``, one past the end: ``thr = -inf`` and every position is kept.
    """
    frac = check_frac(frac)
    flat = maps.reshape(maps.shape[0], -1)
    p = flat.shape[1]
    k = int(p * frac)
    if k >= p:
        return torch.ones_like(maps, dtype=torch.bool)
    thr = flat.sort(dim=1, descending=True).values[:, k : k + 1]
    return (flat > thr).reshape(maps.shape)


def drop_increase(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    frac: float,
    targets: Tensor | Sequence[int] | None = None,
    base_scores: Tensor | Sequence[float] | None = None,
    batch_size: int | None = None,
    baseline: str | float = "zero",
    imputer: ImputedScores | None = None,
) -> MetricResult:
    """The study's Table I metric (DESIGN §6): keep the top-``frac`` positions, remove the rest.

    ``drop = max(0, (Y − O) / Y)`` and ``increase = 1[O > Y]`` per sample, where ``Y`` is the
    target probability on ``x`` and ``O`` on ``x`` with the other positions removed: set to
    zero as in the study (``x · mask``), or to another ``baseline``; ``road`` imputes them
    from their neighbours (through ``imputer``, which memoises), which separates "the model
    needs these pixels" from "a blob of zeros is out of distribution". ``base_scores``
    (``Y`` for the given ``targets``, e.g. from an earlier metric) saves one forward pass.
    """
    frac = check_frac(frac)
    maps = check_maps(x, maps)
    baseline = check_baseline(baseline)
    y, t = original_scores(model, x, targets, base_scores, batch_size)
    o = removal_probs(model, x, t, lambda sl: ~top_frac_mask(maps[sl], frac),
                      baseline=baseline, batch_size=batch_size, imputer=imputer)
    # ties at thr keep fewer than frac of the positions (a ReLU'd map is often 0 on a
    # large area): the fraction actually kept is part of the result
    kept = top_frac_mask(maps, frac).reshape(maps.shape[0], -1).double().mean(dim=1)
    masking = ("x * mask in raw input space, broadcast over channels (removed = 0)"
               if baseline == "zero" else "raw input space, broadcast over channels; removed "
               f"positions: {baseline_choice(baseline, imputer)}")
    return MetricResult(
        metric="drop_increase",
        values={
            "drop": drop_rate(y, o).numpy(),
            "increase": (o > y).float().numpy(),
            "score": y.numpy(),
            "masked_score": o.numpy(),
            "kept": kept.numpy(),
            "target": t.numpy(),
        },
        choices={
            "score": SCORE,
            "mask": f"hard: keep L > thr, thr = the int(P*frac)-th largest of L (0-based), "
            f"strict; frac = {frac:g}; frac = 1 keeps every position",
            "frac": frac,
            "masking": masking,
            "drop": "max(0, (Y - O) / Y), 0 where Y = 0",
            "increase": "1[O > Y]",
        },
    )


# -- Average Drop / Increase in Confidence (Grad-CAM++) -----------------------------------
def average_drop_increase(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    targets: Tensor | Sequence[int] | None = None,
    base_scores: Tensor | Sequence[float] | None = None,
    batch_size: int | None = None,
) -> MetricResult:
    """Grad-CAM++'s soft-mask metrics: ``x' = x · L`` with ``L`` in [0, 1].

    Maps outside [0, 1] are an error rather than silently rescaled: the metric depends on
    the scale, so the caller decides how to normalise (see :func:`normalize_maps`).
    """
    maps = check_maps(x, maps)
    if maps.numel() and (float(maps.min()) < -1e-6 or float(maps.max()) > 1 + 1e-6):
        raise CnnlensError(
            f"maps range [{float(maps.min()):.3g}, {float(maps.max()):.3g}] is invalid for the "
            "soft mask; accepted: values in [0, 1] (normalise per sample first)"
        )
    maps = maps.clamp(0.0, 1.0)
    y, t = original_scores(model, x, targets, base_scores, batch_size)

    def make(xb: Tensor, sl: slice) -> Tensor:
        return xb * maps[sl].unsqueeze(1).to(xb.dtype)

    o = masked_probs(model, x, t, make, batch_size)
    return MetricResult(
        metric="confidence",
        values={
            "avg_drop": drop_rate(y, o).numpy(),
            "inc_conf": (o > y).float().numpy(),
            "score": y.numpy(),
            "masked_score": o.numpy(),
            "target": t.numpy(),
        },
        choices={
            "score": SCORE,
            "mask": "soft: x * L with L in [0, 1] (Grad-CAM++ paper)",
            "masking": "raw input space, broadcast over channels",
            "avg_drop": "max(0, (Y - O) / Y), 0 where Y = 0",
            "inc_conf": "1[O > Y]",
        },
    )


# -- deletion / insertion ------------------------------------------------------------------
def _curve(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    mode: str,
    steps: int,
    baseline: str | float,
    targets: Tensor | Sequence[int] | None,
    batch_size: int | None,
    imputer: ImputedScores | None = None,
) -> MetricResult:
    maps = check_maps(x, maps)
    positions = int(np.prod(maps.shape[1:]))
    steps = check_steps(steps, positions)
    baseline = check_baseline(baseline)
    _, t = target_probs(model, x, check_targets(targets, x.shape[0]), batch_size=batch_size)
    counts = [round(i * positions / steps) for i in range(steps + 1)]
    ranks = rank_positions(maps)
    scores = torch.empty(x.shape[0], steps + 1)
    for j, n in enumerate(counts):

        def removed(sl: slice, n: int = n) -> Tensor:
            first = ranks[sl] < n  # the n most salient positions
            return first if mode == "deletion" else ~first

        scores[:, j] = removal_probs(model, x, t, removed, baseline=baseline,
                                     batch_size=batch_size, imputer=imputer)
    frac_axis = np.asarray(counts, dtype=np.float64) / positions
    s = scores.numpy().astype(np.float64)
    auc = np.asarray(np.trapezoid(s, frac_axis, axis=1), dtype=np.float64)
    name = f"{mode}_auc"
    verb = "set to the baseline" if mode == "deletion" else "restored from the baseline"
    return MetricResult(
        metric=mode,
        values={name: auc, "target": t.numpy()},
        choices={
            "score": SCORE,
            "order": "positions in descending map order (ties: lower index first)",
            "curve": f"{steps} equal chunks; at step i the first round(i*P/{steps}) positions "
            f"are {verb}",
            "baseline": baseline_choice(baseline, imputer),
            "masking": "raw input space, broadcast over channels",
            "auc": "trapezoid over the removed/inserted fraction in [0, 1]",
        },
        curves={"fraction": frac_axis, "scores": s},
    )


def deletion(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: str | float = "zero",
    targets: Tensor | Sequence[int] | None = None,
    batch_size: int | None = None,
    imputer: ImputedScores | None = None,
) -> MetricResult:
    """Deletion curve (RISE): remove the most salient positions first; lower AUC is better."""
    return _curve(model, x, maps, mode="deletion", steps=steps, baseline=baseline,
                  targets=targets, batch_size=batch_size, imputer=imputer)


def insertion(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: str | float = "zero",
    targets: Tensor | Sequence[int] | None = None,
    batch_size: int | None = None,
    imputer: ImputedScores | None = None,
) -> MetricResult:
    """Insertion curve (RISE): restore the most salient positions first; higher AUC is better.

    With the ``road`` baseline the positions not yet inserted are imputed; at step 0 nothing
    is known and each channel is filled with its mean (plus noise).
    """
    return _curve(model, x, maps, mode="insertion", steps=steps, baseline=baseline,
                  targets=targets, batch_size=batch_size, imputer=imputer)


# -- maps ------------------------------------------------------------------------------------
def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each map to [0, 1] in float32; a constant map becomes all zeros.

    The same normalisation the CAM engine applies, so saved and recomputed maps agree.
    """
    return _engine_normalize(maps.float())


def random_maps(
    shape: Sequence[int], *, seed: int = 0, cells: Sequence[int] | None = None
) -> Tensor:
    """Uniform random maps ``(N, *spatial)`` in [0, 1], the baseline every method must beat.

    With ``cells`` (e.g. the CAM layer's spatial size) the noise is drawn on that coarse grid
    and upsampled (linear/bilinear), so it is as smooth as a CAM; without, it is i.i.d. per
    position.
    """
    n, *spatial = (int(s) for s in shape)
    gen = torch.Generator().manual_seed(seed)
    if cells is None or tuple(cells) == tuple(spatial):
        return torch.rand((n, *spatial), generator=gen)
    if len(cells) != len(spatial):
        raise CnnlensError(f"cells={tuple(cells)} does not match map dims {tuple(spatial)}")
    coarse = torch.rand((n, 1, *(int(c) for c in cells)), generator=gen)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
    fine = F.interpolate(coarse, size=tuple(spatial), mode=mode, align_corners=False)[:, 0]
    return normalize_maps(fine)


# -- registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSpec:
    """A metric family: what it computes and which per-sample outputs it yields."""

    fn: Callable[..., MetricResult]
    outputs: tuple[str, ...]
    uses_frac: bool
    description: str


_ALL: dict[str, MetricSpec] = {
    "drop_increase": MetricSpec(drop_increase, ("drop", "increase"), True,
                                "the study's drop / increase rate (top-frac hard mask)"),
    "confidence": MetricSpec(average_drop_increase, ("avg_drop", "inc_conf"), False,
                             "Average Drop / Increase in Confidence (soft mask, Grad-CAM++)"),
    "deletion": MetricSpec(deletion, ("deletion_auc",), False, "deletion curve AUC (RISE)"),
    "insertion": MetricSpec(insertion, ("insertion_auc",), False, "insertion curve AUC (RISE)"),
    "road": MetricSpec(road, ("road_morf", "road_lerf", "road_gap"), False,
                       "ROAD: most/least relevant first removal with noisy linear imputation"),
}
#: The metric families by name, in :data:`cnnlens.faithfulness.options.METRIC_NAMES` order.
METRICS: dict[str, MetricSpec] = {name: _ALL[name] for name in METRIC_NAMES}
if set(_ALL) != set(METRIC_NAMES):  # pragma: no cover - a metric added in one place only
    raise ImportError(f"metrics {sorted(set(_ALL) ^ set(METRIC_NAMES))} are implemented or "
                      "named, not both")


def output_key(output: str, frac: float | None) -> str:
    """Column name of an output: ``drop@0.9`` for frac-dependent ones."""
    return f"{output}@{frac:g}" if frac is not None else output


__all__ = [
    "BASELINES",
    "METRICS",
    "OUTPUTS",
    "ImputedScores",
    "MetricResult",
    "MetricSpec",
    "OutputSpec",
    "auto_batch",
    "average_drop_increase",
    "check_baseline",
    "check_frac",
    "check_maps",
    "check_steps",
    "deletion",
    "device_of",
    "drop_increase",
    "insertion",
    "normalize_maps",
    "output_key",
    "random_maps",
    "road",
    "target_probs",
    "top_frac_mask",
]
