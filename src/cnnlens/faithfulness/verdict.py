"""Which method is best, across metrics: rankings with intervals, agreement, contradictions, text.

Each metric output (``drop@0.9``, ``road_gap``, ...) ranks the methods and the random
baseline by its mean; the paired tests (Holm-corrected, from the stage) say which
differences are beyond noise. Kendall's W measures how far the metrics agree on the order
(1: every metric ranks alike, 0: no common order), with Friedman's test for "no agreement
beyond chance"; a contradiction is a pair of methods that one metric orders one way and
another metric the other way, both beyond noise. The verdict paragraph is generated from
these numbers only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.stats import rankdata

RANDOM = "random"


def kendalls_w(scores: np.ndarray) -> tuple[float, float]:
    """Kendall's W of ``scores`` (metrics × methods, larger = better) and Friedman's p-value.

    Ranks within each metric (ties averaged); ``W = 12 S / (m² (n³ − n))`` with the tie
    correction, and the Friedman statistic ``m (n − 1) W`` against χ²(n − 1).
    """
    s = np.asarray(scores, dtype=np.float64)
    m, n = s.shape
    if m < 2 or n < 2:
        return float("nan"), float("nan")
    ranks = np.vstack([rankdata(row) for row in s])
    dev = ranks.sum(axis=0) - m * (n + 1) / 2.0
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float(((counts**3) - counts).sum())
    den = m**2 * (n**3 - n) - m * ties
    if den <= 0:
        return float("nan"), float("nan")
    w = float(12.0 * (dev**2).sum() / den)
    p = float(sps.chi2.sf(m * (n - 1) * w, n - 1))
    return w, p


def _find(tests: Sequence[Mapping[str, Any]], key: str, a: str, b: str
          ) -> tuple[str, Mapping[str, Any]] | None:
    """The verdict of ``a`` vs ``b`` on ``key`` (``better``/``worse``/``no difference``)."""
    for t in tests:
        if t.get("metric") != key:
            continue
        if t.get("a") == a and t.get("b") == b:
            return str(t["verdict"]), t
        if t.get("a") == b and t.get("b") == a:
            flip = {"better": "worse", "worse": "better"}.get(str(t["verdict"]),
                                                             str(t["verdict"]))
            return flip, t
    return None


def _strength(w: float) -> str:
    if not np.isfinite(w):
        return "undefined"
    return "strong" if w >= 0.7 else "moderate" if w >= 0.4 else "weak"


def build_verdict(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    tests: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    higher_is_better: Mapping[str, bool],
    labels: Mapping[str, str] | None = None,
    task: str = "",
    n: int | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Rankings per metric, Kendall's W, contradictions and a plain-language paragraph.

    ``summary[method][key]`` holds ``mean``/``low``/``high`` (the stage's bootstrap), ``tests``
    the stage's paired tests; ``higher_is_better[key]`` orients each metric.
    """
    labels = labels or {}
    methods = [m for m in summary if m != RANDOM] + ([RANDOM] if RANDOM in summary else [])
    keys = [k for k in keys if all(k in summary[m] for m in methods)]
    rankings: dict[str, list[dict[str, Any]]] = {}
    oriented = []
    for key in keys:
        up = higher_is_better.get(key, higher_is_better.get(key.partition("@")[0], True))
        sign = 1.0 if up else -1.0
        vals = np.asarray([summary[m][key]["mean"] for m in methods], dtype=np.float64)
        oriented.append(sign * vals)
        rankings[key] = _ranking(summary, tests, methods, key, oriented[-1])
    w, p = kendalls_w(np.asarray(oriented)) if keys else (float("nan"), float("nan"))
    contradictions = _contradictions(methods, keys, tests)
    vs_random = _vs_random(methods, keys, tests)
    text = _paragraph(methods, keys, rankings, vs_random, contradictions, tests, w, p,
                      labels=labels, task=task, n=n, alpha=alpha)
    return {"metrics": list(keys), "methods": methods, "rankings": rankings,
            "kendall_w": w, "friedman_p": p, "agreement": _strength(w),
            "contradictions": contradictions, "vs_random": vs_random, "text": text}


def _ranking(summary: Mapping[str, Mapping[str, Mapping[str, float]]],
             tests: Sequence[Mapping[str, Any]], methods: list[str], key: str,
             oriented: np.ndarray) -> list[dict[str, Any]]:
    """The methods on ``key``, best first (``oriented``: their means, larger = better), each
    with its interval and whether the paired test ties it with the best."""
    rank = rankdata(-oriented, method="min")
    order = np.argsort(rank, kind="stable")
    top = methods[int(order[0])]
    rows = []
    for i in order:
        m = methods[int(i)]
        vs_top = _find(tests, key, m, top) if m != top else None
        rows.append({"method": m, "rank": int(rank[i]), "mean": summary[m][key]["mean"],
                     "low": summary[m][key]["low"], "high": summary[m][key]["high"],
                     "tied_with_best": m == top or (vs_top is not None
                                                    and vs_top[0] == "no difference")})
    return rows


def _contradictions(methods: list[str], keys: list[str], tests: Sequence[Mapping[str, Any]]
                    ) -> list[dict[str, Any]]:
    """Pairs of methods that one metric orders one way and another the other, beyond noise."""
    contradictions = []
    for i, a in enumerate(methods):
        for b in methods[i + 1 :]:
            says = {k: v[0] for k in keys if (v := _find(tests, k, a, b)) is not None}
            a_wins = [k for k, v in says.items() if v == "better"]
            b_wins = [k for k, v in says.items() if v == "worse"]
            if a_wins and b_wins:
                contradictions.append({"a": a, "b": b, "a_better_on": a_wins,
                                       "b_better_on": b_wins})
    return contradictions


def _vs_random(methods: list[str], keys: list[str], tests: Sequence[Mapping[str, Any]]
               ) -> dict[str, dict[str, list[str]]]:
    """For each method, the metrics on which it beats random, loses to it, or ties."""
    vs_random: dict[str, dict[str, list[str]]] = {}
    for m in methods:
        if m == RANDOM or RANDOM not in methods:
            continue
        out: dict[str, list[str]] = {"better": [], "worse": [], "no difference": []}
        for k in keys:
            v = _find(tests, k, m, RANDOM)
            if v is not None:
                out.setdefault(v[0], []).append(k)
        vs_random[m] = out
    return vs_random


def _paragraph(methods: list[str], keys: list[str], rankings: dict[str, list[dict[str, Any]]],
               vs_random: dict[str, dict[str, list[str]]], contradictions: list[dict[str, Any]],
               tests: Sequence[Mapping[str, Any]], w: float, p: float, *,
               labels: Mapping[str, str], task: str, n: int | None, alpha: float) -> str:
    if not keys:
        return "No metric was computed for every method: no verdict."

    def lab(k: str) -> str:
        return labels.get(k, k)

    cands = [m for m in methods if m != RANDOM]
    where = f"On {task}" if task else "Here"
    size = f" ({n} samples)" if n else ""
    parts = [f"{where}{size}, {len(keys)} metric outputs rank {len(methods)} maps "
             f"(random included); their agreement is {_strength(w)} (Kendall's W = {w:.2f}, "
             f"Friedman p = {p:.2g})." if np.isfinite(w) else
             f"{where}{size}, one metric output ranks {len(methods)} maps."]
    parts += _random_sentences(cands, keys, vs_random, tests, lab)
    parts.append(_verdict_sentence(cands, keys, rankings, alpha, lab))
    if contradictions:
        c = contradictions[0]
        parts.append(f"The metrics contradict each other on {len(contradictions)} pair(s), "
                     f"e.g. {c['a']} beats {c['b']} on {', '.join(map(lab, c['a_better_on']))} "
                     f"but loses on {', '.join(map(lab, c['b_better_on']))}.")
    return " ".join(parts)


def _random_sentences(cands: list[str], keys: list[str],
                      vs_random: dict[str, dict[str, list[str]]],
                      tests: Sequence[Mapping[str, Any]], lab: Callable[[str], str]
                      ) -> list[str]:
    """How each method compares with the random map, with the headline metrics' differences,
    and which never beat it."""
    parts = []
    headline = [k for k in (keys[0], "road_gap") if k in keys]
    for m in cands:
        r = vs_random.get(m)
        if r is None:
            continue
        better, worse = r.get("better", []), r.get("worse", [])
        diffs = []
        for k in dict.fromkeys(headline):
            t = _find(tests, k, m, RANDOM)
            if t is not None:
                diffs.append(f"{lab(k)} {t[1].get('mean_diff_scaled', t[1]['mean_diff']):+.3g}")
        s = f"{m} beats random beyond noise on {len(better)} of {len(keys)}"
        if worse:
            s += f" and is worse than random on {len(worse)} ({', '.join(map(lab, worse))})"
        s += f" (difference to random: {'; '.join(diffs)})" if diffs else ""
        parts.append(s + ".")
    never_random = [m for m in cands if m in vs_random and not vs_random[m].get("better")]
    if never_random:
        parts.append(f"{', '.join(never_random)} never beat{'s' if len(never_random) == 1 else ''}"
                     " a random map beyond noise.")
    return parts


def _verdict_sentence(cands: list[str], keys: list[str],
                      rankings: dict[str, list[dict[str, Any]]], alpha: float,
                      lab: Callable[[str], str]) -> str:
    """One method best on every metric beyond noise, else those never beaten, else who has
    the highest mean where."""
    best_all = [m for m in cands if all(
        rankings[k][0]["method"] == m and sum(r["tied_with_best"] for r in rankings[k]) == 1
        for k in keys)]
    unbeaten = [m for m in cands if all(
        next(r for r in rankings[k] if r["method"] == m)["tied_with_best"] for k in keys)]
    if best_all:
        return (f"Verdict: {best_all[0]} is the most faithful on every metric, beyond "
                f"noise (alpha {alpha}, Holm-corrected).")
    if unbeaten:
        return (f"Verdict: {', '.join(unbeaten)} {'is' if len(unbeaten) == 1 else 'are'} "
                "never beaten beyond noise on any metric; no method beats every other "
                "on every metric.")
    tops: dict[str, list[str]] = {}
    for k in keys:
        tops.setdefault(rankings[k][0]["method"], []).append(lab(k))
    per = "; ".join(f"{m} on {len(ks)} ({', '.join(ks)})" for m, ks in tops.items())
    return f"Verdict: no method is best on every metric beyond noise; highest mean: {per}."


__all__ = ["build_verdict", "kendalls_w"]
