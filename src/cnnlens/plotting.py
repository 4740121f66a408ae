"""Matplotlib helpers shared by the stages: headless figures saved atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.text import Text

from cnnlens.fileio import atomic_path


def new_figure(width: float, height: float) -> Figure:
    """A figure not registered with pyplot, so nothing leaks between calls or threads."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def literal_text(fig: Figure) -> None:
    """Draw every text literally: class and file names are data, and ``$x^2$`` in one must
    not become maths (nor an invalid expression crash the render)."""
    for text in fig.findobj(Text):
        text.set_parse_math(False)


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Save a figure as PNG via a temporary file, so a crash never leaves half a PNG."""
    path = Path(path)
    literal_text(fig)
    # texts created while drawing (tick labels) read the rc default: literal too
    with matplotlib.rc_context({"text.parse_math": False}), atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
