"""Recipes: the per-task ``best`` recipes, AdamW, the one-cycle schedule, recipe defaults."""

from __future__ import annotations

import itertools

import pytest
import torch

from cnnlens.errors import CnnlensError
from cnnlens.models import build_model
from cnnlens.pipeline import make_config
from cnnlens.train.loop import kernel_parameters, make_optimizer
from cnnlens.train.recipes import get_recipe, lr_at, onecycle_lr, recipe_names


@pytest.mark.parametrize(("task", "model"), [("mnist1d", "mnist1d-resnet"), ("hmt", "hmt-resnet")])
def test_best_recipe_names_its_task_model(task: str, model: str) -> None:
    cfg = make_config(task=task, recipe="best")
    assert cfg["model"] == model and cfg["recipe"]["name"] == "best"
    assert cfg["recipe"]["optimizer"] == "adamw" and cfg["recipe"]["schedule"] == "onecycle"


def test_best_hmt_recipe_sets_input_size_and_augmentation_unless_overridden() -> None:
    cfg = make_config(task="hmt", recipe="best")
    assert cfg["data"]["image_size"] == 128 and cfg["data"]["augmentation"] == "dihedral"
    cfg = make_config(task="hmt", recipe="best", image_size=96, model="hmt-vgg7")
    assert cfg["data"]["image_size"] == 96 and cfg["model"] == "hmt-vgg7"
    # the study recipe is unchanged: the task's model, 224 px, the study's augmentation
    cfg = make_config(task="hmt")
    assert cfg["model"] == "hmt-vgg7" and cfg["data"]["image_size"] == 224
    assert cfg["data"]["augmentation"] == "study"


def test_task_recipe_for_another_task_is_refused_naming_the_tasks() -> None:
    with pytest.raises(CnnlensError, match=r"recipe 'best' is defined for task\(s\) mnist1d, hmt"):
        make_config(task="signals", data_dir=None, recipe="best")
    assert "best" in recipe_names("mnist1d") and "best" not in recipe_names("signals")
    with pytest.raises(CnnlensError, match="did you mean"):
        get_recipe("bset", "mnist1d")


def test_onecycle_rises_to_peak_at_warmup_then_anneals() -> None:
    r = get_recipe("best", "mnist1d")
    epochs = 10
    assert lr_at(r, 0, epochs) == pytest.approx(r.lr / 25)
    assert lr_at(r, r.warmup * epochs, epochs) == pytest.approx(r.lr)
    assert lr_at(r, epochs, epochs) == pytest.approx(r.lr / 25 / 1e4)
    curve = [lr_at(r, e / 10, epochs) for e in range(101)]
    peak = curve.index(max(curve))
    assert all(a <= b for a, b in itertools.pairwise(curve[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(curve[peak:]))
    with pytest.raises(ValueError, match="number of epochs"):
        lr_at(r, 1.0)


def test_onecycle_matches_torch_onecycle_at_phase_ends() -> None:
    """Same curve as OneCycleLR (cos annealing, div 25, final div 1e4) where phases meet."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    total = 110  # the warm-up ends on a step (0.3 · 110 − 1 = 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total,
                                                pct_start=0.3, cycle_momentum=False)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert onecycle_lr(0.1, 0.0, 0.3) == pytest.approx(lrs[0])
    assert onecycle_lr(0.1, 0.3, 0.3) == pytest.approx(max(lrs))
    assert onecycle_lr(0.1, 1.0, 0.3) == pytest.approx(lrs[-1])


def test_adamw_decays_kernels_only() -> None:
    model = build_model("mnist1d-resnet")
    opt = make_optimizer(model, get_recipe("best", "mnist1d"))
    assert isinstance(opt, torch.optim.AdamW)
    kernels, others = kernel_parameters(model)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert all(decay[id(p)] == 0.05 for p in kernels)
    assert others and all(decay[id(p)] == 0.0 for p in others)  # biases, BN scales


@pytest.mark.parametrize(
    ("override", "match"),
    [({"optimizer": "lion"}, "--optimizer"), ({"precision": "fp8"}, "--precision"),
     ({"augmentation": "mixup"}, "--augmentation"), ({"weight_decay": -1.0}, "--weight-decay"),
     ({"label_smoothing": 1.0}, "--label-smoothing"), ({"schedule": "cosine"}, "--schedule")],
)
def test_bad_new_recipe_values_name_the_option(override: dict[str, object], match: str) -> None:
    with pytest.raises(CnnlensError, match=match):
        make_config(task="mnist1d", **override)
