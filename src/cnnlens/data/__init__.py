"""Task registry: each task knows its data, class names and default model.

A task loader returns a :class:`TaskData` with ``train`` / ``val`` / ``test`` datasets
yielding ``(x, y)`` pairs: ``x`` a float32 tensor ``(C, *spatial)``, ``y`` an int.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from cnnlens.errors import unknown_choice


@dataclass(frozen=True)
class DataConfig:
    """Everything that decides which samples a run sees (stored in the run's config)."""

    task: str
    data_dir: str | None = None
    image_size: int = 224
    val_fraction: float = 0.0
    seed: int = 0
    augment: bool = True
    skip_bad: bool = False
    cache_dir: str | None = None


@dataclass
class TaskData:
    """Datasets of one task; ``val`` is empty when no validation split was requested."""

    class_names: list[str]
    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    kind: str  # "signal" or "image"
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Dataset[Any]:
        """Return a split by name (``train``, ``val`` or ``test``)."""
        if name not in ("train", "val", "test"):
            raise unknown_choice("split", name, ["train", "val", "test"])
        dataset: Dataset[Any] = getattr(self, name)
        return dataset


@dataclass(frozen=True)
class TaskSpec:
    """A task: how to load it and which model and CAM layer fit it by default."""

    name: str
    model: str
    kind: str
    load: Callable[[DataConfig], TaskData]
    description: str


def _load_mnist1d(cfg: DataConfig) -> TaskData:
    from cnnlens.data.mnist1d import load_mnist1d_task

    return load_mnist1d_task(cfg)


def _load_hmt(cfg: DataConfig) -> TaskData:
    from cnnlens.data.hmt import load_hmt_task

    return load_hmt_task(cfg)


TASKS: dict[str, TaskSpec] = {
    "mnist1d": TaskSpec(
        name="mnist1d",
        model="mnist1d-cnn",
        kind="signal",
        load=_load_mnist1d,
        description="MNIST-1D, 4000 train / 1000 test signals of length 40, generated locally",
    ),
    "hmt": TaskSpec(
        name="hmt",
        model="hmt-vgg7",
        kind="image",
        load=_load_hmt,
        description="Kather 2016 colorectal histology tiles, 8 classes (HMT split)",
    ),
}


def get_task(name: str) -> TaskSpec:
    """Look up a task by name; an unknown name lists the valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise unknown_choice("task", name, TASKS) from None


def load_task(cfg: DataConfig) -> TaskData:
    """Load the datasets a :class:`DataConfig` describes."""
    return get_task(cfg.task).load(cfg)


def default_cache_dir() -> Path:
    """Where generated or decoded data is cached (``$CNNLENS_CACHE`` or ``~/.cache/cnnlens``)."""
    import os

    return Path(os.environ.get("CNNLENS_CACHE", Path.home() / ".cache" / "cnnlens"))


__all__ = ["TASKS", "DataConfig", "TaskData", "TaskSpec", "default_cache_dir", "get_task",
           "load_task"]
