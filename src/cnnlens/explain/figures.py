"""CAM figures: 1-D signals with the map as a heat strip, 2-D tiles with map and overlay.

Built on :class:`matplotlib.figure.Figure` directly (no pyplot), so nothing leaks into a
global figure registry and the module works in headless processes and threads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec

from cnnlens import plotting
from cnnlens.evaluate.limits import MANY_CLASSES, bounded_dpi
from cnnlens.explain.options import ExplainOptions

CMAP = "jet"
DPI = 100

#: At most this many per-class galleries: with hundreds of classes one figure per class
#: would make figure time (and the report) grow with the class count.
MAX_CLASS_GALLERIES = MANY_CLASSES
ProgressFn = Callable[[str, int, int], None]


def safe_filename(name: str, max_len: int = 40) -> str:
    """A file-name-safe slug of ``name`` (class names are data and may hold any character)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:max_len]
    return slug or "class"


def plain_text(text: str) -> str:
    """Data text as drawn: :func:`cnnlens.plotting.save_figure` turns mathtext off for all."""
    return text


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` as PNG atomically (no half-written image under the final name), at
    :data:`DPI` or lower if a side would exceed ``MAX_FIGURE_PX`` (many rows per gallery)."""
    width, height = fig.get_size_inches()
    return plotting.save_figure(fig, path, dpi=bounded_dpi(float(width), float(height), DPI))


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def display_image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) to something ``imshow`` shows faithfully: RGB in [0, 1] or one gray channel."""
    img = x.transpose(1, 2, 0) if x.shape[0] == 3 else x[0]
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 1.0:  # not [0, 1]-scaled: stretch for display only
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return np.clip(img, 0.0, 1.0), (None if img.ndim == 3 else "gray")


def _frame(
    grid_w: float,
    grid_h: float,
    rows: int,
    cols: int,
    *,
    title: bool,
    col_titles: int,
    **grid_kw: Any,
) -> tuple[Figure, GridSpec, tuple[float, float, float, float]]:
    """A figure with fixed margins in inches (row labels left, colorbar right, titles on
    top): much faster to draw than constrained layout, and the same look at any size."""
    left, right, bottom = 1.5, 1.1, 0.35
    top = 0.2 + 0.18 * col_titles + (0.3 if title else 0.0)
    width, height = grid_w + left + right, grid_h + top + bottom
    fig = Figure(figsize=(width, height))
    gs = fig.add_gridspec(rows, cols, left=left / width, right=1 - right / width,
                          bottom=bottom / height, top=1 - top / height, **grid_kw)
    bar_h = min(grid_h, 3.0)
    bar = (1 - (right - 0.25) / width, 1 - (top + bar_h) / height, 0.15 / width, bar_h / height)
    return fig, gs, bar


def _finish(fig: Figure, bar: tuple[float, float, float, float], mappable: Any,
            title: str) -> None:
    """Add the shared colorbar (last in ``fig.axes``) and the title."""
    if mappable is not None:
        fig.colorbar(mappable, cax=fig.add_axes(bar), label="CAM (normalised)")
    if title:
        fig.suptitle(plain_text(title), fontsize=11, y=1 - 0.1 / fig.get_figheight(), va="top")


def signal_cam_figure(
    signals: Any,
    maps: Mapping[str, Any],
    *,
    row_labels: Sequence[str],
    title: str = "",
) -> Figure:
    """Rows of samples, one column per method: the signal over a faint map background, with
    the map as a heat strip beneath (the strip reads exactly; the background shows where).

    ``signals`` is ``(n, C, L)``; each ``maps[method]`` is ``(n, L)`` in [0, 1].
    """
    sig = _as_numpy(signals)
    if sig.ndim == 2:
        sig = sig[:, None, :]
    methods = list(maps)
    n, length = sig.shape[0], sig.shape[-1]
    cols = max(1, len(methods))
    fig, gs, bar = _frame(3.2 * cols, 1.8 * n, n, cols, title=bool(title), col_titles=1,
                          hspace=0.3, wspace=0.18)
    extent_x = (-0.5, length - 0.5)
    mappable = None
    for j, method in enumerate(methods):
        m = _as_numpy(maps[method])
        for i in range(n):
            cell = gs[i, j].subgridspec(2, 1, height_ratios=[4.0, 1.0], hspace=0.06)
            ax = fig.add_subplot(cell[0])
            strip = fig.add_subplot(cell[1], sharex=ax)
            lo, hi = float(sig[i].min()), float(sig[i].max())
            pad = 0.08 * (hi - lo) if hi > lo else 1.0
            ylim = (lo - pad, hi + pad)
            ax.imshow(m[i][None, :], aspect="auto", cmap=CMAP, vmin=0.0, vmax=1.0, alpha=0.25,
                      extent=(*extent_x, *ylim), interpolation="nearest")
            for ch in range(sig.shape[1]):
                ax.plot(np.arange(length), sig[i, ch], color="black", linewidth=1.2)
            ax.set_xlim(*extent_x)
            ax.set_ylim(*ylim)
            ax.tick_params(labelbottom=False, labelsize=7)
            mappable = strip.imshow(m[i][None, :], aspect="auto", cmap=CMAP, vmin=0.0, vmax=1.0,
                                    extent=(*extent_x, 0, 1), interpolation="nearest")
            strip.set_yticks([])
            strip.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(plain_text(method), fontsize=10, fontweight="bold")
            if j == 0:
                ax.set_ylabel(plain_text(row_labels[i]), fontsize=8, rotation=0,
                              ha="right", va="center")
    _finish(fig, bar, mappable, title)
    plotting.literal_text(fig)
    return fig


def image_cam_figure(
    images: Any,
    maps: Mapping[str, Any],
    *,
    row_labels: Sequence[str],
    title: str = "",
    alpha: float = 0.45,
) -> Figure:
    """Rows of samples; columns: the tile, then per method its map and the map blended on
    the tile. ``images`` is ``(n, C, H, W)``; each ``maps[method]`` is ``(n, H, W)`` in [0, 1].
    """
    imgs = _as_numpy(images)
    methods = list(maps)
    n = imgs.shape[0]
    cols = 1 + 2 * len(methods)
    fig, gs, bar = _frame(1.75 * cols, 1.75 * n, n, cols, title=bool(title), col_titles=2,
                          hspace=0.08, wspace=0.06)
    axes = gs.subplots(squeeze=False)
    mappable = None
    for i in range(n):
        tile, cmap = display_image(imgs[i])
        axes[i, 0].imshow(tile, cmap=cmap, vmin=0.0, vmax=1.0)
        axes[i, 0].set_ylabel(plain_text(row_labels[i]), fontsize=8, rotation=0,
                              ha="right", va="center")
        for j, method in enumerate(methods):
            m = _as_numpy(maps[method])[i]
            ax_map, ax_blend = axes[i, 1 + 2 * j], axes[i, 2 + 2 * j]
            mappable = ax_map.imshow(m, cmap=CMAP, vmin=0.0, vmax=1.0)
            ax_blend.imshow(tile, cmap=cmap, vmin=0.0, vmax=1.0)
            ax_blend.imshow(m, cmap=CMAP, vmin=0.0, vmax=1.0, alpha=alpha)
            if i == 0:
                ax_map.set_title(f"{plain_text(method)}\nmap", fontsize=9)
                ax_blend.set_title(f"{plain_text(method)}\noverlay", fontsize=9)
        if i == 0:
            axes[i, 0].set_title("tile", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    _finish(fig, bar, mappable, title)
    plotting.literal_text(fig)
    return fig


def select_class_samples(
    labels: np.ndarray, predicted: np.ndarray, cls: int, k: int
) -> np.ndarray:
    """Up to ``k`` positions of class ``cls``: correct predictions first, in dataset order."""
    members = np.flatnonzero(labels == cls)
    correct = members[predicted[members] == cls]
    wrong = members[predicted[members] != cls]
    return np.concatenate([correct, wrong])[:k]


def select_failures(
    labels: np.ndarray, predicted: np.ndarray, probs: np.ndarray, k: int
) -> np.ndarray:
    """Up to ``k`` misclassified positions, most confident mistakes first."""
    wrong = np.flatnonzero(labels != predicted)
    conf = probs[wrong, predicted[wrong]]
    return wrong[np.argsort(-conf, kind="stable")][:k]


def gallery_classes(labels: np.ndarray, predicted: np.ndarray,
                    limit: int = MAX_CLASS_GALLERIES) -> tuple[list[int], int]:
    """Classes that get a gallery, in class order, and how many present ones were left out.

    Every class present among the explained samples, up to ``limit``; beyond it the classes
    the model gets most wrong on these samples (lowest accuracy, then most samples, then
    class order), since those are the galleries a reader looks for.
    """
    present, counts = np.unique(labels, return_counts=True)
    if len(present) <= limit:
        return [int(c) for c in present], 0
    right = labels[labels == predicted]
    acc = np.bincount(right, minlength=int(present[-1]) + 1)[present] / counts
    order = np.lexsort((present, -counts, acc))[:limit]
    return sorted(int(present[i]) for i in order), len(present) - limit


def _row_label(index: int, label: int, pred: int, conf: float, names: Sequence[str]) -> str:
    def name(c: int) -> str:
        return names[c] if 0 <= c < len(names) else str(c)

    return f"#{index}\ntrue: {name(label)}\npred: {name(pred)} ({conf:.0%})"


def write_cam_figures(
    cams_dir: str | Path,
    get_x: Callable[[int], Any],
    maps: Mapping[str, np.ndarray],
    *,
    indices: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    kind: str,
    per_class: int = ExplainOptions.per_class,
    max_failures: int = ExplainOptions.max_failures,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Write one gallery per class present and one of failures; return what was written.

    ``get_x(dataset_index)`` fetches an input sample; ``maps`` rows align with ``indices``.
    File names carry the class number and a slug of its name, so odd names never collide.
    Above ``MAX_CLASS_GALLERIES`` classes present only that many get one (see
    :func:`gallery_classes`); the result then says how many were left out and why.
    """
    cams_dir = Path(cams_dir)
    make = signal_cam_figure if kind == "signal" else image_cam_figure
    jobs: list[tuple[str, np.ndarray, str, dict[str, Any]]] = []
    chosen, omitted = gallery_classes(np.asarray(labels), np.asarray(predicted),
                                      MAX_CLASS_GALLERIES)
    for c in chosen:
        if not 0 <= c < len(class_names):
            continue
        pos = select_class_samples(labels, predicted, c, per_class)
        if len(pos):
            fname = f"gallery_class_{c:02d}_{safe_filename(class_names[c])}.png"
            title = f"Class {class_names[c]}: CAMs of the predicted class"
            jobs.append((fname, pos, title, {"class": class_names[c], "index": c}))
    fail = select_failures(labels, predicted, probs, max_failures)
    if len(fail):
        jobs.append(("failures.png", fail, "Failures (most confident mistakes first): "
                     "CAMs of the predicted class", {}))
    written: dict[str, Any] = {"classes": [], "failures": None}
    if omitted:
        written["classes_omitted"] = {
            "count": omitted, "shown": len(chosen), "limit": MAX_CLASS_GALLERIES,
            "rule": "classes with the lowest accuracy on the explained samples"}
    for done, (fname, pos, title, info) in enumerate(jobs, start=1):
        x = torch.stack([torch.as_tensor(get_x(int(indices[p]))) for p in pos])
        rows = [_row_label(int(indices[p]), int(labels[p]), int(predicted[p]),
                           float(probs[p, predicted[p]]), class_names) for p in pos]
        fig = make(x, {m: v[pos] for m, v in maps.items()}, row_labels=rows, title=title)
        save_figure(fig, cams_dir / fname)
        entry = {**info, "file": fname, "n": len(pos),
                 "indices": [int(indices[p]) for p in pos]}
        if info:
            written["classes"].append(entry)
        else:
            written["failures"] = entry
        if progress is not None:
            progress("figures", done, len(jobs))
    return written


__all__ = [
    "MAX_CLASS_GALLERIES",
    "gallery_classes",
    "image_cam_figure",
    "plain_text",
    "safe_filename",
    "save_figure",
    "select_class_samples",
    "select_failures",
    "signal_cam_figure",
    "write_cam_figures",
]
