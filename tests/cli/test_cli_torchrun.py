"""``torchrun --nproc-per-node 2 -m cnnlens run`` on CPU (gloo, 127.0.0.1), against one process.

One job, started once for the module: a tiny signal task (49 training signals, so the last
global batch of 1 leaves rank 1 an empty share; 10 validation; 9 test signals, so 2 ranks
pad one duplicate), a small CNN without BatchNorm, ``--max-restarts 1``, and rank 1
SIGKILLs itself in its first attempt during epoch 3. torchrun restarts both workers, which
resume from the epoch-2 checkpoint and go on through evaluate, explain, faithfulness and
the report. The same training then runs in this process (uninterrupted, one process), and
the later stages run in this process on a copy of the job's run folder, so that every
per-sample output can be compared exactly on the same weights.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cnnlens.explain.stage import ExplainOptions
from cnnlens.faithfulness.stage import FaithfulnessOptions
from cnnlens.models import build_model
from cnnlens.pipeline.runner import run
from support import unavailable

METHODS = ("gradcam", "ablationcam")
EPOCHS, BATCH = 4, 16
KILL_AFTER_CALLS = 10  # rank 1's 11th training forward: step 3 of epoch 3 (4 steps/epoch)
JOB_TIMEOUT_S = 540
#: How far the two trainings' weights may differ, as a fraction of how far training moved
#: them. Both run in float32 and differ only in the order of the gradient sums (two half-batch
#: sums all-reduced vs one sum; a different vector unit reorders them again): each step's
#: gradient differs by a few ulps (~1e-7 relative), which 16 small SGD steps do not amplify
#: anywhere near 1e-4. A real error moves the weights by a large fraction of the update: a
#: loss not averaged over the 2 ranks (or a learning rate off by 2x) gives ~0.5-1
#: (test_the_weight_check_catches_a_doubled_update).
WEIGHT_GAP = 1e-4

MODEL_PY = '''
import os
import signal
from pathlib import Path

from torch import nn


class Net(nn.Module):
    """Two convolutions and a dense layer; no BatchNorm."""

    def __init__(self, in_channels: int, num_classes: int, length: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(in_channels, 8, 5, padding=2), nn.ReLU(),
                                  nn.Conv1d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * length, num_classes))
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            limit = os.environ.get("TEST_KILL_AFTER_CALLS")
            if (limit and self.calls > int(limit) and os.environ.get("RANK") == "1"
                    and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"):
                Path(os.environ["TEST_KILL_MARKER"]).write_text(str(self.calls))
                os.kill(os.getpid(), signal.SIGKILL)
        return self.head(self.conv(x))


def build(in_channels: int, num_classes: int, input_shape: tuple) -> nn.Module:
    return Net(in_channels, num_classes, int(input_shape[-1]))
'''


def _signals(path: Path) -> None:
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        t = np.linspace(0.0, 1.0, 24)
        x = np.sin(2 * np.pi * (y[:, None] + 1) * t[None, :]) + 0.3 * rng.standard_normal((n, 24))
        return x.astype(np.float32), y

    (xtr, ytr), (xv, yv), (xte, yte) = make(49), make(10), make(9)
    np.savez(path, x_train=xtr, y_train=ytr, x_val=xv, y_val=yv, x_test=xte, y_test=yte)


@dataclass
class Job:
    tmp: Path
    out: Path  # the torchrun job's run folder
    log: str
    returncode: int
    marker: Path
    data: Path
    model: str


def _fields(job: Job) -> dict[str, object]:
    """The options `cnnlens run` gets on the command line, as library fields."""
    return {"task": "signals", "data_dir": str(job.data), "model": job.model,
            "epochs": EPOCHS, "batch_size": BATCH, "precision": "fp32", "device": "cpu",
            "tb_cams_every": 0}


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    if not sys.platform.startswith("linux") or not Path("/sys/class/net/lo").exists():
        unavailable("the torchrun test binds gloo to the Linux loopback interface 'lo'")
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        unavailable("this PyTorch build has no torch.distributed with gloo")
    tmp = tmp_path_factory.mktemp("torchrun")
    data, model_file = tmp / "signals.npz", tmp / "net.py"
    _signals(data)
    model_file.write_text(MODEL_PY)
    out, marker = tmp / "run", tmp / "killed"
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                        "TORCHELASTIC_RESTART_COUNT", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE")}
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", TQDM_DISABLE="1",
               TEST_KILL_AFTER_CALLS=str(KILL_AFTER_CALLS), TEST_KILL_MARKER=str(marker))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc-per-node", "2", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", "127.0.0.1:0",  # a free port, chosen when the job starts
           "--local-addr", "127.0.0.1", "--max-restarts", "1", "--monitor-interval", "0.2",
           "-m", "cnnlens", "run", "--task", "signals", "--data", str(data),
           "--model", f"{model_file}:build", "--epochs", str(EPOCHS),
           "--batch-size", str(BATCH), "--precision", "fp32", "--device", "cpu",
           "--tb-cams-every", "0",
           "--methods", ",".join(METHODS), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the agent and its workers
        log, _ = proc.communicate()
        pytest.fail(f"torchrun job did not finish in {JOB_TIMEOUT_S} s:\n{log[-4000:]}")
    return Job(tmp, out, log, proc.returncode, marker, data,
               f"{model_file}:build")


@pytest.fixture(scope="module")
def one_process_training(job: Job) -> Path:
    """The same training, uninterrupted, in one process."""
    out = job.tmp / "one"
    run(out=out, stages=("train",), **_fields(job))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def one_process_stages(job: Job) -> Path:
    """Evaluate, explain and faithfulness in one process on the job's trained weights."""
    assert job.returncode == 0, job.log[-4000:]
    out = job.tmp / "copy"
    shutil.copytree(job.out, out, ignore=shutil.ignore_patterns(
        "eval", "cams", "faithfulness", "report.html", ".lock"))
    run(out=out, stages=("evaluate", "explain", "faithfulness"),
        explain=ExplainOptions(methods=METHODS, figures=False),
        faithfulness=FaithfulnessOptions(methods=METHODS, figures=False),
        **_fields(job))  # type: ignore[arg-type]
    return out


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_killed_worker_is_restarted_and_resumes_from_the_last_checkpoint(job: Job) -> None:
    assert job.returncode == 0, job.log[-4000:]
    # rank 1 SIGKILLed itself in epoch 3, so the job only finished because torchrun
    # restarted the workers, and they went on from the epoch-2 checkpoint
    assert job.marker.read_text() == str(KILL_AFTER_CALLS + 1)
    assert "resuming training after epoch 2 (the last complete checkpoint)" in job.log
    assert job.log.count("done: ") == 1  # only rank 0 prints
    # rank 0 alone writes: one TensorBoard file per attempt, not one per process
    assert len(list((job.out / "tb").glob("events.out.tfevents.*"))) == 2
    history = json.loads((job.out / "train" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    assert (job.out / "report.html").is_file()


def _initial_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights training started from: the loop seeds torch, then builds the model."""
    meta = json.loads((run_dir / "checkpoints" / "model.json").read_text())
    torch.manual_seed(int(meta["seed"]))
    model = build_model(meta["model"], **meta["model_kwargs"])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def weight_gap(a: Path, b: Path) -> float:
    """Largest weight difference of two trainings over the largest change training made.

    Relative to the update rather than absolute, so the bound follows from float32 rounding
    of the gradients and not from one CPU's summation order.
    """
    start = _initial_weights(a)
    wa = load_file(str(a / "checkpoints" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "model.safetensors"))
    assert wa.keys() == wb.keys() == start.keys()
    moved = max(float((wa[k] - start[k]).abs().max()) for k in wa)
    assert moved > 0, "training did not change the weights"
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa) / moved


def assert_same_history(a: Path, b: Path) -> None:
    """Per-epoch losses equal to float32 rounding of a mean over <= 49 samples; accuracies
    (counts over the same samples) exactly."""
    ha = json.loads((a / "train" / "history.json").read_text())
    hb = json.loads((b / "train" / "history.json").read_text())
    assert [h["epoch"] for h in ha] == [h["epoch"] for h in hb]
    for key in ("loss", "val_loss"):
        assert np.allclose([h[key] for h in ha], [h[key] for h in hb], rtol=1e-5, atol=0), key
    for key in ("accuracy", "val_accuracy"):
        assert [h[key] for h in ha] == [h[key] for h in hb], key


def test_two_processes_train_the_same_weights_as_one(job: Job,
                                                     one_process_training: Path) -> None:
    """Same global batch, DDP on 2 ranks (one of them killed and restarted) vs one process."""
    assert job.returncode == 0, job.log[-4000:]
    gap = weight_gap(job.out, one_process_training)
    assert gap <= WEIGHT_GAP, gap
    assert_same_history(job.out, one_process_training)


def test_the_weight_check_catches_a_doubled_update(job: Job, one_process_training: Path) -> None:
    """Negative control: the check above fails on a real error. With plain SGD, a loss summed
    instead of averaged over 2 ranks doubles every update, the same as twice the rate."""
    doubled = job.tmp / "doubled"
    run(out=doubled, stages=("train",), lr=0.02, **_fields(job))  # type: ignore[arg-type]
    gap = weight_gap(doubled, one_process_training)
    assert gap > 100 * WEIGHT_GAP, gap
    with pytest.raises(AssertionError):
        assert_same_history(doubled, one_process_training)


def test_two_processes_evaluate_like_one(job: Job, one_process_stages: Path) -> None:
    two = json.loads((job.out / "eval" / "metrics.json").read_text())
    one = json.loads((one_process_stages / "eval" / "metrics.json").read_text())
    assert two["n"] == one["n"] == 9  # nine test samples on two ranks: nine, not ten
    assert two == one
    p2, p1 = _npz(job.out / "eval" / "predictions.npz"), _npz(
        one_process_stages / "eval" / "predictions.npz")
    for key in ("probs", "labels", "predicted", "indices"):
        assert np.array_equal(p2[key], p1[key]), key


def test_two_processes_explain_like_one(job: Job, one_process_stages: Path) -> None:
    for method in METHODS:
        two = _npz(job.out / "cams" / f"{method}.npz")
        one = _npz(one_process_stages / "cams" / f"{method}.npz")
        assert np.array_equal(two["indices"], np.arange(9))
        for key in ("raw", "targets", "labels", "scores", "probs", "layer", "input_shape"):
            assert np.array_equal(two[key], one[key]), (method, key)


def test_two_processes_score_faithfulness_like_one(job: Job, one_process_stages: Path) -> None:
    two = _npz(job.out / "faithfulness" / "per_sample.npz")
    one = _npz(one_process_stages / "faithfulness" / "per_sample.npz")
    assert two["values"].shape[1] == 9
    for key in ("values", "series", "indices", "labels", "predicted"):
        assert np.array_equal(two[key], one[key]), key
    r2 = json.loads((job.out / "faithfulness" / "results.json").read_text())
    r1 = json.loads((one_process_stages / "faithfulness" / "results.json").read_text())
    assert r2["n"] == 9
    for key in ("summary", "tests", "per_class", "sanity", "kept_fraction", "methods"):
        assert r2[key] == r1[key], key
