"""Batched inference over a dataset: class probabilities and labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens.data.batching import iterate_batches
from cnnlens.device import eval_mode, fast_forward, inference_rows
from cnnlens.errors import CnnlensError


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of the square of a batch ``(N, C, H, W)``: 4 quarter turns, each
    with and without a horizontal flip (exact pixel permutations)."""
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise CnnlensError(f"--tta dihedral needs square images (N, C, H, H), got batches of "
                           f"shape {tuple(x.shape)}; use --tta none")
    turns = [torch.rot90(x, k, (2, 3)) if k else x for k in range(4)]
    return turns + [torch.flip(t, (3,)) for t in turns]


def _probabilities(model: nn.Module, x: torch.Tensor, tta: str) -> torch.Tensor:
    """Softmax of one forward, or the mean softmax over the test-time views."""
    views = dihedral_views(x) if tta == "dihedral" else [x]
    total = torch.softmax(fast_forward(model, views[0]).float(), dim=1)
    for view in views[1:]:
        total += torch.softmax(fast_forward(model, view).float(), dim=1)
    return total / len(views)


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    indices: np.ndarray | None = None,
    tta: str = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(probs (N, K), labels (N,))`` for ``dataset`` (or the given ``indices``).

    ``tta="dihedral"`` averages the probabilities over each image's 8 symmetries (an
    ensemble of views; 8× the forwards). Every submodule's train/eval flag is restored
    afterwards.
    """
    n = len(dataset)  # type: ignore[arg-type]
    order = torch.as_tensor(indices if indices is not None else np.arange(n), dtype=torch.long)
    probs, labels = [], []
    with eval_mode(model):
        for x, y in iterate_batches(dataset, order, batch_size):
            x = x.to(device)
            rows = inference_rows(x)  # decode in large batches, run in cache-sized ones
            for i in range(0, x.shape[0], rows):
                probs.append(_probabilities(model, x[i : i + rows], tta).cpu().numpy())
            labels.append(np.asarray(y))
    if not probs:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(probs).astype(np.float64), np.concatenate(labels).astype(np.int64)
