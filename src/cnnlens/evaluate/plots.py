"""Evaluation figures: learning curves, ROC curves, confusion matrix, example panels.

Above :data:`~cnnlens.evaluate.limits.MANY_CLASSES` classes the per-class figures switch to
summaries (see :mod:`cnnlens.evaluate.summary_plots`), so drawing time and size stay bounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cnnlens.evaluate.limits import WORST_K, many_classes
from cnnlens.plotting import new_figure

#: Longest class name drawn in a figure; longer names are cut with an ellipsis.
MAX_LABEL = 32


def learning_curves(history: list[dict[str, Any]]) -> Figure:
    """Loss and accuracy per epoch, train and (when present) validation."""
    fig = new_figure(10, 3.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] + 1 for h in history]
    for key, ax, label in (("loss", ax_loss, "loss"), ("accuracy", ax_acc, "accuracy")):
        ax.plot(epochs, [h[key] for h in history], label="train")
        if any(f"val_{key}" in h for h in history):
            ax.plot(epochs, [h.get(f"val_{key}", np.nan) for h in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("Loss (cross-entropy)")
    ax_acc.set_title("Accuracy")
    return fig


def short(name: str) -> str:
    """A class name cut to :data:`MAX_LABEL` characters, so one long name cannot widen a
    figure without bound."""
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def roc_curves(metrics: dict[str, Any]) -> Figure:
    """One-vs-rest ROC curve of every class, AUC in the legend.

    Above ``MANY_CLASSES`` classes: the micro and macro averages and the ``WORST_K``
    classes by AUC only, since hundreds of curves and legend rows show nothing.
    """
    fig = new_figure(6, 5.5)
    ax = fig.subplots()
    aucs = {pc["class"]: pc["roc_auc"] for pc in metrics["per_class"]}
    curves = metrics["roc_curves"]
    title = "ROC curves (one vs rest)"
    many = many_classes(len(metrics["per_class"]))
    if many:
        average = metrics.get("roc_average") or {}
        for kind, style in (("micro", "-"), ("macro", "--")):
            if kind in average:
                a = average[kind]
                ax.plot(a["fpr"], a["tpr"], style, color="black", lw=2,
                        label=f"{kind} average (AUC {a['auc']:.3f})")
        worst = sorted(curves, key=lambda name: aucs[name])[:WORST_K]
        curves = {name: curves[name] for name in worst}
        title = f"ROC curves: averages and the {len(worst)} worst classes (one vs rest)"
    for name, curve in curves.items():
        ax.plot(curve["fpr"], curve["tpr"], lw=1.3,
                label=f"{short(name) if many else name} (AUC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, alpha=0.6)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def confusion_matrix(metrics: dict[str, Any], class_names: list[str]) -> Figure:
    """Row-normalised confusion matrix with the value printed in each cell.

    Above ``MANY_CLASSES`` classes (where the evaluate stage draws summaries instead) a
    library caller still gets a bounded figure: the matrix as an image without cell values
    or names, since K² texts are what takes minutes to draw.
    """
    cm = np.array(metrics["confusion_matrix_normalized"], dtype=float)
    k = len(class_names)
    many = many_classes(k)
    size = 10.0 if many else max(5.0, 0.6 * k + 2.5)  # at most 20.5 inches when not many
    fig = new_figure(size, size * 0.9)
    ax = fig.subplots()
    im = ax.imshow(np.nan_to_num(cm), cmap="Blues", vmin=0, vmax=1)
    if many:
        ax.set_xlabel("predicted (class index)")
        ax.set_ylabel("true (class index)")
        ax.set_title(f"Normalised confusion matrix, {k} classes "
                     f"(accuracy {metrics['accuracy']:.4f})")
        fig.colorbar(im, ax=ax, shrink=0.8)
        return fig
    for i in range(k):
        for j in range(k):
            v = cm[i, j]
            text = "–" if np.isnan(v) else f"{v:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if (not np.isnan(v) and v > 0.5) else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Normalised confusion matrix (accuracy {metrics['accuracy']:.4f})")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def example_panel(
    examples: dict[str, list[dict[str, Any]]],
    inputs: dict[int, np.ndarray],
    class_names: list[str],
    *,
    kind: str,
    per_row: int = 4,
) -> Figure:
    """Successes (top rows) and failures (bottom rows): signals as lines, images as tiles."""
    rows: list[tuple[str, dict[str, Any]]] = [("success", e) for e in examples["successes"]]
    rows += [("failure", e) for e in examples["failures"]]
    n = max(1, len(rows))
    ncols = min(per_row, n)
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(3.2 * ncols, 2.4 * nrows if kind == "signal" else 3.0 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (what, ex) in zip(axes, rows, strict=False):
        x = inputs[ex["index"]]
        color = "tab:green" if what == "success" else "tab:red"
        if kind == "signal":
            ax.plot(x.reshape(-1), color=color, lw=1.4)
            ax.grid(alpha=0.3)
        else:
            ax.imshow(np.clip(np.moveaxis(x, 0, -1), 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(3)
        ax.set_title(
            f"{what} #{ex['index']}\ntrue {class_names[ex['true']]}, pred "
            f"{class_names[ex['predicted']]} ({ex['confidence']:.2f})",
            fontsize=8, color=color,
        )
    for ax in axes[len(rows):]:
        ax.axis("off")
    fig.suptitle("Most confident successes (green) and failures (red)")
    return fig
