"""Image-folder datasets: formats, modes, bad input, caching, views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlens.data.images as images
from cnnlens.data.augmentations import STUDY_AUGMENT
from cnnlens.data.image_files import BadImageError, decode_image, scan_split
from cnnlens.data.images import ImageFolderDataset
from cnnlens.errors import CnnlensError

RNG = np.random.default_rng(0)


def _rgb(h: int = 12, w: int = 10) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def _folder(root: Path, per_class: int = 3, ext: str = ".png") -> Path:
    for c in ("b_cls", "a_cls"):
        for i in range(per_class):
            _save(root / c / f"img{i}{ext}", _rgb())
    return root


def _reference(path: Path, size: int) -> torch.Tensor:
    """The study's preprocessing written out: Pillow bilinear on RGB, then / 255."""
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def test_scan_sorts_classes_and_skips_hidden_and_non_images(tmp_path: Path) -> None:
    root = _folder(tmp_path / "train")
    (root / ".hidden_cls").mkdir()
    _save(root / ".hidden_cls" / "x.png", _rgb())
    (root / "README.txt").write_text("not a class")
    (root / "a_cls" / "notes.csv").write_text("1,2")
    (root / "a_cls" / ".DS_Store").write_bytes(b"\0")
    (root / "a_cls" / "sub").mkdir()
    _save(root / "a_cls" / "UPPER.PNG", _rgb())
    scan = scan_split(root)
    assert scan.class_names == ["a_cls", "b_cls"]
    assert scan.counts() == {"a_cls": 4, "b_cls": 3}
    assert sorted(scan.skipped) == sorted(
        [".hidden_cls", "README.txt", "a_cls/.DS_Store", "a_cls/notes.csv", "a_cls/sub"]
    )
    ds = ImageFolderDataset(root, size=8)
    assert ds.info()["skipped_non_image"] == 5
    assert ds.info()["files_per_class"] == {"a_cls": 4, "b_cls": 3}


@pytest.mark.parametrize(
    ("ext", "kw"),
    [(".png", {}), (".tif", {}), (".tiff", {"compression": "tiff_lzw"}),
     (".webp", {"lossless": True}), (".jpg", {"quality": 90}), (".bmp", {})],
)
def test_formats_match_the_study_preprocessing_exactly(
    tmp_path: Path, ext: str, kw: dict[str, object]
) -> None:
    path = _save(tmp_path / "d" / "c" / f"x{ext}", _rgb(15, 15), **kw)
    ds = ImageFolderDataset(tmp_path / "d", size=22)
    x, y = ds[0]
    assert y == 0 and x.dtype == torch.float32 and x.shape == (3, 22, 22)
    assert torch.equal(x, _reference(path, 22))


def test_lossless_webp_equals_tiff_pixels(tmp_path: Path) -> None:
    arr = _rgb(20, 20)
    a = _save(tmp_path / "a.tif", arr)
    b = _save(tmp_path / "b.webp", arr, lossless=True)
    assert np.array_equal(decode_image(a), decode_image(b))


def test_empty_class_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d")
    (root / "c_empty").mkdir()
    (root / "c_empty" / "notes.txt").write_text("x")
    with pytest.raises(CnnlensError, match=r"c_empty.*no image files"):
        ImageFolderDataset(root, size=8)


def test_no_class_folders_and_missing_root_are_errors(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    _save(tmp_path / "flat" / "x.png", _rgb())
    with pytest.raises(CnnlensError, match="no class folders"):
        scan_split(tmp_path / "flat")
    with pytest.raises(CnnlensError, match="not a folder"):
        scan_split(tmp_path / "absent")


def test_class_names_must_match(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d")
    with pytest.raises(CnnlensError, match=r"z_cls.*class folder missing"):
        scan_split(root, ["a_cls", "b_cls", "z_cls"])
    with pytest.raises(CnnlensError, match=r"b_cls.*unexpected class folder"):
        scan_split(root, ["a_cls"])


def _corrupt_folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = _folder(tmp_path / "d")
    garbage = root / "a_cls" / "garbage.png"
    garbage.write_bytes(b"this is not an image at all" * 10)
    good = _save(tmp_path / "full.png", _rgb(64, 64))
    truncated = root / "b_cls" / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return root, garbage, truncated


def test_corrupt_and_truncated_files_raise_naming_the_file(tmp_path: Path) -> None:
    root, garbage, truncated = _corrupt_folder(tmp_path)
    every_file = r"2 unreadable.*garbage\.png.*truncated\.png.*--skip-bad"
    with pytest.raises(BadImageError, match=every_file):
        ImageFolderDataset(root, size=8, preload=True)
    with pytest.raises(BadImageError, match=r"truncated\.png"):
        decode_image(truncated)
    lazy = ImageFolderDataset(root, size=8)  # lazy: the error comes when the file is read
    idx = [str(f) for f in lazy.files].index(str(garbage))
    with pytest.raises(BadImageError, match=r"garbage\.png"):
        lazy[idx]


def test_skip_bad_drops_and_lists_bad_files(tmp_path: Path) -> None:
    root, garbage, truncated = _corrupt_folder(tmp_path)
    ds = ImageFolderDataset(root, size=8, skip_bad=True)
    assert len(ds) == 6
    assert [b["path"] for b in ds.skipped_bad] == [str(garbage), str(truncated)]
    assert ds.info()["skipped"] == ds.skipped_bad
    assert ds.info()["files_per_class"] == {"a_cls": 3, "b_cls": 3}
    assert all(ds[i][0].shape == (3, 8, 8) for i in range(len(ds)))


def test_rgba_is_composited_over_black(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[0, :, 3] = [0, 128, 255]
    rgba[1, :, 3] = 255
    p = _save(tmp_path / "a.png", rgba)
    out = decode_image(p)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[0, :, 0].tolist() == [0, round(200 * 128 / 255), 200]
    assert (out[1] == 200).all()


def test_grayscale_and_palette_become_rgb(tmp_path: Path) -> None:
    g = RNG.integers(0, 256, size=(5, 6), dtype=np.uint8)
    out = decode_image(_save(tmp_path / "g.png", g))
    assert out.shape == (5, 6, 3) and all(np.array_equal(out[..., c], g) for c in range(3))
    pal = Image.fromarray(_rgb(5, 6)).convert("P")
    pal.save(tmp_path / "p.gif")
    assert np.array_equal(decode_image(tmp_path / "p.gif"), np.asarray(pal.convert("RGB")))


def test_16_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    vals = np.array([[0, 257, 1000, 30000, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(vals).save(p)
    assert Image.open(p).mode.startswith("I")
    out = decode_image(p)
    assert out[0, :, 0].tolist() == [0, 1, 4, 117, 255]  # /257 rounded; clipping gives 255s
    tif = tmp_path / "g16.tif"
    Image.fromarray(vals).save(tif)
    assert np.array_equal(decode_image(tif), out)


def test_oversize_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    big = tmp_path / "d" / "c" / "huge.png"
    big.parent.mkdir(parents=True)
    Image.new("1", (4100, 4100)).save(big)  # 16.8 Mpx over the default 4096x4096 limit
    with pytest.raises(BadImageError, match=r"huge\.png.*4100x4100.*over the limit"):
        decode_image(big)
    _save(tmp_path / "d" / "c" / "small.png", _rgb(10, 10))
    ds = ImageFolderDataset(tmp_path / "d", size=4, skip_bad=True)
    assert len(ds) == 1 and "huge.png" in ds.skipped_bad[0]["path"]
    with pytest.raises(BadImageError, match=r"small\.png.*over the limit of 50"):
        decode_image(tmp_path / "d" / "c" / "small.png", max_pixels=50)


def test_tiles_are_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "d")
    calls: list[Path] = []
    real = images.load_tile

    def counting(path: Path, size: int, **kw: int) -> np.ndarray:
        calls.append(Path(path))
        return real(path, size, **kw)

    monkeypatch.setattr(images, "load_tile", counting)
    ds = ImageFolderDataset(root, size=8)
    first = [ds[i][0] for i in range(len(ds))]
    second = [ds[i][0] for i in range(len(ds))]
    assert len(calls) == len(ds) == 6
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    ds.preload()
    assert len(calls) == 6


def test_disk_cache_is_reused_and_keyed_by_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _folder(tmp_path / "d")
    cache = tmp_path / "cache"
    ds1 = ImageFolderDataset(root, size=8, cache_dir=cache)
    ref = [ds1[i][0] for i in range(len(ds1))]
    assert len(list((cache / "images").glob("tiles_*.npy"))) == 1

    def fail(*a: object, **k: object) -> np.ndarray:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(images, "load_tile", fail)
    ds2 = ImageFolderDataset(root, size=8, cache_dir=cache)
    assert all(torch.equal(ref[i], ds2[i][0]) for i in range(len(ds2)))
    monkeypatch.undo()
    _save(root / "a_cls" / "new.png", _rgb())  # a changed file list is a new key
    ds3 = ImageFolderDataset(root, size=8, cache_dir=cache)
    assert len(ds3) == 7
    assert len(list((cache / "images").glob("tiles_*.npy"))) == 2


def test_subset_views_share_tiles_and_only_train_is_augmented(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", per_class=4)
    base = ImageFolderDataset(root, size=16)
    train = base.subset([0, 1, 4, 5], augment=STUDY_AUGMENT)
    val = base.subset([2, 6])
    assert train.targets.tolist() == [0, 0, 1, 1] and val.targets.tolist() == [0, 1]
    assert torch.equal(val[0][0], base[2][0])
    assert train._store is base._store
    diffs = [not torch.equal(train[i][0], base[[0, 1, 4, 5][i]][0]) for i in range(4)]
    assert any(diffs)


def test_augmentation_is_reproducible_per_seed_epoch_index(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", per_class=4)
    a = ImageFolderDataset(root, size=16, augment=STUDY_AUGMENT, seed=3)
    b = ImageFolderDataset(root, size=16, augment=STUDY_AUGMENT, seed=3)  # a "resumed" run
    a.set_epoch(5)
    b.set_epoch(5)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(len(a)))
    e5 = [a[i][0] for i in range(len(a))]
    a.set_epoch(6)
    assert any(not torch.equal(e5[i], a[i][0]) for i in range(len(a)))
    with pytest.raises(CnnlensError, match="epoch"):
        a.set_epoch(-1)


def test_get_batch_equals_items_with_augmentation(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", per_class=4)
    ds = ImageFolderDataset(root, size=16, augment=STUDY_AUGMENT, seed=1)
    view = ds.subset([5, 0, 3, 7], augment=STUDY_AUGMENT)
    view.set_epoch(2)
    xb, yb = view.get_batch(torch.tensor([3, 0, 2]))
    for k, pos in enumerate([3, 0, 2]):
        x, y = view[pos]
        torch.testing.assert_close(xb[k], x, rtol=0, atol=1e-6)
        assert int(yb[k]) == y


def test_image_size_is_validated(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d")
    with pytest.raises(CnnlensError, match="image_size"):
        ImageFolderDataset(root, size=0)
