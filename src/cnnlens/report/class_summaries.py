"""The evaluation section above ``MANY_CLASSES`` classes: most-confused pairs, worst
classes and the summary figures that replace the confusion matrix.

Everything here has a fixed size (``TOP_PAIRS`` pairs, ``WORST_K`` classes, three figures),
so the report of a 360-class model is as quick to build and read as that of a 10-class one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlens.evaluate.confusion import worst_classes
from cnnlens.evaluate.limits import MANY_CLASSES, TOP_PAIRS, WORST_K
from cnnlens.report.images import Figure
from cnnlens.report.model import Ctx, as_list, name_of, number, plain


def figures(ctx: Ctx, k: int) -> list[Figure]:
    """ROC averages, most-confused pairs and the per-class accuracy summary.

    A run evaluated before these figures existed still has ``confusion_matrix.png``: it is
    listed too, so the reader learns why it is not shown (too large) instead of nothing.
    """
    out = [
        ctx.figure("eval/roc_curves.png", f"ROC curves: micro and macro averages and the "
                   f"{WORST_K} worst of {k} classes by AUC (one vs rest)"),
        ctx.figure("eval/most_confused.png", f"The {TOP_PAIRS} most-confused class pairs "
                   "(share of the true class predicted as the other)"),
        ctx.figure("eval/class_accuracy.png", "Per-class accuracy: distribution over all "
                   f"classes and the {WORST_K} worst"),
    ]
    if (Path(ctx.path) / "eval" / "confusion_matrix.png").is_file():
        out.append(ctx.figure("eval/confusion_matrix.png", "Confusion matrix (normalised per "
                              "true class)"))
    return out


def summary(metrics: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Rows of the most-confused pairs and of the worst classes, plus the threshold text.

    Pairs come from ``most_confused`` in the metrics, or (older metrics files) are computed
    from the full confusion matrix kept there.
    """
    pairs = metrics.get("most_confused")
    if not isinstance(pairs, list):
        pairs = _pairs_from_matrix(metrics.get("confusion_matrix"), names)
    pair_rows = [{"true": name_of(names, p.get("true")),
                  "predicted": name_of(names, p.get("predicted")),
                  "rate": number(p.get("rate")), "count": plain(p.get("count")),
                  "support": plain(p.get("support"))}
                 for p in pairs if isinstance(p, dict)]
    worst = worst_classes(as_list(metrics.get("per_class")), k=WORST_K)
    worst_rows = [{"class": plain(p.get("class")), "accuracy": number(p.get("accuracy")),
                   "support": number(p.get("support")), "f1": number(p.get("f1")),
                   "roc_auc": number(p.get("roc_auc"))} for p in worst]
    return {"threshold": MANY_CLASSES, "pairs": pair_rows, "worst": worst_rows}


def _pairs_from_matrix(cm: Any, names: list[str]) -> list[dict[str, Any]]:
    """``most_confused`` of a confusion matrix given as nested lists; [] if malformed."""
    import numpy as np

    from cnnlens.evaluate.confusion import most_confused

    if not isinstance(cm, list) or not cm:
        return []
    try:
        counts = np.asarray(cm, dtype=np.int64)
    except (TypeError, ValueError):
        return []
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        return []
    labels = [name_of(names, i) for i in range(counts.shape[0])]
    return most_confused(counts, labels, k=TOP_PAIRS)


__all__ = ["figures", "summary"]
