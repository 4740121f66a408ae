"""Size limits that keep evaluation, CAM galleries and the report linear in the class count.

A K-class confusion matrix drawn cell by cell costs K² text objects and a K-proportional
canvas: at 360 classes that is minutes of drawing and a 24,000-pixel PNG that Pillow then
refuses as a decompression bomb. Above :data:`MANY_CLASSES` the stages draw summaries
instead (most-confused pairs, per-class accuracy distribution, averaged ROC curves) and
keep the full matrices as data in ``eval/metrics.json``.
"""

from __future__ import annotations

import math

#: Class counts above this get summary figures instead of one mark per class or class pair;
#: at or below it every figure is drawn in full (MNIST-1D has 10 classes, HMT 8).
MANY_CLASSES = 30

#: Off-diagonal pairs of the normalised confusion matrix listed as "most confused".
TOP_PAIRS = 20

#: Classes shown by name where a figure or table lists only the worst ones.
WORST_K = 10

#: No PNG written by evaluate or explain is wider or taller than this many pixels.
MAX_FIGURE_PX = 4000


def many_classes(k: int) -> bool:
    """True when ``k`` classes are too many to draw one mark per class pair."""
    return k > MANY_CLASSES


def bounded_dpi(width_in: float, height_in: float, dpi: int) -> int:
    """``dpi``, lowered just enough that the figure fits :data:`MAX_FIGURE_PX` per side.

    Lowering the resolution (rather than failing) keeps a figure of any layout writable;
    figures that already fit are rendered exactly as asked. (Below 1 dpi, i.e. a side over
    ``MAX_FIGURE_PX`` inches, no resolution fits; such layouts are bounded where they are
    built.)
    """
    side = max(width_in, height_in)
    if side <= 0 or side * dpi <= MAX_FIGURE_PX:
        return dpi
    return max(1, math.floor(MAX_FIGURE_PX / side))


__all__ = ["MANY_CLASSES", "MAX_FIGURE_PX", "TOP_PAIRS", "WORST_K", "bounded_dpi",
           "many_classes"]
