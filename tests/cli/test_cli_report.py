"""``cnnlens report``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnlens.cli import main
from cnnlens.models import build_model
from cnnlens.rundir.checkpoint import save_checkpoint
from cnnlens.rundir.folder import RunDir


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A run with a model and nothing else: every later section is "not run"."""
    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config({"task": "mnist1d", "model": "mnist1d-cnn", "data": {}, "seed": 3})
    save_checkpoint(run.checkpoints, "model", build_model("mnist1d-cnn"),
                    {"model": "mnist1d-cnn", "class_names": [str(i) for i in range(10)]})
    return run.path


def test_cli_writes_report_and_prints_path(run_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(run_dir / "report.html")
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<h1>cnnlens report: mnist1d / mnist1d-cnn</h1>" in html
    assert html.count("Not run") >= 4  # training, evaluation, CAMs, faithfulness (+ timings)
    assert f"cnnlens evaluate {run_dir}" in html


def test_cli_out_and_image_size(run_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "elsewhere" / "r.html"
    assert main(["report", str(run_dir), "--out", str(dest), "--max-image-px", "0"]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    assert dest.is_file() and not (run_dir / "report.html").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["report", "{missing}"], "run folder not found"),
    (["report", "{run}", "--max-image-px", "-3"], "max_image_px=-3"),
    (["report", "{run}", "--out", "{run}"], "is a folder"),
])
def test_cli_errors_are_one_line(run_dir: Path, argv: list[str], needle: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(run=run_dir, missing=run_dir / "nope") for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlens report: error:") and needle in err
    assert len(err.splitlines()) == 1
    assert not (run_dir / "report.html").exists()
