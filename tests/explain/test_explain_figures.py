"""CAM figures: layout, data-safe text and file names, atomic PNG writes, no pyplot leaks."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cnnlens.evaluate.limits import MAX_FIGURE_PX
from cnnlens.explain import figures
from cnnlens.explain.figures import (
    MAX_CLASS_GALLERIES,
    gallery_classes,
    image_cam_figure,
    safe_filename,
    save_figure,
    select_class_samples,
    select_failures,
    signal_cam_figure,
    write_cam_figures,
)

METHODS = ("gradcam", "ablationcam")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("01_TUMOR", "01_TUMOR"),
        ("../../etc/passwd", "etc_passwd"),
        ("a/b c$d", "a_b_c_d"),
        ("...", "class"),
        ("", "class"),
        ("Ünïcode ☃", "n_code"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected
    assert len(safe_filename("x" * 500)) == 40


def _maps(n: int, *spatial: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {m: rng.random((n, *spatial)).astype(np.float32) for m in METHODS}


def test_signal_figure_has_a_signal_and_strip_per_cell_and_literal_labels() -> None:
    sig = torch.randn(3, 1, 40)
    maps = _maps(3, 40)
    fig = signal_cam_figure(sig, maps, row_labels=["$x$ a", "b", "c"], title="Class $1$")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 3 * len(METHODS) * 2 + 1  # signal + strip per cell, one colorbar
    titles = [ax.get_title() for ax in axes if ax.get_title()]
    assert titles == list(METHODS)
    assert axes[0].get_ylabel() == "$x$ a"  # data text, drawn literally (no mathtext)
    assert fig.get_suptitle() == "Class $1$"
    assert not axes[0].yaxis.label.get_parse_math()
    line = axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), sig[0, 0].numpy())
    strip_img = axes[1].get_images()[0].get_array()
    np.testing.assert_allclose(np.asarray(strip_img)[0], maps["gradcam"][0])
    fig.canvas.draw()  # renders without a pyplot backend


def test_image_figure_shows_tile_map_and_overlay_per_method() -> None:
    imgs = torch.rand(2, 3, 16, 16)
    maps = _maps(2, 16, 16)
    fig = image_cam_figure(imgs, maps, row_labels=["a", "b"], title="t")
    grid = fig.axes[:-1]
    assert len(grid) == 2 * (1 + 2 * len(METHODS))
    tile = np.asarray(grid[0].get_images()[0].get_array())
    np.testing.assert_allclose(tile, imgs[0].permute(1, 2, 0).numpy(), atol=1e-6)
    assert len(grid[1].get_images()) == 1 and len(grid[2].get_images()) == 2  # map, blend
    np.testing.assert_allclose(np.asarray(grid[1].get_images()[0].get_array()),
                               maps["gradcam"][0])
    assert [ax.get_title() for ax in grid[:5]] == [
        "tile", "gradcam\nmap", "gradcam\noverlay", "ablationcam\nmap", "ablationcam\noverlay"]


def test_image_figure_stretches_tiles_outside_unit_range_for_display() -> None:
    imgs = torch.linspace(-2, 2, 1 * 16 * 16).reshape(1, 1, 16, 16)  # one gray channel
    fig = image_cam_figure(imgs, _maps(1, 16, 16), row_labels=["a"])
    tile = np.asarray(fig.axes[0].get_images()[0].get_array())
    assert tile.shape == (16, 16)
    assert tile.min() == pytest.approx(0.0) and tile.max() == pytest.approx(1.0)


def test_selection_prefers_correct_samples_and_confident_failures() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([1, 0, 0, 1, 0, 0])
    probs = np.full((6, 3), 0.1)
    probs[0, 1], probs[4, 0], probs[5, 0] = 0.5, 0.9, 0.7
    np.testing.assert_array_equal(select_class_samples(labels, pred, 0, 3), [1, 2, 0])
    np.testing.assert_array_equal(select_class_samples(labels, pred, 0, 2), [1, 2])
    np.testing.assert_array_equal(select_class_samples(labels, pred, 2, 3), [5])
    np.testing.assert_array_equal(select_failures(labels, pred, probs, 5), [4, 5, 0])
    np.testing.assert_array_equal(select_failures(labels, pred, probs, 1), [4])


def test_save_figure_never_leaves_a_partial_png(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fig = Figure()
    target = tmp_path / "out.png"

    def broken(path: Path, **_: object) -> None:
        Path(path).write_bytes(b"\x89PNG partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        save_figure(fig, target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["signal", "image"])
def test_write_cam_figures_with_hostile_class_names(tmp_path: Path, kind: str) -> None:
    names = ["a/b", "a:b", "$x$", "../up"]
    labels = np.array([0, 1, 2, 0, 1, 2])
    pred = np.array([0, 2, 2, 0, 1, 0])
    probs = np.full((6, 4), 0.25, dtype=np.float32)
    shape = (1, 40) if kind == "signal" else (3, 12, 12)
    data = torch.rand(10, *shape)
    indices = np.array([9, 8, 7, 6, 5, 4])  # dataset indices differ from positions
    maps = _maps(6, *shape[1:])
    calls: list[tuple[str, int, int]] = []
    out = write_cam_figures(tmp_path / "cams", lambda i: data[i], maps, indices=indices,
                            labels=labels, predicted=pred, probs=probs, class_names=names,
                            kind=kind, per_class=2, max_failures=4,
                            progress=lambda *a: calls.append(a))
    files = sorted(p.name for p in (tmp_path / "cams").iterdir())
    expected = ["failures.png", "gallery_class_00_a_b.png", "gallery_class_01_a_b.png",
                "gallery_class_02_x.png"]
    assert files == expected  # class 3 has no samples; similar names stay distinct
    assert [c["class"] for c in out["classes"]] == names[:3]
    assert out["classes"][0]["indices"] == [9, 6]
    assert out["failures"]["indices"] == [8, 4]
    assert calls[-1] == ("figures", 4, 4)
    for name in expected:
        with Image.open(tmp_path / "cams" / name) as im:
            assert im.format == "PNG"
    assert plt.get_fignums() == []  # nothing registered with pyplot


def test_write_cam_figures_without_failures_writes_no_failure_file(tmp_path: Path) -> None:
    labels = np.array([0, 1])
    out = write_cam_figures(tmp_path, lambda i: torch.rand(1, 40), _maps(2, 40),
                            indices=np.arange(2), labels=labels, predicted=labels,
                            probs=np.eye(2, dtype=np.float32), class_names=["x", "y"],
                            kind="signal", per_class=1)
    assert out["failures"] is None
    assert not (tmp_path / "failures.png").exists()
    assert len(out["classes"]) == 2


def test_gallery_classes_are_all_present_up_to_the_cap_then_the_worst() -> None:
    labels = np.arange(720) % 360
    predicted = labels.copy()
    predicted[labels % 12 == 5] = 0  # classes 5, 17, 29, ... are always wrong
    chosen, omitted = gallery_classes(labels, predicted)
    assert len(chosen) == MAX_CLASS_GALLERIES and omitted == 360 - MAX_CLASS_GALLERIES
    assert chosen == list(range(5, 360, 12))  # the 30 wrong classes, in class order
    few = np.array([3, 1, 3])
    assert gallery_classes(few, few) == ([1, 3], 0)


def test_write_cam_figures_caps_the_galleries_with_a_note(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(figures, "MAX_CLASS_GALLERIES", 3)
    labels = np.arange(40)
    predicted = labels.copy()
    predicted[[4, 9]] = 0
    out = write_cam_figures(tmp_path, lambda i: torch.rand(1, 20), {"gradcam": _maps(40, 20)[
        "gradcam"]}, indices=np.arange(40), labels=labels, predicted=predicted,
        probs=np.full((40, 40), 1 / 40, dtype=np.float32),
        class_names=[f"c{i}" for i in range(40)], kind="signal", per_class=1)
    assert [c["index"] for c in out["classes"]] == [0, 4, 9]  # the two wrong ones, then 0
    assert out["classes_omitted"] == {
        "count": 37, "shown": 3, "limit": 3,
        "rule": "classes with the lowest accuracy on the explained samples"}
    assert len(list(tmp_path.glob("gallery_class_*.png"))) == 3


def test_save_figure_bounds_the_png_size(tmp_path: Path) -> None:
    fig = signal_cam_figure(torch.randn(25, 1, 20), {"gradcam": _maps(25, 20)["gradcam"]},
                            row_labels=[str(i) for i in range(25)])
    assert fig.get_figheight() * 100 > MAX_FIGURE_PX  # 25 rows: taller than the bound
    save_figure(fig, tmp_path / "tall.png")
    with Image.open(tmp_path / "tall.png") as im:
        assert max(im.size) <= MAX_FIGURE_PX
