import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import TensorDataset

from cnnlens.data import TaskData
from cnnlens.errors import CnnlensError
from cnnlens.models import build_model
from cnnlens.pipeline import make_config, prepare_run_dir
from cnnlens.rundir.checkpoint import save_checkpoint
from cnnlens.rundir.folder import RunDir
from cnnlens.train.loop import TrainCallback, kernel_parameters, make_optimizer, train_run
from cnnlens.train.recipes import get_recipe, lr_at


def _run(tmp: Path, name: str, **overrides: Any) -> RunDir:
    cfg = make_config(task="mnist1d", device="cpu", **overrides)
    return prepare_run_dir(tmp / name, cfg, overwrite=False)


def _weights(run: RunDir, name: str = "model") -> dict[str, torch.Tensor]:
    return load_file(str(run.checkpoints / f"{name}.safetensors"))


def test_l2_weight_decay_equals_keras_loss_penalty() -> None:
    torch.manual_seed(0)
    a = build_model("mnist1d-cnn")
    b = copy.deepcopy(a)
    recipe = get_recipe("study")
    opt_a = make_optimizer(a, recipe)
    opt_b = torch.optim.SGD(b.parameters(), lr=recipe.lr)
    x, y = torch.randn(16, 1, 40), torch.randint(0, 10, (16,))
    for _ in range(3):
        opt_a.zero_grad()
        torch.nn.functional.cross_entropy(a(x), y).backward()
        opt_a.step()
        opt_b.zero_grad()
        kernels, _ = kernel_parameters(b)
        penalty = recipe.l2 * sum((w**2).sum() for w in kernels)
        (torch.nn.functional.cross_entropy(b(x), y) + penalty).backward()
        opt_b.step()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7, msg=name)
    # Biases are not regularised: 4 conv/dense kernels decay, 4 biases do not.
    kernels, others = kernel_parameters(a)
    assert len(kernels) == 4 and len(others) == 4


def test_step_schedule_matches_report() -> None:
    r = get_recipe("study").with_overrides(schedule="step")
    assert lr_at(r, 0) == pytest.approx(1e-3)
    assert lr_at(r, 14) == pytest.approx(1e-3)
    assert lr_at(r, 15) == pytest.approx(5e-4)
    assert lr_at(r, 45) == pytest.approx(1.25e-4)
    assert lr_at(get_recipe("study"), 100) == 0.01


def test_training_writes_run_and_is_deterministic(tmp_path: Path, tiny_task: TaskData) -> None:
    r1 = _run(tmp_path, "a", epochs=3, val_fraction=0.2)
    r2 = _run(tmp_path, "b", epochs=3, val_fraction=0.2)
    out1 = train_run(r1, data=tiny_task)
    out2 = train_run(r2, data=tiny_task)
    assert out1["loss"] == out2["loss"] and out1["val_accuracy"] == out2["val_accuracy"]
    for k, v in _weights(r1).items():
        assert torch.equal(v, _weights(r2)[k]), k
    history = json.loads((r1.train_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert {"loss", "accuracy", "lr", "val_loss", "val_accuracy"} <= set(history[0])
    assert list(r1.tb.glob("events.out.tfevents.*"))
    meta = json.loads((r1.checkpoints / "model.json").read_text())
    assert meta["model"] == "mnist1d-cnn" and meta["class_names"][0] == "0"
    assert meta["epoch"] == 2 and "torch" in meta["versions"]
    # "auto" trains signals in fp32 on every CPU (bf16 only pays off for images), and the run
    # records both the choice and what it resolved to
    assert meta["recipe"]["precision"] == "auto" and meta["precision"] == "fp32"
    assert history[-1]["loss"] < history[0]["loss"]


class _Interrupt(TrainCallback):
    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def on_epoch_end(self, stats: dict[str, Any]) -> None:
        if stats["epoch"] == self.at_epoch:
            raise KeyboardInterrupt


def test_resume_ends_with_same_weights_as_uninterrupted(
    tmp_path: Path, tiny_task: TaskData
) -> None:
    straight = _run(tmp_path, "straight", epochs=4, val_fraction=0.2, early_stopping=True,
                    patience=10)
    train_run(straight, data=tiny_task)
    broken = _run(tmp_path, "broken", epochs=4, val_fraction=0.2, early_stopping=True,
                  patience=10)
    with pytest.raises(KeyboardInterrupt):
        train_run(broken, data=tiny_task, callback=_Interrupt(at_epoch=1))
    assert not broken.is_trained()
    train_run(broken, data=tiny_task, resume=True)
    for name in ("last", "model"):
        a, b = _weights(straight, name), _weights(broken, name)
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    h_a = json.loads((straight.train_dir / "history.json").read_text())
    h_b = json.loads((broken.train_dir / "history.json").read_text())
    assert [h["loss"] for h in h_a] == [h["loss"] for h in h_b]


def test_resume_takes_the_weights_saved_with_the_training_state(
    tmp_path: Path, tiny_task: TaskData
) -> None:
    """A process killed between writing ``last.*`` and ``last_state.pt`` (an elastic restart
    can strike anywhere) leaves weights one epoch ahead of the state: resume must not mix
    them."""
    straight = _run(tmp_path, "straight", epochs=3)
    train_run(straight, data=tiny_task)
    broken = _run(tmp_path, "broken", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train_run(broken, data=tiny_task, callback=_Interrupt(at_epoch=0))
    ahead = build_model("mnist1d-cnn")  # stands in for weights written without their state
    meta = json.loads((broken.checkpoints / "last.json").read_text())
    save_checkpoint(broken.checkpoints, "last", ahead, {**meta, "epoch": 1})
    train_run(broken, data=tiny_task, resume=True)
    a, b = _weights(straight), _weights(broken)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_early_stopping_keeps_best_epoch(tmp_path: Path, tiny_task: TaskData) -> None:
    run = _run(tmp_path, "es", epochs=30, val_fraction=0.2, early_stopping=True, patience=2,
               lr=0.5)
    out = train_run(run, data=tiny_task)
    history = json.loads((run.train_dir / "history.json").read_text())
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    meta = json.loads((run.checkpoints / "model.json").read_text())
    assert meta["epoch"] == best and meta["selected"] == "best"
    assert out["epochs_run"] == len(history) <= 30


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, tiny_task: TaskData
) -> None:
    class _PoisonedFromEpoch2(TensorDataset):
        def set_epoch(self, epoch: int) -> None:
            if epoch == 2:
                self.tensors[0][:] = float("nan")

    xs, ys = tiny_task.train.tensors  # type: ignore[attr-defined]
    data = TaskData(tiny_task.class_names, _PoisonedFromEpoch2(xs.clone(), ys), tiny_task.val,
                    tiny_task.test, "signal")
    run = _run(tmp_path, "nan", epochs=5)
    with pytest.raises(CnnlensError, match=r"loss became nan at epoch 3.*last good checkpoint"):
        train_run(run, data=data)
    assert not run.is_trained()
    meta = json.loads((run.checkpoints / "last.json").read_text())
    assert meta["epoch"] == 1
    for v in _weights(run, "last").values():
        assert torch.isfinite(v).all()


def test_early_stopping_requires_validation_split() -> None:
    with pytest.raises(CnnlensError, match="val-fraction"):
        make_config(task="mnist1d", early_stopping=True)


@pytest.mark.parametrize(
    ("override", "match"),
    [({"epochs": 0}, "--epochs"), ({"batch_size": -1}, "--batch-size"), ({"lr": 0.0}, "--lr")],
)
def test_bad_recipe_values_name_the_option(override: dict[str, Any], match: str) -> None:
    with pytest.raises(CnnlensError, match=match):
        make_config(task="mnist1d", **override)
