"""A full disk (a file-size limit) or a read-only run folder: one line naming the path, earlier
outputs intact, no temporary file left behind."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlens.pipeline import run

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    run(epochs=1, device="cpu", out=out, tb_cams_every=0, stages=("train", "evaluate"))
    return out


def _cnnlens(args: list[str], limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "cnnlens", *args], env=ENV, text=True,
                          capture_output=True, timeout=600, preexec_fn=limit)


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _one_line(proc: subprocess.CompletedProcess[str], where: str) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    last = err[-1]
    assert "Traceback" not in proc.stderr
    assert last.startswith("cnnlens ") and "cannot write" in last and where in last, last
    return last


@pytest.mark.parametrize(("argv", "limit", "where"), [
    (["explain", "{run}", "--device", "cpu", "--no-figures"], 100_000, "/cams/"),
    (["explain", "{run}", "--device", "cpu", "--limit", "40"], 60_000, "/cams/"),
    (["report", "{run}"], 200_000, "report.html"),
])
def test_disk_full_in_a_stage_names_the_file_and_keeps_earlier_outputs(
    done: Path, tmp_path: Path, argv: list[str], limit: int, where: str
) -> None:
    work = tmp_path / "run"
    shutil.copytree(done, work)
    before = _snapshot(work)
    proc = _cnnlens([a.format(run=work) for a in argv], limit)
    line = _one_line(proc, where)
    assert "disk full or file-size limit" in line
    after = _snapshot(work)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing overwritten
    assert not [k for k in after if k.endswith(".tmp")]
    assert not (work / "cams" / "summary.json").exists()


def test_disk_full_while_writing_a_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cnnlens(["train", "--epochs", "2", "--device", "cpu", "--tb-cams-every", "0",
                     "--out", str(out)], 30_000)
    _one_line(proc, "/checkpoints/")
    assert not list(out.rglob("*.tmp"))
    assert (out / "config.json").is_file() and not (out / "checkpoints" / "model.json").exists()


def test_a_read_only_run_folder_is_one_line(done: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes through permissions; make the folder immutable with a read-only mount
        # stand-in instead: a file where the output folder must go
        work = tmp_path / "run"
        shutil.copytree(done, work)
        (work / "cams").write_text("not a folder")
        proc = _cnnlens(["explain", str(work), "--device", "cpu", "--no-figures"])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "cams" in proc.stderr.strip().splitlines()[-1]
        return
    work = tmp_path / "run"
    shutil.copytree(done, work)
    for p in [work, *work.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        proc = _cnnlens(["explain", str(work), "--device", "cpu", "--no-figures"])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert str(work) in proc.stderr
    finally:
        for p in [work, *work.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
