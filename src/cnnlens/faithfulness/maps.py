"""The maps the faithfulness stage scores: read from ``cams/`` when they answer the request
exactly, computed by the CAM engine otherwise; and the samples they are scored on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnlens.data import TaskData
from cnnlens.data.batching import iterate_batches
from cnnlens.errors import CnnlensError
from cnnlens.explain.api import explain_methods
from cnnlens.explain.stage import load_cams
from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness.options import MethodSpec
from cnnlens.rundir.folder import RunDir, load_checked_data


def load_split(run: RunDir, meta: dict[str, Any], split: str, limit: int | None,
                data_dir: str | None, data: TaskData | None,
                config: Mapping[str, Any] | None = None,
                ) -> tuple[Any, int, list[str], str]:
    """The split's dataset, how many of its samples to score, class names and kind
    (``config``: the run's config when the caller holds it)."""
    data = load_checked_data(run, meta, split=split, data_dir=data_dir, data=data,
                             config=config)
    ds = data.eval_split(split)
    n = len(ds) if limit is None else min(limit, len(ds))  # type: ignore[arg-type]
    if n == 0:
        raise CnnlensError(f"{run.path}: split {split!r} is empty; choose --split train/val/test")
    return ds, n, list(data.class_names), data.kind


def stack(ds: Any, indices: np.ndarray) -> tuple[Tensor, np.ndarray]:
    """Samples ``indices`` of ``ds`` as one input tensor and a label array."""
    xs: list[Tensor] = []
    ys: list[np.ndarray] = []
    for x, y in iterate_batches(ds, torch.from_numpy(indices), 256):
        xs.append(x)
        ys.append(np.asarray(y, dtype=np.int64))
    return torch.cat(xs), np.concatenate(ys)


def saved_maps(run: RunDir, spec: MethodSpec, layer: str, score: str, split: str,
                predicted: np.ndarray, spatial: tuple[int, ...], n: int, rows: np.ndarray
                ) -> dict[str, Any] | None:
    """Maps from ``cams/`` if they fit this request exactly, else ``None`` (recompute).

    ``rows`` are the samples this process scores and ``predicted`` their classes.
    """
    path = run.cams_dir / f"{spec.method}.npz"
    if not path.exists():
        return None
    saved = load_cams(run.path, spec.method)
    idx = np.asarray(saved.get("indices", []))
    maps = np.asarray(saved.get("maps", np.zeros((0,))))
    targets = np.asarray(saved.get("targets", np.zeros(0))).reshape(-1)
    ok = (
        str(saved.get("split", split)) == split
        and str(saved.get("layer")) == layer
        and str(saved.get("score")) == score
        and idx.size >= n and np.array_equal(idx[:n], np.arange(n))
        and maps.shape[1:] == spatial
        and targets.size >= n and np.array_equal(targets[rows], predicted)
    )
    if not ok:
        return None
    raw = np.asarray(saved["raw"]) if "raw" in saved else None
    return {
        "maps": torch.from_numpy(maps[rows].astype(np.float32)),
        "cells": tuple(raw.shape[1:]) if raw is not None else None,
        "layer": str(saved.get("layer")),
        "score": str(saved.get("score")),
        "seconds": float(saved.get("seconds", 0.0)) * n / max(idx.size, 1),
        "source": f"cams/{spec.method}.npz",
    }


def compute_maps(model: nn.Module, x: Tensor, targets: Tensor, *, method: str, layer: str,
                  score: str, batch_size: int, progress: Callable[[int], None] | None = None
                  ) -> tuple[Tensor, tuple[int, ...]]:
    dev = M.device_of(model)
    maps: list[Tensor] = []
    cells: tuple[int, ...] = ()
    for i in range(0, x.shape[0], batch_size):
        res = explain_methods(model, x[i : i + batch_size].to(dev), layer=layer,
                              methods=[method], targets=targets[i : i + batch_size].to(dev),
                              score=score)[method]
        maps.append(res.maps.detach().float().cpu())
        cells = tuple(res.raw.shape[1:])
        if progress:
            progress(min(i + batch_size, x.shape[0]))
    return torch.cat(maps), cells


__all__ = ["compute_maps", "load_split", "saved_maps", "stack"]
