"""Checkpoints: a foreign one is a readable difference, a broken one names its file, and no
file cnnlens loads can run code through pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlens.cli import main
from cnnlens.errors import CnnlensError
from cnnlens.explain.stage import load_cams
from cnnlens.models import build_model
from cnnlens.pipeline import run
from cnnlens.rundir.checkpoint import (
    load_checkpoint,
    load_train_state,
    save_checkpoint,
    state_difference,
)
from cnnlens.rundir.folder import RunDir

MNIST = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "run"
    run(epochs=1, device="cpu", out=out, stages=("train",), tb_cams_every=0)
    return out


def _copy(trained: Path, tmp_path: Path) -> RunDir:
    import shutil

    shutil.copytree(trained, tmp_path / "run")
    return RunDir(tmp_path / "run")


def test_weights_of_another_architecture_are_a_layer_by_layer_difference() -> None:
    model = build_model("mnist1d-cnn")
    other = build_model("mnist1d-cnn", channels=16).state_dict()
    lines = state_difference(model, other)
    assert "conv1d.conv.weight: file (16, 1, 5), model (25, 1, 5)" in lines
    assert len(lines) <= 7 and lines[-1].startswith("and ")


def test_a_sidecar_for_another_model_or_classes_is_refused(trained: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    run_dir = _copy(trained, tmp_path)
    vgg = build_model("hmt-vgg7")
    save_checkpoint(run_dir.checkpoints, "model", vgg,
                    {"model": "hmt-vgg7", "class_names": MNIST})
    assert main(["evaluate", str(run_dir.path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "checkpoint of another model" in err and "'hmt-vgg7'" in err and "mnist1d-cnn" in err
    model, meta = load_checkpoint(trained / "checkpoints", "model")
    save_checkpoint(run_dir.checkpoints, "model", model,
                    {**meta, "class_names": [f"c{i}" for i in range(10)]})
    assert main(["evaluate", str(run_dir.path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "classes differ" in err and "data: 0, 1" in err and "model: c0, c1" in err


def test_foreign_weights_under_the_right_sidecar_name_the_difference(
    trained: Path, tmp_path: Path
) -> None:
    run_dir = _copy(trained, tmp_path)
    small = build_model("mnist1d-cnn", channels=8)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in small.state_dict().items()},
              str(run_dir.checkpoints / "model.safetensors"))
    with pytest.raises(CnnlensError) as exc:
        run_dir.load_model()
    msg = str(exc.value)
    assert "model.safetensors: weights do not fit" in msg
    assert "conv1d.conv.weight: file (8, 1, 5), model (25, 1, 5)" in msg


def test_a_foreign_last_checkpoint_is_refused_on_resume(trained: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    run_dir = _copy(trained, tmp_path)
    (run_dir.checkpoints / "model.json").unlink()  # not finished: resume would continue
    save_checkpoint(run_dir.checkpoints, "last", build_model("hmt-vgg7"),
                    {"model": "hmt-vgg7", "class_names": MNIST})
    assert main(["train", "--resume", "--out", str(run_dir.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "last.json: checkpoint of another model" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("damage", ["empty", "truncated"])
@pytest.mark.parametrize("name", ["model.safetensors", "model.json"])
def test_broken_checkpoint_files_are_named(trained: Path, tmp_path: Path, name: str,
                                           damage: str) -> None:
    run_dir = _copy(trained, tmp_path)
    path = run_dir.checkpoints / name
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    with pytest.raises(CnnlensError, match=name.replace(".", r"\.")):
        run_dir.load_model()


class Evil:
    """Unpickling this runs a command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_training_state_that_would_run_code_is_refused(trained: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "last_state.pt"
    torch.save({"epoch": 0, "payload": Evil(marker)}, path)
    with pytest.raises(CnnlensError, match="refused: not a weights-only training state"):
        load_train_state(path)
    assert not marker.exists()


def test_npz_files_that_need_pickle_are_refused(trained: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_dir = _copy(trained, tmp_path)
    evil = np.array([Evil(marker)], dtype=object)
    run_dir.cams_dir.mkdir(exist_ok=True)
    np.savez(run_dir.cams_dir / "gradcam.npz", raw=evil)
    with pytest.raises(CnnlensError, match=r"gradcam\.npz: corrupt CAM file"):
        load_cams(run_dir.path, "gradcam")
    signals = tmp_path / "evil.npz"
    np.savez(signals, x_train=evil, y_train=np.zeros(1), x_test=evil, y_test=np.zeros(1))
    with pytest.raises(CnnlensError, match="need pickle and are refused"):
        run(task="signals", data_dir=str(signals), out=tmp_path / "r", device="cpu")
    assert not marker.exists()


def test_a_sidecar_cannot_smuggle_build_options(trained: Path, tmp_path: Path) -> None:
    run_dir = _copy(trained, tmp_path)
    meta = json.loads((run_dir.checkpoints / "model.json").read_text())
    meta["model_kwargs"] = "rm -rf /"
    (run_dir.checkpoints / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CnnlensError, match=r"model\.json: checkpoint of another model"):
        run_dir.load_model()
