"""Aggregation that tells real differences from noise: intervals, paired tests, per-class means.

The study compared three methods on a few hundred samples with no error bars; these helpers
turn per-sample metric values (see :mod:`cnnlens.faithfulness.metrics`) into means with 95 %
bootstrap intervals and paired tests on the *same* samples, Holm-corrected across the family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness.options import DEFAULT_N_BOOT


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean and percentile-bootstrap interval of the mean (seeded, so reruns agree)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not 0.0 < level < 1.0:
        raise CnnlensError(f"level={level!r} is invalid; accepted: a number in (0, 1)")
    if n_boot < 1:
        raise CnnlensError(f"n_boot={n_boot!r} is invalid; accepted: an integer >= 1")
    if v.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // v.size)  # bound memory for large n
    for i in range(0, n_boot, chunk):
        m = min(chunk, n_boot - i)
        means[i : i + m] = v[rng.integers(0, v.size, size=(m, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean": float(v.mean()), "low": float(low), "high": float(high), "n": int(v.size)}


def paired_test(a: np.ndarray, b: np.ndarray, *, binary: bool = False) -> dict[str, Any]:
    """Two-sided paired test of ``a`` vs ``b`` on the same samples.

    Continuous values: Wilcoxon signed-rank (zero differences dropped). Binary 0/1 values:
    McNemar's exact test (binomial on the discordant pairs). No difference at all gives
    ``p = 1``.
    """
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise CnnlensError(f"paired samples differ in length ({x.size} vs {y.size})")
    out: dict[str, Any] = {"n": int(x.size), "mean_diff": float(np.mean(x - y)) if x.size else 0.0}
    if binary:
        only_a = int(np.sum((x > 0.5) & (y <= 0.5)))
        only_b = int(np.sum((x <= 0.5) & (y > 0.5)))
        disc = only_a + only_b
        p = 1.0 if disc == 0 else float(sps.binomtest(only_a, disc, 0.5).pvalue)
        out.update(test="mcnemar-exact", statistic=float(only_a), only_a=only_a, only_b=only_b,
                   p_value=p)
        return out
    d = x - y
    if not np.any(d != 0):
        out.update(test="wilcoxon", statistic=0.0, p_value=1.0)
        return out
    res = sps.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    out.update(test="wilcoxon", statistic=float(res.statistic), p_value=float(res.pvalue))
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given), for a family of tests."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adj[idx] = running
    return [float(v) for v in adj]


def per_class(
    values: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Mean and bootstrap interval of ``values`` within each true class."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    lab = np.asarray(labels).reshape(-1)
    if v.shape != lab.shape:
        raise CnnlensError(f"labels has {lab.size} entries for {v.size} values")
    return {
        name: bootstrap_ci(v[lab == c], n_boot=n_boot, seed=seed)
        for c, name in enumerate(class_names)
        if np.any(lab == c)
    }


def verdict(test: dict[str, Any], *, alpha: float = 0.05, p_key: str = "p_value_holm") -> str:
    """A one-word reading of a paired test: ``better``, ``worse`` or ``no difference``."""
    p = test.get(p_key, test["p_value"])
    if p >= alpha or test["mean_diff"] == 0:
        return "no difference"
    better = test["mean_diff"] > 0 if test.get("higher_is_better", True) else test["mean_diff"] < 0
    return "better" if better else "worse"


__all__ = ["bootstrap_ci", "holm", "paired_test", "per_class", "verdict"]
