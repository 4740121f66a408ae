"""Ctrl-C during explain or faithfulness: exit 130, no partial ``cams/*.npz`` or
``results.json``, earlier outputs intact; the next ``cnnlens run`` redoes only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlens.cli import main
from userdata import make_signals

# A user's model that is slow on purpose while SLOW_MODEL is set (every forward sleeps), so a
# signal reliably lands inside the stage that is running.
SLOW_MODEL = '''
import os
import time

from torch import nn


class Slow(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        if os.environ.get("SLOW_MODEL"):
            time.sleep(0.2)
        return self.head(self.pool(self.act(self.conv(x))).flatten(1))


def build(num_classes, in_channels):
    return Slow(num_classes, in_channels)
'''


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".lock" and "tb" not in p.relative_to(run).parts}


def _interrupt_in(argv: list[str], stage: str) -> str:
    """Run ``cnnlens`` and send SIGINT once it has announced ``== stage``; return its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_MODEL": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cnnlens", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out: list[str] = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        out.append(line)
        if line.startswith(f"== {stage}"):
            time.sleep(0.5)  # inside the stage: its slow forwards are running
            proc.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(out)
    out.append(proc.stdout.read())
    assert proc.wait(timeout=120) == 130, "".join(out)[-3000:]
    return "".join(out)


def _run(argv: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "cnnlens", *argv], text=True,
                          capture_output=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _stages(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("stages:"))


def test_ctrl_c_in_explain_then_faithfulness_leaves_nothing_partial(tmp_path: Path) -> None:
    data = make_signals(tmp_path / "sig.npz", n_train=32, n_test=24)
    (tmp_path / "slow.py").write_text(SLOW_MODEL)
    run = tmp_path / "run"
    argv = ["run", "--task", "signals", "--data", str(data), "--model",
            f"{tmp_path / 'slow.py'}:build", "--epochs", "1", "--device", "cpu",
            "--tb-cams-every", "0", "--batch-size", "8", "--out", str(run),
            "--methods", "gradcam", "ablationcam", "--metrics", "drop_increase", "deletion"]

    out = _interrupt_in(argv, "explain")
    assert "interrupted" in out and "Traceback" not in out
    assert (run / "eval" / "metrics.json").is_file()
    # Nothing half-written: normally no CAM file at all. (A KeyboardInterrupt that Python
    # drops inside a finalizer lets explain finish; the run then stops at the next stage
    # boundary, so any file present is complete.)
    for f in (run / "cams").glob("*.npz") if (run / "cams").exists() else []:
        _complete(f)
    assert not [p for p in run.rglob("*") if ".tmp" in p.name], list(run.rglob("*"))
    before = _files(run)

    out = _interrupt_in(argv, "faithfulness")
    assert "interrupted" in out and "Traceback" not in out
    after = _files(run)
    for name, content in before.items():  # earlier outputs intact
        assert after.get(name) == content, name
    assert sorted((run / "cams").glob("*.npz"))  # explain finished this time
    assert not (run / "faithfulness" / "results.json").exists()
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    for f in (run / "cams").glob("*.npz"):  # each one complete
        _complete(f)

    cams_before = {p.name: p.read_bytes() for p in (run / "cams").glob("*.npz")}
    stdout = _run(argv)
    stages = _stages(stdout)
    for skipped in ("train skipped", "evaluate skipped", "explain skipped"):
        assert skipped in stages, stages
    assert "faithfulness" in stages and "faithfulness skipped" not in stages, stages
    assert (run / "faithfulness" / "results.json").is_file() and (run / "report.html").is_file()
    assert {p.name: p.read_bytes() for p in (run / "cams").glob("*.npz")} == cams_before


def _complete(f: Path) -> None:
    """A CAM file (maps) or the input previews, with all 24 samples."""
    with np.load(f, allow_pickle=False) as z:
        assert z["raw" if f.name != "inputs.npz" else "indices"].shape[0] == 24, f.name


def test_a_damaged_cams_file_is_named_and_the_pipeline_explains_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_signals(tmp_path / "sig.npz", n_train=32, n_test=12)
    run = tmp_path / "run"
    argv = ["run", "--task", "signals", "--data", str(data), "--epochs", "1", "--device",
            "cpu", "--tb-cams-every", "0", "--out", str(run), "--no-sanity",
            "--methods", "gradcam", "--metrics", "drop_increase"]
    assert main(argv) == 0
    victim = run / "cams" / "gradcam.npz"
    for damage in ("empty", "truncated"):
        body = victim.read_bytes()
        victim.write_bytes(b"" if damage == "empty" else body[: len(body) // 2])
        capsys.readouterr()
        assert main(["faithfulness", str(run), "--device", "cpu", "--no-sanity", "--methods",
                     "gradcam", "--metrics", "drop_increase"]) == 2
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert "Traceback" not in err
        assert str(victim) in last and "corrupt CAM file" in last, (damage, last)
        # The pipeline sees the damage and explains again, then scores the new maps.
        assert main(argv) == 0
        stages = _stages(capsys.readouterr().out)
        assert "explain skipped" not in stages and "faithfulness skipped" not in stages, stages
        assert "train skipped" in stages and "evaluate skipped" in stages, stages
        with np.load(victim, allow_pickle=False) as z:
            assert z["raw"].shape[0] == 12, damage


def test_the_cli_handler_sets_the_flag_and_is_removed_afterwards() -> None:
    from cnnlens.cli import _ctrl_c_flag
    from cnnlens.errors import INTERRUPTED

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), _ctrl_c_flag():
        assert signal.getsignal(signal.SIGINT) is not before
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # interrupted long before this ends
    assert signal.getsignal(signal.SIGINT) is before
    assert not INTERRUPTED.is_set()  # cleared for the next command in this process
    with _ctrl_c_flag():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            assert INTERRUPTED.is_set()
