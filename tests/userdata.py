"""Makers of small user data sets (image folders, signal arrays) and a user model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

USER_MODEL = '''
from collections import OrderedDict

import torch
from torch import nn


def build(num_classes, in_channels):
    """A user's own 1-D CNN with names of its own (nothing cnnlens registered)."""
    return nn.Sequential(OrderedDict(
        stem=nn.Conv1d(in_channels, 6, 3, padding=1),
        act=nn.ReLU(),
        body=nn.Sequential(nn.Conv1d(6, 6, 3, padding=1), nn.ReLU()),
        pool=nn.AdaptiveAvgPool1d(1),
        flat=nn.Flatten(),
        head=nn.Linear(6, num_classes),
    ))


def not_a_model():
    return 42
'''


def make_image_folders(root: Path, *, classes: tuple[str, ...] = ("cats", "dogs", "owls"),
                       per_class: dict[str, int] | None = None, size: int = 12,
                       val: bool = False) -> Path:
    """``root/{train,test[,val]}/<class>/*.png``: each class a distinct colour plus noise."""
    rng = np.random.default_rng(0)
    counts = per_class or {"train": 10, "test": 4, "val": 3}
    splits = ["train", "test"] + (["val"] if val else [])
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(counts[split]):
                base = np.zeros((size, size, 3))
                base[..., c % 3] = 180
                img = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{split}_{i}.png")
    return root


def make_signals(path: Path, *, channels: int = 2, length: int = 24, classes: int = 3,
                 n_train: int = 60, n_test: int = 24, **extra: np.ndarray) -> Path:
    """An ``.npz`` of (N, C, L) signals whose class sets where a bump sits."""
    rng = np.random.default_rng(1)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % classes
        x = rng.normal(0, 0.3, (n, channels, length)).astype(np.float32)
        for i, c in enumerate(y):
            start = 2 + c * (length - 6) // max(1, classes - 1)
            x[i, :, start:start + 4] += 2.0
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    arrays.update(extra)
    np.savez(path, **arrays)
    return path


