"""ROAD (Rong et al., ICML 2022): remove and impute, most relevant first and least relevant first.

Zero-filled removal mostly measures how far a blob of zeros pushes the input out of the
training distribution (on HMT a random 56×56 map beats every CAM at ``frac`` 0.9). ROAD
fills the removed positions by noisy linear imputation instead
(:mod:`cnnlens.faithfulness.imputation`) and reads two curves over removal percentages:

* **MoRF** (most relevant first): remove the top p % of the map; a faithful map makes the
  target probability fall fast (lower is better);
* **LeRF** (least relevant first): remove the bottom p %; a faithful map keeps the
  probability up (higher is better).

Per sample, each curve is summarised by its mean over the percentages (the area under the
curve on the percentage grid, rectangle rule, as pytorch-grad-cam's averagers), and
``road_gap = LeRF − MoRF`` combines both: it cancels the part of a drop that any removal
causes, whatever the map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cnnlens.faithfulness.options import NOISE, PERCENTAGES, check_percentages
from cnnlens.faithfulness.scoring import (
    SCORE,
    ImputedScores,
    MetricResult,
    check_maps,
    original_scores,
    rank_positions,
)


def removal_counts(positions: int, percentages: Sequence[float]) -> list[int]:
    """Positions removed at each percentage: ``round(P · p / 100)``."""
    return [round(positions * p / 100.0) for p in percentages]


def road(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    percentages: Sequence[float] = PERCENTAGES,
    noise: float = NOISE,
    seed: int = 0,
    targets: Tensor | Sequence[int] | None = None,
    base_scores: Tensor | Sequence[float] | None = None,
    batch_size: int | None = None,
    imputer: ImputedScores | None = None,
    progress: Callable[[int], None] | None = None,
) -> MetricResult:
    """MoRF and LeRF curves with noisy linear imputation, and their per-sample summaries.

    At percentage ``p`` the ``round(P·p/100)`` positions of highest (MoRF) or lowest (LeRF)
    map value are removed (ties: lower index counts as higher) and imputed. Outputs per
    sample: ``road_morf`` and ``road_lerf`` (mean target probability over the percentages)
    and ``road_gap`` (LeRF − MoRF). ``imputer`` shares solved removals with other metrics;
    its noise and seed then apply instead of ``noise``/``seed``. ``progress(k)`` is called
    after each of the ``2 × len(percentages)`` passes with the number done.
    """
    maps = check_maps(x, maps)
    pcts = check_percentages(percentages)
    scorer = imputer or ImputedScores(noise=noise, seed=seed)
    y, t = original_scores(model, x, targets, base_scores, batch_size)
    ranks = rank_positions(maps).reshape(maps.shape[0], -1)
    positions = ranks.shape[1]
    counts = removal_counts(positions, pcts)
    morf = torch.empty(x.shape[0], len(pcts))
    lerf = torch.empty(x.shape[0], len(pcts))
    shape = maps.shape
    for j, k in enumerate(counts):
        morf[:, j] = scorer.probs(model, x, (ranks < k).reshape(shape), t, batch_size=batch_size)
        if progress:
            progress(2 * j + 1)
        lerf[:, j] = scorer.probs(model, x, (ranks >= positions - k).reshape(shape), t,
                                  batch_size=batch_size)
        if progress:
            progress(2 * j + 2)
    m = morf.double().numpy()
    le = lerf.double().numpy()
    return MetricResult(
        metric="road",
        values={
            "road_morf": m.mean(axis=1),
            "road_lerf": le.mean(axis=1),
            "road_gap": le.mean(axis=1) - m.mean(axis=1),
            "score": y.numpy(),
            "target": t.numpy(),
        },
        choices=_choices(scorer, pcts),
        curves={"fraction": np.asarray(pcts) / 100.0, "morf": m, "lerf": le},
    )


def _choices(scorer: ImputedScores, pcts: Sequence[float]) -> dict[str, str]:
    """What defines ROAD's numbers, as the results state it."""
    return {
        "score": SCORE,
        "percentages": ", ".join(f"{p:g}" for p in pcts) + " % of positions removed",
        "order": "MoRF removes the round(P*p/100) highest map values, LeRF the lowest "
        "(ties: lower index counts as higher)",
        "imputation": scorer.describe(),
        "summary": "mean target probability over the percentages (rectangle rule); "
        "road_gap = LeRF - MoRF",
        "masking": "raw input space; one mask per position shared by the channels",
    }


__all__ = ["PERCENTAGES", "check_percentages", "removal_counts", "road"]
