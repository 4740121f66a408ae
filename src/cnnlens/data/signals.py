"""A user's own 1-D signals: arrays in one ``.npz`` file.

Required arrays: ``x_train``, ``y_train``, ``x_test``, ``y_test``; optional ``x_val`` and
``y_val`` (a validation split; otherwise ``val_fraction`` carves one from train) and
``class_names`` (strings, one per class). Signals are ``(N, L)`` (one channel) or
``(N, C, L)``; labels are integers in ``0..K-1``. The file is opened with
``allow_pickle=False``, so it can hold no code; every check names the array at fault.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from cnnlens.data import DataConfig, TaskData, TaskShape, require_data_dir
from cnnlens.data.splits import stratified_holdout
from cnnlens.errors import CnnlensError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val", "class_names")


def _open(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CnnlensError(f"{path}: signal file not found (expected an .npz with "
                           f"{', '.join(REQUIRED)})")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise CnnlensError(f"{path}: not an .npz archive (save with numpy.savez)")
            missing = [k for k in REQUIRED if k not in f.files]
            if missing:
                raise CnnlensError(
                    f"{path}: missing array(s) {', '.join(missing)}; expected {', '.join(REQUIRED)}"
                    f" (optional: {', '.join(OPTIONAL)}); found: {', '.join(f.files) or 'none'}"
                )
            return {k: f[k] for k in f.files if k in REQUIRED + OPTIONAL}
    except CnnlensError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CnnlensError(
                f"{path}: holds object arrays, which need pickle and are refused; save "
                "numbers and strings only (class_names as a string array)"
            ) from None
        raise CnnlensError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CnnlensError(f"{path}: not a readable .npz file ({exc})") from None


def _signals(path: Path, name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "fiub" or a.dtype.kind == "b":
        raise CnnlensError(f"{path}: {name} has dtype {a.dtype}; expected real numbers")
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3:
        raise CnnlensError(
            f"{path}: {name} has shape {a.shape}; expected (N, L) or (N, C, L)"
        )
    if a.shape[0] == 0 or a.shape[2] == 0:
        raise CnnlensError(f"{path}: {name} has shape {a.shape}; it holds no signal")
    if not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a).reshape(a.shape[0], -1).all(axis=1))[0])
        raise CnnlensError(f"{path}: {name}[{bad}] holds NaN or infinite values")
    return a.astype(np.float32)


def _labels(path: Path, name: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise CnnlensError(
                f"{path}: {name} has dtype {y.dtype}; expected integer class indices 0..K-1"
            )
    if y.shape != (n,):
        raise CnnlensError(f"{path}: {name} has shape {y.shape}; expected ({n},), one label "
                           f"per signal of x_{name[2:]}")
    if y.size and int(y.min()) < 0:
        raise CnnlensError(f"{path}: {name} holds {int(y.min())}; expected class indices >= 0")
    return y.astype(np.int64)


def _read(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    raw = _open(path)
    arrays: dict[str, np.ndarray] = {}
    splits = ["train", "test"] + (["val"] if "x_val" in raw or "y_val" in raw else [])
    for split in splits:
        if f"x_{split}" not in raw or f"y_{split}" not in raw:
            raise CnnlensError(f"{path}: x_{split} and y_{split} must be given together")
        x = _signals(path, f"x_{split}", raw[f"x_{split}"])
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = _labels(path, f"y_{split}", raw[f"y_{split}"], x.shape[0])
    shape = arrays["x_train"].shape[1:]
    for split in splits[1:]:
        if arrays[f"x_{split}"].shape[1:] != shape:
            raise CnnlensError(
                f"{path}: x_{split} signals are {arrays[f'x_{split}'].shape[1:]} (C, L) but "
                f"x_train's are {shape}; all splits need the same channels and length"
            )
    k = 1 + max(int(arrays[f"y_{s}"].max()) for s in splits)
    if "class_names" in raw:
        names_arr = raw["class_names"]
        if names_arr.dtype.kind not in "US" or names_arr.ndim != 1:
            raise CnnlensError(f"{path}: class_names must be a 1-D string array, got "
                               f"{names_arr.dtype} {names_arr.shape}")
        names = [str(n.decode() if isinstance(n, bytes) else n) for n in names_arr.tolist()]
        if len(names) < k:
            raise CnnlensError(
                f"{path}: class_names has {len(names)} names but the labels go up to {k - 1}; "
                f"expected at least {k} names"
            )
        if len(set(names)) != len(names):
            raise CnnlensError(f"{path}: class_names has duplicates")
    else:
        names = [str(i) for i in range(k)]
    return arrays, names


def describe_signals(cfg: DataConfig) -> TaskShape:
    """Class names and ``(C, L)`` of the signals in ``cfg.data_dir`` (the ``.npz``)."""
    arrays, names = _read(require_data_dir(cfg))
    return TaskShape(names, tuple(int(s) for s in arrays["x_train"].shape[1:]), "signal")


def load_signals_task(cfg: DataConfig) -> TaskData:
    """Tensors ``(N, C, L)`` from the ``.npz``; a validation split from x_val or carved."""
    path = require_data_dir(cfg)
    arrays, names = _read(path)
    x = torch.from_numpy(arrays["x_train"])
    y = torch.from_numpy(arrays["y_train"])
    if "x_val" in arrays:
        train = TensorDataset(x, y)
        val = TensorDataset(torch.from_numpy(arrays["x_val"]), torch.from_numpy(arrays["y_val"]))
    else:
        keep, hold = stratified_holdout(arrays["y_train"], cfg.val_fraction, cfg.seed)
        train, val = TensorDataset(x[keep], y[keep]), TensorDataset(x[hold], y[hold])
    test = TensorDataset(torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"]))
    return TaskData(
        class_names=names,
        train=train,
        val=val,
        test=test,
        kind="signal",
        info={"source": str(path), "channels": int(x.shape[1]), "length": int(x.shape[2]),
              "split_sizes": {"train": len(train), "val": len(val), "test": len(test)}},
    )


__all__ = ["OPTIONAL", "REQUIRED", "describe_signals", "load_signals_task"]
