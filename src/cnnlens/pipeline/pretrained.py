"""The shipped ``best`` models as run folders: explain a strong model without training.

Weights live in the package (``cnnlens/models/weights/<task>.safetensors`` with a checkpoint
sidecar recording how they were trained, the input size and the test accuracy they reach).
A pretrained run is made like a Keras import: a config with ``recipe: null`` and
``checkpoints/model.*``, so every later stage reads it as it reads a trained run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from cnnlens.data import TaskSpec
from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.pipeline.create import prepare_run_dir
from cnnlens.rundir import RunDir
from cnnlens.rundir.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "models" / "weights"


def pretrained_tasks() -> list[str]:
    """Tasks with shipped weights (a ``<task>.json`` sidecar in the package)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.json"))


def pretrained_meta(task: str) -> dict[str, Any]:
    """The sidecar of ``task``'s shipped weights; an unknown task lists the shipped ones."""
    if task not in pretrained_tasks():
        raise unknown_choice("task with shipped weights (--pretrained)", task,
                             pretrained_tasks())
    return read_checkpoint_meta(WEIGHTS_DIR, task)


def pretrained_run_config(task: str, *, data_dir: str | None = None,
                          image_size: int | tuple[int, int] | None = None,
                          spec: TaskSpec | None = None, **data_options: Any) -> tuple[
    dict[str, Any], nn.Module, dict[str, Any]
]:
    """The run config, model and checkpoint sidecar of ``task``'s shipped weights.

    Images are read at the size the weights were trained at unless ``image_size`` says
    otherwise; ``data_options`` (cache_dir, skip_bad, seed) go to the data config;
    ``spec``: the task's registry entry when the caller looked it up already.
    """
    from cnnlens.pipeline.config import data_config, data_dict

    pretrained_meta(task)  # an unknown task fails here, listing the shipped ones
    model, meta = load_checkpoint(WEIGHTS_DIR, task)
    trained_size = (meta.get("data") or {}).get("image_size")
    size = image_size if image_size is not None else trained_size
    data = data_config(task=task, data_dir=data_dir, image_size=size, augment=False,
                       spec=spec, **data_options)
    source = {"pretrained": f"cnnlens/models/weights/{task}.safetensors",
              "test_accuracy": meta.get("test_accuracy"), "trained_with": meta.get("command")}
    cfg: dict[str, Any] = {"task": task, "model": meta["model"], "data": data_dict(data),
                           "source": source, "recipe": None}
    if meta.get("model_kwargs"):
        cfg["model_kwargs"] = meta["model_kwargs"]
    run_meta = {k: v for k, v in meta.items() if k != "versions"}
    run_meta["pretrained"] = source["pretrained"]
    return cfg, model, run_meta


def write_pretrained(run: RunDir, model: nn.Module, meta: dict[str, Any]) -> None:
    """Save the shipped model as the run's ``checkpoints/model``."""
    save_checkpoint(run.checkpoints, "model", model, meta)


def pretrained_run(out: str | Path, task: str, *, data_dir: str | None = None,
                   image_size: int | None = None, overwrite: bool = False) -> RunDir:
    """A run folder at ``out`` holding ``task``'s shipped model (reused when it already does)."""
    cfg, model, meta = pretrained_run_config(task, data_dir=data_dir, image_size=image_size)
    run = prepare_run_dir(out, cfg, overwrite=overwrite)
    with run.lock():
        if not run.is_trained():
            write_pretrained(run, model, meta)
    return run


def check_pretrained_options(options: dict[str, Any]) -> None:
    """Training options make no sense for shipped weights: refuse them by name."""
    given = [k for k, v in options.items() if v is not None]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise CnnlensError(f"--pretrained uses the shipped trained model: {flags} do(es) not "
                           "apply")


__all__ = ["WEIGHTS_DIR", "check_pretrained_options", "pretrained_meta", "pretrained_run",
           "pretrained_run_config", "pretrained_tasks", "write_pretrained"]
