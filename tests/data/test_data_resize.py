"""--image-size H[,W] and --resize: non-square inputs, aspect-keeping centre crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlens.data import DataConfig, load_task
from cnnlens.data.image_files import load_tile
from cnnlens.data.resize import canonical_size, crop_box, image_hw, parse_image_size
from cnnlens.errors import CnnlensError
from userdata import make_image_folders


def test_sizes_parse_and_check() -> None:
    assert parse_image_size("224") == 224 and parse_image_size("48,192") == (48, 192)
    assert parse_image_size("48x192") == (48, 192) and canonical_size([32, 32]) == 32
    assert image_hw(32) == (32, 32) and image_hw((48, 192)) == (48, 192)
    for bad in ("0", "1,2,3", "a", "5000"):
        with pytest.raises(CnnlensError, match="--image-size"):
            parse_image_size(bad)


def test_centre_crop_keeps_the_aspect_ratio() -> None:
    # a 400 x 100 image to 50 x 50: scaled to cover (200 x 50), the centre 100 x 100 cut
    assert crop_box(400, 100, (50, 50)) == (150.0, 0.0, 250.0, 100.0)
    assert crop_box(100, 100, (20, 40)) == (0.0, 25.0, 100.0, 75.0)


def test_tiles_are_stretched_or_cropped_to_h_by_w(tmp_path: Path) -> None:
    img = np.zeros((40, 160, 3), np.uint8)
    img[:, :30] = 255  # a white left part that a centre crop (x 40..120) removes
    Image.fromarray(img).save(tmp_path / "wide.png")
    stretched = load_tile(tmp_path / "wide.png", (20, 40))
    cropped = load_tile(tmp_path / "wide.png", (20, 40), resize="shorter-side+center-crop")
    assert stretched.shape == cropped.shape == (20, 40, 3)
    assert stretched[:, :6].mean() > 200 and cropped[:, :10].mean() < 1


def test_an_image_task_at_a_non_square_size(tmp_path: Path) -> None:
    pics = make_image_folders(tmp_path / "pics", size=20)
    data = load_task(DataConfig("images", data_dir=str(pics), image_size=(12, 28),
                                resize="shorter-side+center-crop", augment=False))
    x, _ = data.test[0]
    assert tuple(x.shape) == (3, 12, 28)
    from cnnlens.data import describe_task

    assert describe_task(DataConfig("images", data_dir=str(pics),
                                    image_size=[12, 28])).input_shape == (3, 12, 28)


def test_quarter_turns_need_square_images() -> None:
    from cnnlens.pipeline.config import data_config

    with pytest.raises(CnnlensError, match="dihedral turns images by 90 degrees: it needs "
                       "square images, not --image-size 12,28"):
        data_config(task="images", image_size=(12, 28), augmentation="dihedral")
    with pytest.raises(CnnlensError, match="--resize"):
        data_config(task="images", resize="squash")
