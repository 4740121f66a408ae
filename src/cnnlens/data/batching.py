"""Batches of ``(x, y)`` from any dataset, in a given order, without per-item overhead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


def iterate_batches(
    dataset: Dataset[Any], order: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches in ``order``.

    In-memory tensors are sliced directly and image folders build a whole batch at once
    (``get_batch``: one augmentation warp per batch); anything else goes through a
    single-process DataLoader.
    """
    if isinstance(dataset, TensorDataset):
        xs, ys = dataset.tensors[0], dataset.tensors[1]
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield xs[idx], ys[idx]
        return
    get_batch = getattr(dataset, "get_batch", None)
    if callable(get_batch):
        for i in range(0, len(order), batch_size):
            yield get_batch(order[i : i + batch_size])
        return
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order.tolist(), num_workers=0)
    yield from loader


def stack_split(dataset: Dataset[Any], n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples (all by default) as one ``(x, y)`` pair of tensors."""
    total = len(dataset)  # type: ignore[arg-type]
    n = total if n is None else min(n, total)
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for x, y in iterate_batches(dataset, torch.arange(n), 256):
        xs.append(x)
        ys.append(torch.as_tensor(y).long())
    if not xs:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    return torch.cat(xs), torch.cat(ys)


__all__ = ["iterate_batches", "stack_split"]
