"""The most-confused class pairs: what a confusion matrix shows, in a size that fits any K.

With hundreds of classes the full matrix is data (kept in ``eval/metrics.json``), not a
figure; the pairs a reader needs are the largest off-diagonal rates, found here in O(K²)
arithmetic without drawing anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def most_confused(cm: np.ndarray, class_names: list[str], *, k: int) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal cells of the row-normalised confusion matrix ``cm``.

    Ordered by rate (the share of the true class predicted as the other), then by count,
    then by class indices, so ties never reorder between runs. Cells with no confusion are
    left out. Each entry: ``true``, ``predicted`` (indices), their names, ``count``,
    ``support`` (samples of the true class) and ``rate``.
    """
    counts = np.asarray(cm, dtype=np.int64)
    n = counts.shape[0]
    if n == 0 or k <= 0:
        return []
    support = counts.sum(axis=1)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    if len(rows) == 0:
        return []
    pair_counts = off[rows, cols]
    rates = pair_counts / support[rows]
    # lexsort: last key is primary; negate for descending rate and count
    order = np.lexsort((cols, rows, -pair_counts, -rates))[:k]
    return [
        {"true": int(rows[i]), "predicted": int(cols[i]),
         "true_name": class_names[rows[i]], "predicted_name": class_names[cols[i]],
         "count": int(pair_counts[i]), "support": int(support[rows[i]]),
         "rate": float(rates[i])}
        for i in order
    ]


def worst_classes(per_class: list[dict[str, Any]], *, k: int) -> list[dict[str, Any]]:
    """The ``k`` classes with the lowest accuracy (recall); among equal accuracies the
    classes with more samples first (a miss on 40 samples says more than on 1), then class
    order. Classes without samples (accuracy ``None``) and malformed rows are left out."""
    scored = [pc for pc in per_class if isinstance(pc, dict) and _is_number(pc.get("accuracy"))]
    return sorted(scored, key=lambda pc: (float(pc["accuracy"]), -_support(pc)))[:k]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # not NaN


def _support(pc: dict[str, Any]) -> float:
    s = pc.get("support")
    return float(s) if isinstance(s, int | float) and _is_number(s) else 0.0


__all__ = ["most_confused", "worst_classes"]
