"""Figures of the faithfulness stage: mean deletion/insertion curves and the sanity check."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnnlens.plotting import new_figure, save_figure


def plot_curves(
    curves: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], path: str | Path
) -> Path | None:
    """One panel per curve kind (deletion, insertion), one mean line per method.

    ``curves[kind][method] = {"fraction": (S+1,), "scores": (N, S+1)}``. Returns ``None``
    when there is nothing to plot.
    """
    kinds = [k for k in ("deletion", "insertion") if curves.get(k)]
    if not kinds:
        return None
    fig = new_figure(5.0 * len(kinds), 3.8)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        for method, c in curves[kind].items():
            mean = np.asarray(c["scores"]).mean(axis=0)
            auc = float(np.trapezoid(mean, c["fraction"]))
            style = "--" if method == "random" else "-"
            ax.plot(c["fraction"], mean, style, label=f"{method} (AUC {auc:.3f})")
        verb = "removed" if kind == "deletion" else "inserted"
        ax.set_xlabel(f"fraction of positions {verb} (most salient first)")
        ax.set_ylabel("target probability (mean)")
        ax.set_title(kind)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_sanity(sanity: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path | None:
    """Mean Spearman correlation vs. how many layers were randomized, one line per method."""
    if not sanity:
        return None
    fig = new_figure(6.5, 4.0)
    ax = fig.subplots()
    for method, res in sanity.items():
        layers = list(res["layers"])
        ys = [1.0, *res["spearman_mean"]]
        flag = " (flagged)" if res.get("flagged") else ""
        ax.plot(range(len(ys)), ys, "o-", label=f"{method}{flag}")
        ax.set_xticks(range(len(ys)), ["trained", *layers], rotation=45, ha="right", fontsize=8)
    ax.axhline(0.0, color="grey", lw=0.8)
    thr = next(iter(sanity.values())).get("threshold")
    if thr is not None:
        ax.axhline(float(thr), color="red", lw=0.8, ls=":", label=f"flag threshold {thr}")
    ax.set_xlabel("randomized down to layer (cascading, output first)")
    ax.set_ylabel("Spearman rank correlation (mean)")
    ax.set_ylim(-1.02, 1.02)
    ax.set_title("model-randomization sanity check")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


__all__ = ["plot_curves", "plot_sanity"]
