"""Figures that replace the confusion matrix above ``MANY_CLASSES`` classes.

Their size and drawing time do not grow with the class count: a fixed number of bars
(the most-confused pairs, the worst classes) and one histogram of per-class accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cnnlens.evaluate.confusion import worst_classes
from cnnlens.evaluate.limits import WORST_K
from cnnlens.evaluate.plots import short
from cnnlens.plotting import new_figure


def most_confused_pairs(metrics: dict[str, Any]) -> Figure:
    """Horizontal bars of ``metrics["most_confused"]``: ``true → predicted``, largest rate on
    top, each bar labelled with its rate and ``count / support``."""
    pairs = list(metrics.get("most_confused") or [])
    fig = new_figure(9, 1.2 + 0.3 * max(len(pairs), 3))
    ax = fig.subplots()
    k = len(metrics["per_class"])
    if not pairs:
        ax.text(0.5, 0.5, "no confusions: every sample is classified correctly",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        y = np.arange(len(pairs))
        rates = [p["rate"] for p in pairs]
        ax.barh(y, rates, color="tab:red", alpha=0.75)
        ax.set_yticks(y, [f"{short(p['true_name'])} → {short(p['predicted_name'])}"
                          for p in pairs], fontsize=8)
        ax.invert_yaxis()
        for yi, p in zip(y, pairs, strict=True):
            ax.text(p["rate"], float(yi), f" {p['rate']:.2f} ({p['count']}/{p['support']})",
                    va="center", fontsize=7)
        ax.set_xlim(0, min(1.0, max(rates) * 1.25 + 0.05))
        ax.set_xlabel("share of the true class predicted as the other (row-normalised)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{len(pairs)} most-confused class pairs of {k} classes (true → predicted)")
    return fig


def class_accuracy_summary(metrics: dict[str, Any]) -> Figure:
    """Left: histogram of per-class accuracy (recall) with its mean; right: the ``WORST_K``
    classes by accuracy. Classes without samples have no accuracy and are counted apart."""
    per_class = metrics["per_class"]
    acc = np.array([pc["accuracy"] for pc in per_class if pc["accuracy"] is not None],
                   dtype=float)
    fig = new_figure(11, 4.2)
    ax_hist, ax_worst = fig.subplots(1, 2, width_ratios=[1.1, 1])
    ax_hist.hist(acc, bins=np.linspace(0, 1, 21), color="tab:blue", alpha=0.8)
    if len(acc):
        ax_hist.axvline(float(acc.mean()), color="black", ls="--", lw=1,
                        label=f"mean {acc.mean():.3f}")
        ax_hist.legend(fontsize=8, loc="upper left")
    missing = len(per_class) - len(acc)
    ax_hist.set_title(f"Per-class accuracy, {len(acc)} classes"
                      + (f" ({missing} without samples)" if missing else ""))
    ax_hist.set_xlabel("accuracy (recall) of the class")
    ax_hist.set_ylabel("classes")
    ax_hist.grid(alpha=0.3)
    worst = worst_classes(per_class, k=WORST_K)
    y = np.arange(len(worst))
    ax_worst.barh(y, [pc["accuracy"] for pc in worst], color="tab:orange")
    for yi, pc in zip(y, worst, strict=True):  # a value per bar: zero-length bars show too
        ax_worst.text(pc["accuracy"], float(yi), f" {pc['accuracy']:.2f}", va="center",
                      fontsize=7)
    ax_worst.set_yticks(y, [f"{short(str(pc['class']))} (n={pc['support']})" for pc in worst],
                        fontsize=8)
    ax_worst.invert_yaxis()
    ax_worst.set_xlim(0, 1)
    ax_worst.set_xlabel("accuracy (recall)")
    ax_worst.set_title(f"{len(worst)} worst classes")
    ax_worst.grid(axis="x", alpha=0.3)
    return fig


__all__ = ["class_accuracy_summary", "most_confused_pairs"]
