"""``cnnlens import-keras``: a run folder later commands accept, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlens.cli import main
from cnnlens.rundir.folder import RunDir
from support import require_path

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def keras_file(name: str) -> Path:
    return require_path(SHARED / "keras" / name)


def test_import_prints_a_summary_and_writes_a_loadable_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "R"
    rc = main(["import-keras", str(keras_file("HMT.h5")), "--task", "hmt", "--out", str(out)])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "hmt-vgg7" in stdout and "66,088 parameters" in stdout and str(out) in stdout
    _model, meta = RunDir(out).load_model()
    assert meta["model"] == "hmt-vgg7" and meta["class_names"][-1] == "08_EMPTY"
    assert RunDir(out).read_config()["task"] == "hmt"


def test_existing_run_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = str(keras_file("MNIST1D.h5"))
    out = tmp_path / "R"
    args = ["import-keras", src, "--task", "mnist1d", "--out", str(out)]
    assert main(args) == 0
    stamp = (out / "config.json").stat().st_mtime_ns
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(out) in err and "--overwrite" in err
    assert (out / "config.json").stat().st_mtime_ns == stamp
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize("content", [None, b"garbage, not HDF5"])
def test_missing_or_corrupt_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    src = tmp_path / "model.h5"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "R"
    assert main(["import-keras", str(src), "--task", "mnist1d", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlens import-keras: error:") and str(src) in err
    assert "Traceback" not in err and err.count("\n") == 0
    assert not out.exists()


def test_model_for_the_other_task_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "R"
    rc = main(["import-keras", str(keras_file("MNIST1D.h5")), "--task", "hmt", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "hmt-vgg7" in err and "conv1d" in err
    assert not out.exists()


def test_unknown_task_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-keras", "x.h5", "--task", "cifar", "--out", "R"]) == 2
    err = capsys.readouterr().err
    assert "hmt" in err and len(err.strip().splitlines()) == 1


def test_evaluate_accepts_an_imported_mnist1d_run(tmp_path: Path) -> None:
    out = tmp_path / "R"
    src = str(keras_file("MNIST1D.h5"))
    assert main(["import-keras", src, "--task", "mnist1d", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["correct"] == 877 and metrics["n"] == 1000
    assert metrics["accuracy"] == pytest.approx(0.877)
