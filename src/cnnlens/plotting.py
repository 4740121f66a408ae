"""Matplotlib helpers shared by the stages: headless figures saved atomically."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cnnlens.fileio import atomic_path


def new_figure(width: float, height: float) -> Figure:
    """A figure not registered with pyplot, so nothing leaks between calls or threads."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Save a figure as PNG via a temporary file, so a crash never leaves half a PNG."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
