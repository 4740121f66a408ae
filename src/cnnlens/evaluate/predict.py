"""Batched inference over a dataset: class probabilities and labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens.data.batching import iterate_batches
from cnnlens.device import eval_mode, inference_forward, inference_rows


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    indices: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(probs (N, K), labels (N,))`` for ``dataset`` (or the given ``indices``).

    Every submodule's train/eval flag is restored afterwards.
    """
    n = len(dataset)  # type: ignore[arg-type]
    order = torch.as_tensor(indices if indices is not None else np.arange(n), dtype=torch.long)
    probs, labels = [], []
    with eval_mode(model):
        for x, y in iterate_batches(dataset, order, batch_size):
            x = x.to(device)
            rows = inference_rows(x)  # decode in large batches, run in cache-sized ones
            for i in range(0, x.shape[0], rows):
                logits = inference_forward(model, x[i : i + rows]).float()
                probs.append(torch.softmax(logits, dim=1).cpu().numpy())
            labels.append(np.asarray(y))
    if not probs:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(probs).astype(np.float64), np.concatenate(labels).astype(np.int64)
