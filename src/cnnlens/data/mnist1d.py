"""MNIST-1D, generated locally with the ``mnist1d`` package and cached as ``.npz``.

The package's own download path fetches and unpickles a remote file; generating instead is
fast (about 1 s) and reproducible, and the cache is keyed by the generation arguments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from cnnlens.data import DataConfig, TaskData, default_cache_dir
from cnnlens.data.splits import stratified_holdout
from cnnlens.fileio import write_npz

log = logging.getLogger(__name__)

CLASS_NAMES = [str(i) for i in range(10)]
LENGTH = 40  # the package's default signal length
_KEYS = ("x", "y", "x_test", "y_test", "t")


def default_args() -> dict[str, Any]:
    """The package's default generation arguments (4000/1000 signals, length 40, seed 42)."""
    from mnist1d.data import get_dataset_args

    return dict(vars(get_dataset_args()))


def _cache_key(args: dict[str, Any]) -> str:
    blob = json.dumps(args, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def generate_mnist1d(args: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Generate the arrays, leaving the caller's global numpy and ``random`` state untouched.

    ``make_dataset`` reseeds the global generators; restoring them keeps this call free of
    side effects on the user's own randomness.
    """
    from mnist1d.data import make_dataset

    full = default_args()
    full.update(args or {})
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        data = make_dataset(_Namespace(full))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in _KEYS}


def load_mnist1d(
    args: dict[str, Any] | None = None, *, cache_dir: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Return MNIST-1D arrays from the cache, generating and caching them on first use."""
    full = default_args()
    full.update(args or {})
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = root / "mnist1d" / f"mnist1d_{_cache_key(full)}.npz"
    if path.exists():
        cached = _read_cache(path)
        if cached is not None:
            return cached
    arrays = generate_mnist1d(full)
    try:
        write_npz(path, **arrays)
    except OSError as exc:  # the data are fine; only the next run pays the 1 s again
        log.warning("%s: cannot write the MNIST-1D cache (%s); continuing without it", path,
                    exc.strerror or exc)
    return arrays


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is truncated, empty, stale or otherwise bad.

    A bad cache is never an error: it is regenerated and replaced atomically.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in _KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    x, y, x_test, y_test = (arrays[k] for k in ("x", "y", "x_test", "y_test"))
    if (x.ndim != 2 or y.shape != (x.shape[0],) or x_test.ndim != 2
            or y_test.shape != (x_test.shape[0],) or x.shape[0] == 0
            or not np.issubdtype(y.dtype, np.integer) or not np.isfinite(x).all()):
        return None
    return arrays


def load_mnist1d_task(cfg: DataConfig) -> TaskData:
    """MNIST-1D as tensors ``(N, 1, 40)`` with a stratified validation split if requested."""
    arrays = load_mnist1d(cache_dir=cfg.cache_dir)
    x = torch.from_numpy(arrays["x"].astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(arrays["y"].astype(np.int64))
    keep, hold = stratified_holdout(arrays["y"], cfg.val_fraction, cfg.seed)
    x_test = torch.from_numpy(arrays["x_test"].astype(np.float32)).unsqueeze(1)
    y_test = torch.from_numpy(arrays["y_test"].astype(np.int64))
    return TaskData(
        class_names=list(CLASS_NAMES),
        train=TensorDataset(x[keep], y[keep]),
        val=TensorDataset(x[hold], y[hold]),
        test=TensorDataset(x_test, y_test),
        kind="signal",
        info={"source": "mnist1d (generated)", "length": int(x.shape[-1])},
    )


class _Namespace:
    """Attribute access over a dict, as ``make_dataset`` expects its arguments."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
