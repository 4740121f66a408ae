"""Reading what the explain stage wrote: ``cams/<method>.npz`` and ``cams/summary.json``.

Every later stage (faithfulness, the report's tools, a user's notebook) reads CAMs through
these, so a truncated, empty or foreign file is one error naming it, wherever it is read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlens.errors import CnnlensError
from cnnlens.explain.methods import normalize_maps, upsample_maps
from cnnlens.fileio import read_json
from cnnlens.rundir.folder import RunDir

SUMMARY_NAME = "summary.json"


def maps_from_raw(raw: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Input-resolution maps in [0, 1] from layer-resolution maps, as the engine makes them."""
    t = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
    chunks = [normalize_maps(upsample_maps(t[i:i + 64], input_shape))
              for i in range(0, t.shape[0], 64)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, *input_shape), np.float32)


def load_cams(run_dir: str | Path, method: str) -> dict[str, Any]:
    """Read ``cams/<method>.npz``: arrays as numpy, string/scalar fields as Python values.

    ``maps`` (input resolution, [0, 1]) is rebuilt from ``raw`` when the file does not
    hold it. A truncated, empty or foreign file is an error naming it.
    """
    path = RunDir(run_dir).cams_dir / f"{method}.npz"
    if not path.exists():
        raise CnnlensError(f"{path}: not found; run `cnnlens explain` with --methods {method}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CnnlensError(f"{path}: corrupt CAM file ({type(exc).__name__}: {exc}); run "
                           "`cnnlens explain` again") from None
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        out[key] = value.item() if value.ndim == 0 else value
    if "raw" not in out or not isinstance(out["raw"], np.ndarray):
        raise CnnlensError(f"{path}: not a cnnlens CAM file (no 'raw' maps); run "
                           "`cnnlens explain` again")
    if "maps" not in out:
        shape = out.get("input_shape")
        if not isinstance(shape, np.ndarray) or shape.ndim != 1:
            raise CnnlensError(f"{path}: no 'input_shape'; run `cnnlens explain` again")
        out["maps"] = maps_from_raw(out["raw"], tuple(int(s) for s in shape))
    return out


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """Read ``cams/summary.json`` (which methods, layers and figures the stage produced)."""
    summary = read_json(RunDir(run_dir).cams_dir / SUMMARY_NAME)
    if not isinstance(summary, dict):
        raise CnnlensError(f"{RunDir(run_dir).cams_dir / SUMMARY_NAME}: not a CAM summary")
    return summary


__all__ = ["SUMMARY_NAME", "load_cams", "maps_from_raw", "read_summary"]
