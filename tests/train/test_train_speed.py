"""Speed settings: precision resolution, bf16 autocast, channels-last image training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cnnlens.pipeline import make_config, prepare_run_dir
from cnnlens.rundir.folder import RunDir
from cnnlens.train.loop import TrainCallback, train_run
from cnnlens.train.speed import (
    autocast,
    cpu_has_native_bf16,
    prepare_batch,
    resolve_precision,
    uses_channels_last,
)

CPU = torch.device("cpu")


def test_precision_auto_uses_bf16_only_for_images_where_native() -> None:
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("bf16", CPU, spatial_dims=1) == "bf16"  # asked for: given
    assert resolve_precision("auto", CPU) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("auto", CPU, spatial_dims=2) == resolve_precision("auto", CPU)
    assert resolve_precision("auto", CPU, spatial_dims=1) == "fp32"  # signals: no gain


def test_autocast_takes_a_resolved_precision() -> None:
    with pytest.raises(ValueError, match="resolved"):
        autocast(CPU, "auto")


def test_bf16_autocast_runs_convolutions_in_bf16() -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast(CPU, "bf16"):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float32


def test_prepare_batch_sets_the_memory_format_of_images_only() -> None:
    x = prepare_batch(torch.rand(2, 3, 8, 8), True)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert prepare_batch(x, False).is_contiguous()  # NHWC-strided batches become NCHW
    s = torch.rand(2, 1, 40)
    assert prepare_batch(s, True) is s
    assert not uses_channels_last(s, CPU)
    on_cpu = uses_channels_last(x, CPU)
    assert on_cpu == torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 2)):
        for c, name in enumerate(("a", "b")):
            folder = tmp_path / "imgs" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                px = rng.integers(0, 120, (20, 20, 3)) + 100 * c
                Image.fromarray(px.astype(np.uint8)).save(folder / f"{i}.png")
    return tmp_path / "imgs"


class _StopAfter(TrainCallback):
    def __init__(self, batches: int) -> None:
        self.left = batches

    def on_batch_end(self, n_items: int, loss: float, acc: float) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def _image_run(root: Path, folder: Path, name: str) -> RunDir:
    cfg = make_config(task="images", data_dir=str(folder), model="hmt-resnet", image_size=32,
                      device="cpu", epochs=2, batch_size=4, optimizer="adamw", l2=None,
                      schedule="onecycle", augmentation="dihedral", precision="fp32")
    return prepare_run_dir(root / name, cfg, overwrite=False)


@pytest.mark.parametrize("channels_last", [False, True])
def test_onecycle_image_training_resumes_exactly(
    tmp_path: Path, image_folder: Path, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-step learning rates and dihedral draws are functions of the step: resume is exact,
    in either memory format (channels-last is forced on here whatever this CPU prefers)."""
    import cnnlens.train.loop as loop

    monkeypatch.setattr(loop, "uses_channels_last", lambda _x, _d: channels_last)
    straight = _image_run(tmp_path, image_folder, "straight")
    train_run(straight)
    broken = _image_run(tmp_path, image_folder, "broken")
    with pytest.raises(KeyboardInterrupt):
        train_run(broken, callback=_StopAfter(5))  # inside the second epoch (4 batches each)
    train_run(broken, resume=True)
    a = load_file(str(straight.checkpoints / "model.safetensors"))
    b = load_file(str(broken.checkpoints / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.is_contiguous() for v in a.values())  # saved in the standard layout
    meta = json.loads((straight.checkpoints / "model.json").read_text())
    assert meta["precision"] == "fp32" and meta["model"] == "hmt-resnet"
    history = json.loads((straight.train_dir / "history.json").read_text())
    assert history[1]["lr"] < history[0]["lr"] or history[0]["lr"] < 3e-3
