"""Input previews (``cams/inputs.npz``): what the report's explorer draws under each map."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlens.explain.previews import display_rgb, previews, thin_signal, write_previews


def test_image_thumbnails_fit_the_limit_and_keep_the_aspect() -> None:
    rng = np.random.default_rng(0)
    tiles = [torch.from_numpy(rng.random((3, 64, 256), dtype=np.float32)) for _ in range(3)]
    out = previews(lambda i: tiles[i], np.array([2, 0]), "image")
    assert out["indices"].tolist() == [2, 0]
    offsets = out["offsets"]
    assert offsets.tolist()[0] == 0 and len(offsets) == 3
    img = Image.open(io.BytesIO(out["webp"][offsets[0]:offsets[1]].tobytes()))
    assert img.format == "WEBP" and img.size == (128, 32)
    # lossy, but the picture is the tile: mean colour within a few levels
    ref = display_rgb(tiles[2].numpy()).astype(np.float64).mean(axis=(0, 1))
    assert np.abs(np.asarray(img.convert("RGB"), np.float64).mean(axis=(0, 1)) - ref).max() < 4


def test_display_is_what_the_figures_show() -> None:
    gray = np.full((1, 2, 2), 0.5, np.float32)
    assert display_rgb(gray).tolist() == [[[128] * 3] * 2] * 2  # one channel shown as gray
    wide = np.array([[[-1.0, 1.0]], [[0.0, 0.0]], [[0.0, 0.0]]], np.float32)
    assert display_rgb(wide)[0, :, 0].tolist() == [0, 255]  # out of [0, 1]: stretched


def test_signals_are_kept_and_long_ones_thinned_by_block_means() -> None:
    x = np.arange(10, dtype=np.float32).reshape(1, 10)
    assert thin_signal(x, 20) is x
    assert thin_signal(x, 5).tolist() == [[0.5, 2.5, 4.5, 6.5, 8.5]]
    assert thin_signal(x, 4).tolist() == [[1.0, 4.0, 7.0, 9.0]]  # last block padded by its edge
    sigs = [np.full((2, 6), i, np.float32) for i in range(3)]
    out = previews(lambda i: sigs[i], np.array([1, 2]), "signal")
    assert out["signals"].shape == (2, 2, 6) and out["signals"][:, 0, 0].tolist() == [1, 2]


def test_written_atomically_and_unknown_kinds_refused(tmp_path: Path) -> None:
    path = write_previews(tmp_path / "inputs.npz", lambda i: np.zeros((1, 4)), np.arange(2),
                          "signal")
    with np.load(path) as f:
        assert set(f.files) == {"indices", "kind", "signals"} and str(f["kind"]) == "signal"
    from cnnlens.errors import CnnlensError

    with pytest.raises(CnnlensError, match="kind 'volume'"):
        previews(lambda i: np.zeros((1, 2, 2, 2)), np.arange(1), "volume")
