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
    """One panel per curve kind (deletion, insertion, ROAD MoRF, ROAD LeRF), a line per method.

    ``curves[kind][method] = {"fraction": (S+1,), "scores": (N, S+1)}``; ROAD's entries hold
    ``morf`` and ``lerf`` instead of ``scores``. Returns ``None`` when there is nothing to
    plot.
    """
    panels = [(k, "scores") for k in ("deletion", "insertion") if curves.get(k)]
    if curves.get("road"):
        panels += [("road", "morf"), ("road", "lerf")]
    if not panels:
        return None
    fig = new_figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (kind, series) in zip(axes, panels, strict=True):
        for method, c in curves[kind].items():
            mean = np.asarray(c[series]).mean(axis=0)
            summary = (f"AUC {float(np.trapezoid(mean, c['fraction'])):.3f}"
                       if series == "scores" else f"mean {float(mean.mean()):.3f}")
            style = "--" if method == "random" else "-"
            ax.plot(c["fraction"], mean, style + ("o" if kind == "road" else ""),
                    label=f"{method} ({summary})")
        if kind == "road":
            first = "most" if series == "morf" else "least"
            ax.set_xlabel(f"fraction removed, {first} relevant first (imputed)")
            ax.set_ylabel("target probability (mean)")
            ax.set_title({"morf": "ROAD MoRF", "lerf": "ROAD LeRF"}[series])
            ax.set_ylim(0, 1.02)
            ax.legend(fontsize=8)
            continue
        verb = "removed" if kind == "deletion" else "inserted"
        ax.set_xlabel(f"fraction of positions {verb} (most salient first)")
        ax.set_ylabel("target probability (mean)")
        ax.set_title(kind)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_sanity(sanity: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path | None:
    """Mean Spearman correlation vs. how many layers were randomized, one line per method.

    With several seeds, the band is the interval over seeds.
    """
    if not sanity:
        return None
    fig = new_figure(6.5, 4.0)
    ax = fig.subplots()
    for method, res in sanity.items():
        layers = list(res["layers"])
        ys = [1.0, *res["spearman_mean"]]
        flag = f" ({res['verdict']})" if res.get("verdict") else (
            " (flagged)" if res.get("flagged") else "")
        line = ax.plot(range(len(ys)), ys, "o-", label=f"{method}{flag}")[0]
        if res.get("spearman_low") is not None:
            lo = [1.0, *res["spearman_low"]]
            hi = [1.0, *res["spearman_high"]]
            ax.fill_between(range(len(ys)), lo, hi, color=line.get_color(), alpha=0.15)
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
