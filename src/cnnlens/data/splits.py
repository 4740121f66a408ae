"""Deterministic, stratified validation splits carved from training data."""

from __future__ import annotations

import numpy as np

from cnnlens.errors import CnnlensError


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, holdout) with ``fraction`` of each class held out.

    Stratifying keeps class balance in both parts; the seed makes the split reproducible.
    """
    if not 0.0 <= fraction < 1.0:
        raise CnnlensError(f"val_fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    if fraction == 0.0:
        return np.arange(len(labels)), np.arange(0)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = max(1, round(len(idx) * fraction))
        held.append(idx[:n])
    holdout = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(labels)), holdout)
    return keep, holdout
