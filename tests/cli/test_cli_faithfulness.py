"""``cnnlens faithfulness``: the table on stdout, one-line errors, outputs left alone."""

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
    torch.manual_seed(1)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config({"task": "mnist1d", "model": "mnist1d-cnn", "data": {}})
    save_checkpoint(run.checkpoints, "model", build_model("mnist1d-cnn"),
                    {"model": "mnist1d-cnn", "class_names": [str(i) for i in range(10)]})
    return run.path


def test_cli_prints_table_and_writes_results(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["faithfulness", str(run_dir), "--methods", "gradcam,gradcampp", "--frac", "0.5",
               "--metrics", "drop_increase", "deletion", "--steps", "4", "--limit", "24",
               "--n-boot", "100", "--sanity-samples", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| method | drop rate (%), frac 0.5 ↓ |" in out
    assert "| random |" in out and "| gradcampp |" in out
    assert "sanity gradcam:" in out and "over 3 seeds" in out
    assert "Kendall's W" in out and "Verdict:" in out
    assert "time (s):" in out and "not run: road, projected" in out
    assert (RunDir(run_dir).faithfulness_dir / "results.json").is_file()


def test_cli_road_options(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["faithfulness", str(run_dir), "--methods", "gradcam", "--metrics", "road",
               "--percentages", "20", "60", "--noise", "0", "--baseline", "road", "--limit", "8",
               "--n-boot", "50", "--no-sanity", "--no-figures", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "ROAD LeRF − MoRF" in out
    rc = main(["faithfulness", str(run_dir), "--percentages", "100", "--limit", "5"])
    assert rc == 2 and "percentages" in capsys.readouterr().err


def test_cli_bad_frac_is_one_line_and_keeps_old_results(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = RunDir(run_dir).faithfulness_dir
    out_dir.mkdir()
    (out_dir / "results.json").write_text("{}")
    rc = main(["faithfulness", str(run_dir), "--frac", "1.2", "--limit", "5"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "frac" in err and "(0, 1]" in err
    assert (out_dir / "results.json").read_text() == "{}"


def test_cli_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["faithfulness", str(tmp_path / "nope")])
    assert rc == 2 and "run folder not found" in capsys.readouterr().err
