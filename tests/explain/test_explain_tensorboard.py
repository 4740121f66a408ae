"""CAM images of fixed test samples reach TensorBoard while the model trains."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlens.pipeline import run


def _images(tb: Path) -> dict[str, list[int]]:
    acc = EventAccumulator(str(tb), size_guidance={"images": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}


def test_cam_images_are_logged_every_n_epochs_and_at_the_end(tmp_path: Path) -> None:
    res = run(epochs=3, tb_cams_every=2, device="cpu", out=tmp_path / "r", stages=("train",))
    images = _images(res.path / "tb")
    assert images == {"cams/gradcam": [1, 2]}  # epoch 2 (every 2nd) and the last, epoch 3


def test_zero_turns_them_off(tmp_path: Path) -> None:
    res = run(epochs=1, tb_cams_every=0, device="cpu", out=tmp_path / "r", stages=("train",))
    assert _images(res.path / "tb") == {}
