"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from peers_shim import torchvision_standin
from support import SHARED_DATA, require, require_path


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data cache per test session: MNIST-1D is generated once, never in ~/.cache."""
    cache = tmp_path_factory.mktemp("cnnlens-cache")
    old = os.environ.get("CNNLENS_CACHE")
    os.environ["CNNLENS_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("CNNLENS_CACHE", None)
    else:
        os.environ["CNNLENS_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    """Small models run fastest single-threaded, and the suite stays quiet on 2 cores."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only data folder beside the repo (skipped without it; a failure under CI)."""
    return require_path(SHARED_DATA)


@pytest.fixture(scope="session")
def pgc() -> Iterator[types.ModuleType]:
    """The ``pytorch_grad_cam`` package, importable without torchvision.

    pytorch-grad-cam imports torchvision in three utility modules only; its CAM classes and
    metrics run with a stand-in ``torchvision`` (DESIGN §8) that exists in this process only.
    """
    os.environ.setdefault("TQDM_DISABLE", "1")
    added: list[str] = []
    try:
        import torchvision  # noqa: F401
    except ImportError:
        for name, mod in torchvision_standin().items():
            sys.modules[name] = mod
            added.append(name)
    try:
        yield require("pytorch_grad_cam")
    finally:
        for name in added:
            sys.modules.pop(name, None)
