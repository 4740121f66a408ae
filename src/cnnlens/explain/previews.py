"""Small previews of the explained inputs (``cams/inputs.npz``), for pages that show every one.

The report reads a run's artifacts, never its data: without these it could not draw the input
under each map. Images are kept as lossy WebP thumbnails (exact pixels do not matter under a
heat map, and 500 tiles then weigh a few MB); signals as float32, thinned by block means to at
most :data:`MAX_POINTS` per channel. Inputs are shown as the model's data gives them (before
the model's own normalization), like every other figure.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnlens.errors import CnnlensError
from cnnlens.explain.figures import display_image
from cnnlens.fileio import write_npz

PREVIEWS_NAME = "inputs.npz"
#: Longest side of an image thumbnail, in pixels.
THUMB_PX = 128
WEBP_QUALITY = 70
#: Longest signal kept per channel; longer ones are averaged down in blocks.
MAX_POINTS = 2048


def display_rgb(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` as ``(H, W, 3)`` uint8 the way the galleries show it
    (:func:`cnnlens.explain.figures.display_image`: one channel as gray, values outside
    [0, 1] stretched per image)."""
    img, _ = display_image(x)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.rint(img * 255.0).astype(np.uint8)


def webp_thumbnail(rgb: np.ndarray, max_px: int = THUMB_PX) -> bytes:
    """``(H, W, 3)`` uint8 shrunk to fit ``max_px`` (aspect kept), as WebP bytes."""
    img = Image.fromarray(rgb)
    img.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="WEBP", quality=WEBP_QUALITY, method=4)
    return buf.getvalue()


def thin_signal(x: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """``(C, L)`` with at most ``max_points`` per channel (block means; short ones unchanged)."""
    length = x.shape[1]
    if length <= max_points:
        return x
    block = -(-length // max_points)
    pad = (-length) % block
    padded = np.pad(x, ((0, 0), (0, pad)), mode="edge")
    return padded.reshape(x.shape[0], -1, block).mean(axis=2)


def previews(get_input: Callable[[int], Any], indices: np.ndarray, kind: str
             ) -> dict[str, np.ndarray]:
    """The arrays of ``inputs.npz`` for the samples ``indices`` (``get_input(i)``: one input).

    Images: ``webp`` (all thumbnails, concatenated) and ``offsets`` (N + 1 byte offsets);
    signals: ``signals`` ``(N, C, L)`` float32. Both: ``indices`` and ``kind``.
    """
    idx = np.asarray(indices, dtype=np.int64)
    out: dict[str, np.ndarray] = {"indices": idx, "kind": np.asarray(kind)}
    arrays = (_numpy(get_input(int(i))) for i in idx)
    if kind == "signal":
        rows = [thin_signal(a.reshape(a.shape[0], -1)) for a in arrays]
        out["signals"] = (np.stack(rows).astype(np.float32) if rows
                          else np.zeros((0, 1, 0), np.float32))
        return out
    if kind != "image":
        raise CnnlensError(f"input previews: kind {kind!r} is neither 'image' nor 'signal'")
    blobs = [webp_thumbnail(display_rgb(a.reshape(a.shape[0], a.shape[1], -1))) for a in arrays]
    out["webp"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    out["offsets"] = np.cumsum([0, *(len(b) for b in blobs)], dtype=np.int64)
    return out


def write_previews(path: str | Path, get_input: Callable[[int], Any], indices: np.ndarray,
                   kind: str) -> Path:
    """Write :func:`previews` to ``path`` (atomically) and return it."""
    target = Path(path)
    write_npz(target, **previews(get_input, indices, kind))
    return target


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


__all__ = ["MAX_POINTS", "PREVIEWS_NAME", "THUMB_PX", "display_rgb", "previews", "thin_signal",
           "webp_thumbnail", "write_previews"]
