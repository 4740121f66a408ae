"""An image-folder task: ``train`` / ``test`` (and optionally ``val``) class folders read as
the three splits of :class:`~cnnlens.data.TaskData`, with a summary of what was read.

Kept apart from :mod:`cnnlens.data.images`, which holds the dataset of one folder: this
module decides which folders make a task and how validation is carved out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnlens.data import DataConfig, TaskData, TaskShape, require_data_dir
from cnnlens.data.augmentations import AUGMENTATIONS, AugmentConfig
from cnnlens.data.images import ImageFolderDataset
from cnnlens.data.resize import ImageSize, canonical_size, image_hw
from cnnlens.data.splits import stratified_holdout
from cnnlens.errors import CnnlensError


def describe_image_folders(
    cfg: DataConfig, *, train_folder: str = "train", test_folder: str = "test"
) -> TaskShape:
    """Class names (the train folder's class folders) and input shape, decoding nothing."""
    root = _check_layout(cfg, train_folder, test_folder, "")
    names = list(cfg.class_names) if cfg.class_names else scan_class_names(root / train_folder)
    return TaskShape(names, (3, *image_hw(cfg.image_size)), "image")


def scan_class_names(root: Path) -> list[str]:
    """Sorted class folder names of ``root`` (hidden entries and loose files ignored)."""
    names = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise CnnlensError(f"{root}: no class folders; expected {root}/<class>/<image files>")
    return names


def _check_layout(cfg: DataConfig, train_folder: str, test_folder: str, hint: str) -> Path:
    root = require_data_dir(cfg)
    if not root.is_dir():
        raise CnnlensError(f"--data-dir {root}: not a folder")
    for name in (train_folder, test_folder):
        if not (root / name).is_dir():
            extra = f" ({hint})" if hint else ""
            raise CnnlensError(
                f"{root / name}: folder not found; --data-dir must hold {train_folder}/<class>/ "
                f"and {test_folder}/<class>/{extra}"
            )
    return root


def load_image_folder_task(
    cfg: DataConfig,
    *,
    train_folder: str = "train",
    test_folder: str = "test",
    val_folder: str | None = "val",
    hint: str = "",
) -> TaskData:
    """A task from ``<data_dir>/<train_folder>/<class>/`` and ``<data_dir>/<test_folder>/<class>/``.

    Class names are the sorted class folders of the train folder (the test folder, and a
    ``val_folder`` if present, must have the same). Without a val folder, ``val`` is a
    stratified holdout of train (``cfg.val_fraction``); it is never augmented; ``train``
    gets augmentation ``cfg.augmentation`` (the study's by default) when ``cfg.augment``.
    Tiles decode lazily (or all at once
    with :meth:`ImageFolderDataset.preload`) and are cached in memory; with
    ``cfg.skip_bad`` or ``cfg.cache_dir`` everything is decoded up front (and with
    ``cache_dir`` saved for the next run).
    """
    root = _check_layout(cfg, train_folder, test_folder, hint)
    size = canonical_size(cfg.image_size)
    named = list(cfg.class_names) if cfg.class_names else None  # the model's, for a subset
    train_all = ImageFolderDataset(
        root / train_folder, size=size, resize=cfg.resize, skip_bad=cfg.skip_bad,
        cache_dir=cfg.cache_dir, class_names=named, subset=named is not None
    )
    test = _held_out_folder(root / test_folder, cfg, size, train_all, subset=named is not None)
    folders = {"train": train_all, "test": test}  # the folders read, for the summary
    augment = AUGMENTATIONS[cfg.augmentation] if cfg.augment else None
    val_root = root / val_folder if val_folder else None
    if val_root is not None and val_root.is_dir():
        val = _held_out_folder(val_root, cfg, size, train_all, subset=named is not None)
        train = train_all.subset(np.arange(len(train_all)), augment=augment)
        val_source: str | None = str(val_root)
        folders["val"] = val
    else:
        keep, hold = stratified_holdout(train_all.targets, cfg.val_fraction, cfg.seed)
        train = train_all.subset(keep, augment=augment)
        val = train_all.subset(hold)
        val_source = f"{cfg.val_fraction:g} of {train_folder}/ per class" if len(hold) else None
    train.seed = cfg.seed
    sizes = {"train": len(train), "val": len(val), "test": len(test)}
    info = _task_info(cfg, root, size, augment, folders, sizes, val_source)
    return TaskData(
        class_names=list(train_all.class_names),
        train=train,
        val=val,
        test=test,
        kind="image",
        info=info,
    )


def _held_out_folder(folder: Path, cfg: DataConfig, size: ImageSize,
                     train: ImageFolderDataset, *, subset: bool) -> ImageFolderDataset:
    """A test or val folder: the train folder's classes, never augmented."""
    return ImageFolderDataset(
        folder,
        size=size,
        resize=cfg.resize,
        class_names=train.class_names,
        subset=subset,
        skip_bad=cfg.skip_bad,
        cache_dir=cfg.cache_dir,
    )


def _task_info(cfg: DataConfig, root: Path, size: ImageSize, augment: AugmentConfig | None,
               folders: dict[str, ImageFolderDataset], split_sizes: dict[str, int],
               val_source: str | None) -> dict[str, Any]:
    """The data summary: files per class of each folder read, split sizes, what was skipped."""
    infos = {k: ds.info() for k, ds in folders.items()}
    return {
        "source": str(root),
        "image_size": size,
        "resize": cfg.resize,
        "augment": dict(augment.__dict__) if augment else None,
        "files_per_class": {k: v["files_per_class"] for k, v in infos.items()},
        "split_sizes": split_sizes,
        "val_source": val_source,
        "skipped_non_image": {k: v["skipped_non_image"] for k, v in infos.items()},
        "skipped": [s for v in infos.values() for s in v["skipped"]],
    }


__all__ = ["describe_image_folders", "load_image_folder_task", "scan_class_names"]
