"""Classification metrics from predicted probabilities (scikit-learn does the arithmetic)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from cnnlens.errors import CnnlensError
from cnnlens.evaluate.confusion import most_confused
from cnnlens.evaluate.limits import TOP_PAIRS
from cnnlens.evaluate.roc_average import average_roc


def classification_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: list[str],
    *,
    n_examples: int = 8,
) -> dict[str, Any]:
    """Accuracy, class-wise accuracy, ROC AUC, confusion matrix, P/R/F1 and examples.

    Class-wise accuracy is the recall of each class (the diagonal of the row-normalised
    confusion matrix). A class absent from ``labels`` gets ``None`` where a value is
    undefined rather than a misleading 0. ``most_confused`` (the largest off-diagonal
    rates) and ``roc_average`` (micro/macro curves) summarise the matrix and the curves in
    a size independent of the class count, for figures and reports of many classes.
    """
    labels, probs = _checked(labels, probs, len(class_names))
    k = len(class_names)
    pred = probs.argmax(axis=1)
    classes = list(range(k))
    cm = confusion_matrix(labels, pred, labels=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm_norm = cm / cm.sum(axis=1, keepdims=True)
    per_class, roc, curves = _per_class(labels, probs, pred, class_names, cm_norm)
    aucs = [float(pc["roc_auc"]) for pc in per_class if pc["roc_auc"] is not None]
    return {
        "n": len(labels),
        "correct": int((pred == labels).sum()),
        "accuracy": float(accuracy_score(labels, pred)),
        "per_class": per_class,
        "macro_roc_auc": float(np.mean(aucs)) if aucs else None,
        "averages": _averages(labels, pred, classes),
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": [[_nan_to_none(float(v)) for v in row] for row in cm_norm],
        "roc_curves": roc,
        "roc_average": average_roc(labels, probs, curves),
        "most_confused": most_confused(cm, list(class_names), k=TOP_PAIRS),
        "examples": examples(labels, probs, n=n_examples),
    }


def _checked(labels: np.ndarray, probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` as int64 ``(N,)`` and ``probs`` as float64 ``(N, k)``, N > 0, or an error."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise CnnlensError(f"probs must have shape (N, {k}), got {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise CnnlensError(f"labels must have shape ({probs.shape[0]},), got {labels.shape}")
    if len(labels) == 0:
        raise CnnlensError("cannot compute metrics on an empty split")
    return labels, probs


def _averages(labels: np.ndarray, pred: np.ndarray, classes: list[int]
              ) -> dict[str, dict[str, float]]:
    """Macro and support-weighted precision, recall and F1."""
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            labels, pred, labels=classes, average=avg, zero_division=0
        )
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    return averages


def _per_class(
    labels: np.ndarray, probs: np.ndarray, pred: np.ndarray, class_names: list[str],
    cm_norm: np.ndarray,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """A row per class, the ROC curves by name for the report and by index for the averages.

    A class's ROC needs positives and negatives: one absent from ``labels`` (or the only one
    present) has no curve and ``roc_auc`` None.
    """
    k = len(class_names)
    support = np.bincount(labels, minlength=k)
    p, r, f, _s = precision_recall_fscore_support(labels, pred, labels=list(range(k)),
                                                  zero_division=0)
    per_class: list[dict[str, Any]] = []
    roc: dict[str, Any] = {}
    curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c, name in enumerate(class_names):
        auc: float | None = None
        if 0 < support[c] < len(labels):
            onehot = (labels == c).astype(int)
            auc = float(roc_auc_score(onehot, probs[:, c]))
            fpr, tpr, _ = roc_curve(onehot, probs[:, c])
            roc[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
            curves[c] = (fpr, tpr)
        per_class.append(
            {
                "class": name,
                "support": int(support[c]),
                "accuracy": _nan_to_none(float(cm_norm[c, c])),
                "precision": float(p[c]),
                "recall": float(r[c]),
                "f1": float(f[c]),
                "roc_auc": auc,
            }
        )
    return per_class, roc, curves


def examples(labels: np.ndarray, probs: np.ndarray, *, n: int = 8) -> dict[str, list[dict]]:
    """The most confident successes and failures: where the model is surest, right or wrong."""
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    out: dict[str, list[dict]] = {}
    for key, mask in (("successes", pred == labels), ("failures", pred != labels)):
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(-conf[idx], kind="stable")][:n]
        out[key] = [
            {"index": int(i), "true": int(labels[i]), "predicted": int(pred[i]),
             "confidence": float(conf[i])}
            for i in idx
        ]
    return out


def _nan_to_none(v: float) -> float | None:
    return None if math.isnan(v) else v
