"""What the metric families cost: forward passes over the samples per map, and the projected
seconds of the families a run did not choose (printed beside them as options).

Projections scale this run's own measured cost, so they hold on the machine and model at
hand; they are kept apart from the steps, which only report them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness.options import FaithfulnessOptions


def passes(metric: str, steps: int, n_percentages: int) -> int:
    """Forward passes over the samples one map costs in ``metric`` (drop_increase: per frac)."""
    return {"drop_increase": 1, "confidence": 1, "deletion": steps + 1,
            "insertion": steps + 1, "road": 2 * n_percentages}[metric]


def projections(model: nn.Module, x: Tensor, n_maps: int, chosen: Sequence[str],
                steps: int, opts: FaithfulnessOptions, bs: int, seconds: dict[str, Any], *,
                n_fracs: int) -> dict[str, float]:
    """Projected seconds of the metric families that were not run (printed as options).

    From this run's own measured cost of one pass over the samples with one map (the
    metrics that ran, ROAD excepted: its passes include solves) or, when none ran, the
    unmasked scoring pass; plus, for ROAD and imputed removal, one batch's imputations at
    every percentage timed here. (The unmasked pass alone overstated small inputs ~100x:
    its time is mostly the first call's set-up.)
    """
    n = int(x.shape[0])  # this process's share: under torchrun the ranks run side by side
    per_pass = _measured_pass(seconds, steps, len(opts.percentages))
    if per_pass is None:
        per_pass = seconds.get("forward", 0.0)
    solve = 0.0
    missing = [m for m in M.METRICS if m not in chosen]
    if "road" in missing or opts.baseline == "road":
        from cnnlens.faithfulness.imputation import impute
        from cnnlens.faithfulness.road import removal_counts

        if x.dim() == 4:
            from cnnlens.faithfulness.multigrid import warm_up

            warm_up()  # a first call may compile the solver's kernels: not part of a solve
        # a batch as the metrics would impute it: one 224 px tile, hundreds of short signals
        k_probe = max(1, min(n, bs, 256))
        ranks = torch.arange(int(np.prod(x.shape[2:]))).reshape(1, *x.shape[2:])
        ranks = ranks.expand(k_probe, *x.shape[2:])
        t0 = time.perf_counter()
        for k in removal_counts(int(np.prod(x.shape[2:])), opts.percentages):
            impute(x[:k_probe], ranks < k, noise=opts.noise)
        solve = (time.perf_counter() - t0) / len(opts.percentages) / k_probe  # per input
    out: dict[str, float] = {}
    for m in missing:
        n_passes = passes(m, steps, len(opts.percentages)) * (
            n_fracs if m == "drop_increase" else 1)
        imputed = m == "road" or (opts.baseline == "road" and m != "confidence")
        out[m] = n_maps * n_passes * (per_pass + (n * solve if imputed else 0.0))
    return out


def _measured_pass(seconds: dict[str, Any], steps: int, n_percentages: int) -> float | None:
    """Seconds of one pass over this process's samples with one map, from the metrics this
    run timed (``seconds["metrics"][map][metric@frac]``); None when none ran."""
    total, count = 0.0, 0
    for per_map in seconds.get("metrics", {}).values():
        for key, secs in per_map.items():
            fam = key.partition("@")[0]
            if fam in M.METRICS and fam != "road":
                total += float(secs)
                count += passes(fam, steps, n_percentages)
    return total / count if count else None


__all__ = ["passes", "projections"]
