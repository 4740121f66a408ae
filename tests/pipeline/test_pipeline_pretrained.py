"""The shipped ``best`` weights: they load as a run and reproduce their recorded accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlens.errors import CnnlensError
from cnnlens.pipeline.pretrained import pretrained_meta, pretrained_run, pretrained_tasks
from cnnlens.pipeline.runner import run
from support import SHARED_DATA, require_path

DATA_DIRS = {"mnist1d": None, "hmt": SHARED_DATA / "hmt"}


def test_weights_are_shipped_for_both_tasks_and_small() -> None:
    assert pretrained_tasks() == ["hmt", "mnist1d"]
    from cnnlens.pipeline.pretrained import WEIGHTS_DIR

    total = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir())
    assert total < 8_000_000  # "a few MB at most"


@pytest.mark.parametrize("task", ["mnist1d", "hmt"])
def test_shipped_weights_reproduce_their_recorded_test_accuracy(task: str,
                                                               tmp_path: Path) -> None:
    data_dir = DATA_DIRS[task]
    if data_dir is not None:
        require_path(data_dir)
    meta = pretrained_meta(task)
    result = run(task=task, data_dir=str(data_dir) if data_dir else None, pretrained=True,
                 device="cpu", out=tmp_path / "run", stages=("train", "evaluate"))
    assert result.stages["train"]["status"] == "skipped"
    assert result.evaluation is not None
    assert result.evaluation["n"] == meta["test_n"]
    assert result.evaluation["correct"] == meta["test_correct"]  # exactly, not approximately
    assert result.config["model"] == meta["model"] and result.config["recipe"] is None


def test_pretrained_run_folder_is_reused_and_reads_its_input_size(tmp_path: Path) -> None:
    run_dir = pretrained_run(tmp_path / "r", "mnist1d")
    again = pretrained_run(tmp_path / "r", "mnist1d")
    assert again.path == run_dir.path and run_dir.is_trained()
    _model, meta = run_dir.load_model()
    assert meta["model"] == "mnist1d-resnet" and meta["pretrained"].endswith("mnist1d.safetensors")
    hmt = pretrained_run(tmp_path / "h", "hmt")  # no data needed to make the folder
    assert hmt.read_config()["data"]["image_size"] == pretrained_meta("hmt")["data"]["image_size"]


def test_pretrained_refuses_training_options_and_unknown_tasks(tmp_path: Path) -> None:
    with pytest.raises(CnnlensError, match="--epochs"):
        run(task="mnist1d", pretrained=True, epochs=3, out=tmp_path / "x")
    with pytest.raises(CnnlensError, match="hmt, mnist1d"):
        pretrained_run(tmp_path / "y", "signals")
