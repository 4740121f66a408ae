"""The run folder: the writer's lock, creating and reusing folders, classes checked against
the model's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnlens.cli import main
from cnnlens.errors import CnnlensError
from cnnlens.pipeline.config import make_config
from cnnlens.pipeline.create import open_run_dir, prepare_run_dir
from cnnlens.rundir.folder import RunDir, RunLockedError, check_class_names

Holder = tuple[Path, "subprocess.Popen[str]"]
HOLDER = textwrap.dedent("""
    import sys, time
    from cnnlens.rundir.folder import RunDir
    with RunDir(sys.argv[1]).lock(command="cnnlens run --out holder-test"):
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.fixture()
def holder(tmp_path: Path) -> Iterator[Holder]:
    """Another process holding the run folder's lock."""
    folder = tmp_path / "run"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait(timeout=30)


def test_a_second_writer_fails_fast_naming_folder_and_holder(holder: Holder) -> None:
    folder, proc = holder
    t0 = time.monotonic()
    with pytest.raises(RunLockedError) as exc, RunDir(folder).lock():
        pass
    assert time.monotonic() - t0 < 5
    msg = str(exc.value)
    assert str(folder) in msg and f"pid {proc.pid}" in msg and "holder-test" in msg


def test_cnnlens_run_on_a_locked_folder_is_one_line(
    holder: Holder, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = holder
    assert main(["run", "--epochs", "1", "--out", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in use by another cnnlens process" in err
    assert not (folder / "checkpoints").exists()


def test_a_lock_left_by_a_killed_process_does_not_block(holder: Holder) -> None:
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert (folder / ".lock").exists()  # the file stays; the kernel released the lock
    with RunDir(folder).lock():
        pass


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with run.lock(), run.lock():
        pass
    with run.lock():  # released after the outer exit
        pass


def test_lock_on_a_missing_folder_names_it_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(CnnlensError, match="run folder not found"), \
            RunDir(tmp_path / "nope").lock():
        pass
    assert not (tmp_path / "nope").exists()


def test_a_folder_holding_only_an_unstarted_config_takes_a_new_one(tmp_path: Path) -> None:
    cfg = make_config(task="mnist1d", epochs=1)
    prepare_run_dir(tmp_path / "r", cfg, overwrite=False)
    other = make_config(task="mnist1d", epochs=2, skip_bad=True)
    run = prepare_run_dir(tmp_path / "r", other, overwrite=False)  # nothing ran: no refusal
    assert run.read_config()["epochs"] == 2
    (tmp_path / "r" / "train").mkdir()
    (tmp_path / "r" / "train" / "history.json").write_text("[]")
    with pytest.raises(CnnlensError, match="--overwrite"):
        prepare_run_dir(tmp_path / "r", cfg, overwrite=False)


def test_the_config_handed_down_is_the_one_the_folder_holds(tmp_path: Path) -> None:
    """What the runner gives the stages is what they would read: a new config as JSON reads
    it back (tuples as lists), a continued run's own (its timestamp and device)."""
    cfg = make_config(task="mnist1d", epochs=1, image_size=(16, 12), device="cpu")
    run, written = open_run_dir(tmp_path / "r", cfg, overwrite=False)
    assert written == run.read_config() and written["data"]["image_size"] == [16, 12]
    again, kept = open_run_dir(tmp_path / "r", {**cfg, "device": "cuda"}, overwrite=False)
    assert again.path == run.path and kept == run.read_config() and kept["device"] == "cpu"


def test_class_lists_are_compared_exactly() -> None:
    check_class_names(["a", "b"], ["a", "b"], "data")
    check_class_names(["a", "b"], None, "data")  # a model without names: nothing to check
    with pytest.raises(CnnlensError, match=r"only in the data: 99_TUMOR.*only in the model: "
                                           r"01_TUMOR"):
        check_class_names(["02_STROMA", "99_TUMOR"], ["01_TUMOR", "02_STROMA"], "d")
    with pytest.raises(CnnlensError, match="same names in another order"):
        check_class_names(["b", "a"], ["a", "b"], "d")
