"""The HMT task loader on a tiny fake layout and on the shared tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlens.data import DataConfig, load_task
from cnnlens.data.hmt import HMT_CLASSES, load_hmt_task
from cnnlens.errors import CnnlensError
from support import require_path


def _layout(root: Path, train: int = 8, test: int = 2, classes: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("HMT_train", train), ("HMT_test", test)):
        for c in HMT_CLASSES[:classes]:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
                ext = ".webp" if split == "HMT_train" else ".tif"
                kw = {"lossless": True} if ext == ".webp" else {}
                Image.fromarray(arr).save(root / split / c / f"{i}{ext}", **kw)
    return root


def test_missing_data_dir_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(CnnlensError, match=r"--data-dir.*cnnlens data download hmt"):
        load_hmt_task(DataConfig(task="hmt"))
    (tmp_path / "HMT_train").mkdir()
    with pytest.raises(CnnlensError, match=r"HMT_test: folder not found"):
        load_hmt_task(DataConfig(task="hmt", data_dir=str(tmp_path)))


def test_splits_validation_and_augmentation(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    cfg = DataConfig(task="hmt", data_dir=str(root), image_size=12, val_fraction=0.25, seed=1)
    task = load_task(cfg)
    assert task.kind == "image" and task.class_names == HMT_CLASSES[:3]
    assert (len(task.train), len(task.val), len(task.test)) == (18, 6, 6)
    assert np.bincount(task.val.targets).tolist() == [2, 2, 2]  # stratified
    assert set(map(str, task.train.files)).isdisjoint(map(str, task.val.files))
    assert task.train.augment is not None and task.val.augment is None
    assert task.test.augment is None
    x, y = task.val[0]
    assert x.shape == (3, 12, 12) and isinstance(y, int)
    # validation tiles are the plain preprocessing
    ref = Image.open(task.val.files[0]).convert("RGB").resize((12, 12), Image.BILINEAR)
    assert torch.equal(x, torch.from_numpy(np.asarray(ref, np.float32) / 255).permute(2, 0, 1))
    info = task.info
    assert info["files_per_class"]["train"] == dict.fromkeys(HMT_CLASSES[:3], 8)
    assert info["split_sizes"] == {"train": 18, "val": 6, "test": 6}
    assert info["skipped"] == []
    plain = load_task(DataConfig(task="hmt", data_dir=str(root), image_size=12, augment=False))
    assert plain.train.augment is None and len(plain.val) == 0


def test_test_split_must_have_the_train_classes(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    (root / "HMT_test" / "99_EXTRA").mkdir()
    with pytest.raises(CnnlensError, match=r"99_EXTRA: unexpected class folder"):
        load_hmt_task(DataConfig(task="hmt", data_dir=str(root)))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_skip_bad_lists_files_in_task_info(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    bad = root / "HMT_test" / HMT_CLASSES[0] / "broken.tif"
    bad.write_bytes(b"II*\0garbage")
    lazy = load_hmt_task(DataConfig(task="hmt", data_dir=str(root), image_size=8))
    with pytest.raises(CnnlensError, match=r"broken\.tif.*--skip-bad"):
        lazy.test.preload()
    task = load_hmt_task(DataConfig(task="hmt", data_dir=str(root), image_size=8, skip_bad=True))
    assert [s["path"] for s in task.info["skipped"]] == [str(bad)]
    assert len(task.test) == 6


def test_shared_hmt_tiles(shared_data: Path) -> None:
    root = require_path(shared_data / "hmt")
    task = load_hmt_task(DataConfig(task="hmt", data_dir=str(root)))
    assert task.class_names == HMT_CLASSES
    assert len(task.train) == 4504 and len(task.test) == 496
    assert task.info["files_per_class"]["test"] == dict.fromkeys(HMT_CLASSES, 62)
    assert {p.suffix for p in task.test.files} == {".tif"}
    assert {p.suffix for p in task.train.files} == {".webp"}
    for ds, i in ((task.test, 0), (task.test, 495)):
        x, y = ds[i]
        img = Image.open(ds.files[i])
        assert img.size == (150, 150) and img.mode == "RGB"
        ref = np.asarray(img.resize((224, 224), Image.BILINEAR), np.float32) / 255
        assert torch.equal(x, torch.from_numpy(ref).permute(2, 0, 1))
        assert y == int(ds.targets[i])


def test_generic_image_folder_task_for_user_data(tmp_path: Path) -> None:
    from cnnlens.data.images import load_image_folder_task

    root = _layout(tmp_path, train=3, test=1, classes=2)
    (root / "HMT_train").rename(root / "train")
    (root / "HMT_test").rename(root / "test")
    task = load_image_folder_task(DataConfig(task="mine", data_dir=str(root), image_size=6))
    assert (len(task.train), len(task.test)) == (6, 2) and task.class_names == HMT_CLASSES[:2]
    with pytest.raises(CnnlensError, match=r"task mine needs --data-dir"):
        load_image_folder_task(DataConfig(task="mine"))
