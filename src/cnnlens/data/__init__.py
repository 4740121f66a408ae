"""Task registry: each task knows its data, class names and default model.

A task loader returns a :class:`TaskData` with ``train`` / ``val`` / ``test`` datasets
yielding ``(x, y)`` pairs: ``x`` a float32 tensor ``(C, *spatial)``, ``y`` an int.
Built-in tasks: ``mnist1d`` (generated signals), ``hmt`` (the study's histology split),
and two for a user's own data: ``images`` (``DIR/train|test[|val]/<class>/*``) and
``signals`` (arrays in one ``.npz``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlens.errors import CnnlensError, unknown_choice

if TYPE_CHECKING:
    from torch.utils.data import Dataset

#: The splits a task has (``val`` may be empty).
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class DataConfig:
    """Everything that decides which samples a run sees (stored in the run's config).

    ``data_dir`` is the image folder (``hmt``, ``images``) or the ``.npz`` file
    (``signals``).
    """

    task: str
    data_dir: str | None = None
    image_size: int | tuple[int, int] = 224  # H, or (H, W) (JSON: a list)
    resize: str = "stretch"  # or "shorter-side+center-crop" (cnnlens.data.resize)
    #: a trained model's output classes (``--class-names``): image class folders may be a
    #: subset, labelled by their position here
    class_names: tuple[str, ...] | None = None
    val_fraction: float = 0.0
    seed: int = 0
    augment: bool = True
    augmentation: str = "study"  # images: a name in cnnlens.data.augment.AUGMENTATIONS
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
        if name not in SPLITS:
            raise unknown_choice("split", name, SPLITS)
        dataset: Dataset[Any] = getattr(self, name)
        return dataset

    def check_readable(self, splits: tuple[str, ...] = SPLITS) -> None:
        """Decode every sample of these splits now and name *all* unreadable files at once
        (rather than the first one, minutes into training)."""
        bad: list[str] = []
        for split in (self.split(name) for name in splits):
            scan = getattr(split, "unreadable", None)
            if callable(scan) and len(split):  # type: ignore[arg-type]
                bad += [m for m in scan() if m not in bad]
        if bad:
            listed = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise CnnlensError(f"{len(bad)} unreadable image file(s): {listed}; pass "
                               "--skip-bad to skip and list them")

    def eval_split(self, name: str) -> Dataset[Any]:
        """A split without train-time augmentation (what evaluation and explanation read)."""
        dataset = self.split(name)
        plain = getattr(dataset, "without_augmentation", None)
        return plain() if callable(plain) else dataset


@dataclass(frozen=True)
class TaskShape:
    """What a model needs to know about a task before any sample is decoded."""

    class_names: list[str]
    input_shape: tuple[int, ...]  # (C, *spatial)
    kind: str


@dataclass(frozen=True)
class TaskSpec:
    """A task: how to load it, how to describe it cheaply, and which model fits it."""

    name: str
    model: str
    kind: str
    load: Callable[[DataConfig], TaskData]
    describe: Callable[[DataConfig], TaskShape]
    description: str
    needs: str = ""  # what --data-dir must point at ("" when the task needs nothing)


def _load_mnist1d(cfg: DataConfig) -> TaskData:
    from cnnlens.data.mnist1d import load_mnist1d_task

    return load_mnist1d_task(cfg)


def _describe_mnist1d(cfg: DataConfig) -> TaskShape:
    from cnnlens.data.mnist1d import CLASS_NAMES, LENGTH

    return TaskShape(list(CLASS_NAMES), (1, LENGTH), "signal")


def _load_hmt(cfg: DataConfig) -> TaskData:
    from cnnlens.data.hmt import load_hmt_task

    return load_hmt_task(cfg)


def _describe_hmt(cfg: DataConfig) -> TaskShape:
    from cnnlens.data.hmt import describe_hmt

    return describe_hmt(cfg)


def _load_images(cfg: DataConfig) -> TaskData:
    from cnnlens.data.image_task import load_image_folder_task

    return load_image_folder_task(cfg)


def _describe_images(cfg: DataConfig) -> TaskShape:
    from cnnlens.data.image_task import describe_image_folders

    return describe_image_folders(cfg)


def _load_signals(cfg: DataConfig) -> TaskData:
    from cnnlens.data.signals import load_signals_task

    return load_signals_task(cfg)


def _describe_signals(cfg: DataConfig) -> TaskShape:
    from cnnlens.data.signals import describe_signals

    return describe_signals(cfg)


TASKS: dict[str, TaskSpec] = {
    "mnist1d": TaskSpec(
        name="mnist1d",
        model="mnist1d-cnn",
        kind="signal",
        load=_load_mnist1d,
        describe=_describe_mnist1d,
        description="MNIST-1D, 4000 train / 1000 test signals of length 40, generated locally",
    ),
    "hmt": TaskSpec(
        name="hmt",
        model="hmt-vgg7",
        kind="image",
        load=_load_hmt,
        describe=_describe_hmt,
        description="Kather 2016 colorectal histology tiles, 8 classes (HMT split)",
        needs="a folder holding HMT_train/<class>/ and HMT_test/<class>/ (get it with "
        "`cnnlens data download hmt --to DIR`)",
    ),
    "images": TaskSpec(
        name="images",
        model="hmt-vgg7",
        kind="image",
        load=_load_images,
        describe=_describe_images,
        description="your own image folders: DIR/train/<class>/*, DIR/test/<class>/* "
        "(optional DIR/val/<class>/*)",
        needs="a folder holding train/<class>/ and test/<class>/ (optional val/<class>/)",
    ),
    "signals": TaskSpec(
        name="signals",
        model="mnist1d-cnn",
        kind="signal",
        load=_load_signals,
        describe=_describe_signals,
        description="your own 1-D signals: x_train, y_train, x_test, y_test (optional x_val, "
        "y_val, class_names) in one .npz, shapes (N, L) or (N, C, L)",
        needs="an .npz file with x_train, y_train, x_test, y_test",
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


def describe_task(cfg: DataConfig) -> TaskShape:
    """Class names and input shape of a task, without decoding its samples."""
    return get_task(cfg.task).describe(cfg)


def require_data_dir(cfg: DataConfig) -> Path:
    """``cfg.data_dir`` as a path, or an error saying what the task needs (the registry is
    asked only then: loading data looks its task up once, in the caller)."""
    if cfg.data_dir is None:
        spec = TASKS.get(cfg.task)
        flag = "--data FILE.npz" if cfg.task == "signals" else "--data-dir DIR"
        needs = spec.needs if spec is not None and spec.needs else "where its data is"
        raise CnnlensError(f"task {cfg.task} needs {flag}: {needs}")
    return Path(cfg.data_dir)


def default_cache_dir() -> Path:
    """Where generated or decoded data is cached (``$CNNLENS_CACHE`` or ``~/.cache/cnnlens``)."""
    import os

    return Path(os.environ.get("CNNLENS_CACHE", Path.home() / ".cache" / "cnnlens"))


__all__ = ["SPLITS", "TASKS", "DataConfig", "TaskData", "TaskShape", "TaskSpec",
           "default_cache_dir", "describe_task", "get_task", "load_task", "require_data_dir"]
