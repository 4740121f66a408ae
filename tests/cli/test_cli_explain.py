"""``cnnlens explain``: outputs and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlens.cli import main
from cnnlens.cli._common import parse_layer
from cnnlens.errors import CnnlensError
from cnnlens.explain.stage import load_cams
from cnnlens.models import build_model
from cnnlens.rundir.checkpoint import save_checkpoint
from cnnlens.rundir.folder import RunDir


@pytest.fixture(scope="session")
def explain_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d_cache_cli")


@pytest.fixture
def run_dir(tmp_path: Path, explain_cache: Path) -> Path:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config({"task": "mnist1d", "model": "mnist1d-cnn",
                      "data": {"val_fraction": 0.0, "seed": 0, "cache_dir": str(explain_cache)}})
    torch.manual_seed(1)
    save_checkpoint(run.checkpoints, "model", build_model("mnist1d-cnn"),
                    {"model": "mnist1d-cnn", "class_names": [str(i) for i in range(10)]})
    return run.path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_writes_maps_and_says_where(run_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "explain", str(run_dir), "--methods", "gradcam,xgradcam",
                        "--limit", "9", "--layer", "xgradcam=conv1d_1", "--no-figures",
                        "--device", "cpu", "--score", "prob")
    assert code == 0
    cams = run_dir / "cams"
    assert str(cams / "gradcam.npz") in out and str(cams / "summary.json") in out
    saved = load_cams(run_dir, "xgradcam")
    assert saved["maps"].shape == (9, 40) and saved["raw"].shape == (9, 40)
    assert saved["layer"] == "conv1d_1" and saved["score"] == "prob"
    with np.load(cams / "gradcam.npz", allow_pickle=False) as f:
        assert str(f["layer"]) == "conv1d_2"
    assert not list(cams.glob("*.png"))


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--methods", "gradcam,gradkam"], ["'gradkam'", "valid:", "ablationcam", "scorecam"]),
        (["--layer", "conv1d_7"], ["'conv1d_7'", "conv1d_2"]),
        (["--layer", "gradcam="], ["--layer", "method=NAME"]),
        (["--split", "val"], ["'val'", "empty"]),
        (["--limit", "0"], ["--limit"]),
        (["--per-class", "0"], ["--per-class"]),
    ],
)
def test_bad_input_is_one_line_naming_the_fault(
    run_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    code, _, err = _run(capsys, "explain", str(run_dir), *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("cnnlens explain: error:")
    for needle in needles:
        assert needle in err
    assert not (run_dir / "cams").exists()


def test_missing_run_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "explain", str(tmp_path / "nope"))
    assert code == 2 and "nope" in err and "run folder not found" in err


def test_parse_layer() -> None:
    assert parse_layer(None) is None
    assert parse_layer(" conv2d_3 ") == "conv2d_3"
    assert parse_layer("gradcam=max_pooling2d_1, ablationcam=conv2d_3") == {
        "gradcam": "max_pooling2d_1", "ablationcam": "conv2d_3"}
    with pytest.raises(CnnlensError, match="=conv2d_3"):
        parse_layer("=conv2d_3")
