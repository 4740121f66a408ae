"""One picture per input and method: the input with its map overlaid, as PNG bytes.

Galleries (:mod:`cnnlens.explain.figures`) draw many samples per matplotlib figure; loose
inputs need one small picture each, hundreds of times, so 2-D overlays are blended in numpy
with the galleries' colour map and alpha (about a millisecond each, against ~50 ms for a
matplotlib figure). 1-D signals are line plots with the map as shading behind the line.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from cnnlens import plotting
from cnnlens.explain.figures import CMAP

#: The galleries' blend: the map over the tile at this opacity.
ALPHA = 0.45
_LUT = (np.asarray(colormaps[CMAP](np.linspace(0.0, 1.0, 256)))[:, :3] * 255.0).astype(
    np.float32)


def image_uint8(x: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] as ``(H, W, 3)`` uint8 (one channel is shown as gray)."""
    a = x.detach().float().cpu().numpy()
    a = a.transpose(1, 2, 0) if a.shape[0] == 3 else np.repeat(a[:1].transpose(1, 2, 0), 3, 2)
    return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def image_overlay(x: torch.Tensor, cam: torch.Tensor, alpha: float = ALPHA) -> np.ndarray:
    """The tile ``x`` ``(C, H, W)`` with ``cam`` ``(H, W)`` in [0, 1] blended on, as uint8."""
    tile = image_uint8(x).astype(np.float32)
    idx = np.rint(np.clip(cam.detach().float().cpu().numpy(), 0.0, 1.0) * 255.0).astype(np.int64)
    out = (1.0 - alpha) * tile + alpha * _LUT[idx]
    return np.rint(out).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 as PNG (fast compression: overlays are photo-like)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def signal_overlay_png(x: torch.Tensor, cam: torch.Tensor | None, *, dpi: int = 100) -> bytes:
    """The signal ``x`` ``(C, L)`` as lines over ``cam`` ``(L,)`` shading (none: the signal
    alone), as PNG bytes."""
    sig = x.detach().float().cpu().numpy()
    length = sig.shape[-1]
    lo, hi = float(sig.min()), float(sig.max())
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    fig = Figure(figsize=(4.0, 1.8), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    if cam is not None:
        m = cam.detach().float().cpu().numpy()
        ax.imshow(m[None, :], aspect="auto", cmap=CMAP, vmin=0.0, vmax=1.0, alpha=0.35,
                  extent=(-0.5, length - 0.5, lo - pad, hi + pad), interpolation="nearest")
    for ch in range(sig.shape[0]):
        ax.plot(np.arange(length), sig[ch], color="black", linewidth=1.1)
    ax.set_xlim(-0.5, length - 0.5)
    ax.set_ylim(lo - pad, hi + pad)
    ax.tick_params(labelsize=7)
    plotting.literal_text(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def signal_png(x: torch.Tensor, *, dpi: int = 100) -> bytes:
    """The signal alone, drawn like :func:`signal_overlay_png` (for the input column)."""
    return signal_overlay_png(x, None, dpi=dpi)


__all__ = ["ALPHA", "image_overlay", "image_uint8", "png_bytes", "signal_overlay_png",
           "signal_png"]
