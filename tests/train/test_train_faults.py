"""Training survives Ctrl-C and ``kill -9``: nothing lost, resume ends with the same weights."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from cnnlens.cli import main
from cnnlens.cli._common import TqdmTrainCallback
from cnnlens.rundir.checkpoint import load_checkpoint

TRAIN = ["train", "--epochs", "3", "--device", "cpu", "--tb-cams-every", "0"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "whole"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def test_ctrl_c_saves_at_a_batch_boundary_and_resume_is_exact(
    uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cut"
    seen = {"batches": 0}
    real = TqdmTrainCallback.on_batch_end

    def ctrl_c_in_epoch_2(self: TqdmTrainCallback, *args: Any) -> None:
        real(self, *args)
        seen["batches"] += 1
        if seen["batches"] == 125 + 40:  # epoch 2 (125 batches of 32 per epoch), batch 40
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(TqdmTrainCallback, "on_batch_end", ctrl_c_in_epoch_2)
    assert main([*TRAIN, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    found = re.search(r"interrupted in epoch 2 after batch (\d+); resume with --resume", err)
    assert found is not None, err[-300:]
    state = torch.load(out / "checkpoints" / "last_state.pt", weights_only=True)
    # honoured at the next batch boundary (the steps agree the stop flag across processes)
    assert state["partial"]["batches"] == int(found[1]) in (40, 41) and state["epoch"] == 0
    assert not (out / "checkpoints" / "model.json").exists()
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(TqdmTrainCallback, "on_batch_end", real)
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert _same(_weights(out), _weights(uninterrupted))
    history = json.loads((out / "train" / "history.json").read_text())
    whole = json.loads((uninterrupted / "train" / "history.json").read_text())
    assert [h["loss"] for h in history] == [h["loss"] for h in whole]


KILLED = textwrap.dedent("""
    import os, signal, sys
    import safetensors.torch
    import cnnlens.rundir.checkpoint as ckpt
    from cnnlens.cli import main

    saves = {"n": 0}
    real = ckpt.save_file

    def dying_save(state, path, metadata=None):
        saves["n"] += 1
        if saves["n"] == int(sys.argv[2]):  # half a file, then the power goes out
            with open(path, "wb") as fh:
                fh.write(b"\\x00" * 100)
                fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real(state, path, metadata=metadata)

    ckpt.save_file = dying_save
    sys.exit(main(["train", "--epochs", "3", "--device", "cpu", "--tb-cams-every", "0",
                   "--out", sys.argv[1]]))
""")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(
    uninterrupted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    # the 2nd weights file written is epoch 2's last.safetensors
    proc = subprocess.run([sys.executable, "-c", KILLED, str(out), "2"], env=_env(),
                          timeout=600, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    assert list((out / "checkpoints").glob(".*.tmp"))  # the half-written temporary file
    _, meta = load_checkpoint(out / "checkpoints", "last")  # epoch 1's, intact
    assert meta["epoch"] == 0
    proc = subprocess.run([sys.executable, "-m", "cnnlens", "run", "--epochs", "3", "--device",
                           "cpu", "--tb-cams-every", "0", "--limit", "40", "--no-sanity",
                           "--methods", "gradcam", "--metrics", "drop_increase",
                           "--out", str(out)], env=_env(),
                          timeout=900, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(out.rglob("*.tmp"))  # the writer's lock cleared the leftovers
    history = json.loads((out / "train" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert (out / "report.html").is_file()


def test_kill_9_mid_training_then_run_continues_from_the_last_epoch(tmp_path: Path) -> None:
    out = tmp_path / "k9"
    cmd = [sys.executable, "-m", "cnnlens", "train", "--epochs", "4", "--device", "cpu",
           "--tb-cams-every", "0", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    history = out / "train" / "history.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if history.exists() and len(json.loads(history.read_text() or "[]")) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done = len(json.loads(history.read_text()))
    assert 1 <= done < 4, "the kill must land mid-training"
    whole = tmp_path / "whole"
    for target in (out, whole):
        assert subprocess.run([*cmd[:-1], str(target)], env=_env(), timeout=900,
                              capture_output=True).returncode == 0
    assert _same(_weights(out), _weights(whole))
