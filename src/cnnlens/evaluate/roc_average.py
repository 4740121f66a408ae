"""Micro- and macro-averaged one-vs-rest ROC curves, sampled on a fixed grid.

With hundreds of classes one curve per class is unreadable; the two averages (plus the
worst classes, drawn from the per-class curves) say the same in three lines. Sampling on a
fixed false-positive-rate grid keeps what ``metrics.json`` stores independent of N and K.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import auc, roc_curve

#: False-positive rates at which the averaged curves are stored.
GRID = np.linspace(0.0, 1.0, 201)


def average_roc(labels: np.ndarray, probs: np.ndarray,
                per_class: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any] | None:
    """``{"micro": {...}, "macro": {...}}``, each with ``fpr``, ``tpr`` and ``auc``.

    Micro pools every (sample, class) decision, so frequent classes weigh more; macro is
    the mean of the per-class curves (``per_class``: class index to its ``(fpr, tpr)``),
    so every class with a defined curve weighs the same; its AUC is the mean per-class AUC
    (the report's "macro ROC AUC"). ``None`` when no class has a curve.
    """
    if not per_class:
        return None
    onehot = np.zeros(probs.shape, dtype=np.int8)
    onehot[np.arange(len(labels)), labels] = 1
    fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
    macro = np.mean([np.interp(GRID, f, t) for f, t in per_class.values()], axis=0)
    macro_auc = float(np.mean([auc(f, t) for f, t in per_class.values()]))
    return {
        "micro": _sampled(fpr, tpr, float(auc(fpr, tpr))),
        "macro": _sampled(GRID, macro, macro_auc),
    }


def _sampled(fpr: np.ndarray, tpr: np.ndarray, area: float) -> dict[str, Any]:
    """The curve on :data:`GRID` (linear between its points, as it is drawn)."""
    return {"fpr": GRID.tolist(), "tpr": np.interp(GRID, fpr, tpr).tolist(), "auc": area}


__all__ = ["GRID", "average_roc"]
