"""Training on several processes with DistributedDataParallel, taking one process's steps.

``--batch-size`` is the *global* batch. Every rank draws the same permutation per epoch
(the loop's shuffle generator is seeded from the run's seed and saved for resume, so it is
identical everywhere), cuts it into global batches exactly as one process would, and takes
the strided share ``batch[rank::world]`` of each, as DistributedSampler does. The loss is
summed on each rank and scaled by ``world / global_batch``, so DDP's gradient average is
the gradient of the global batch's mean loss: N processes take the same optimisation steps
as one (to float rounding), whatever the data size, and nothing is padded or counted twice.
The learning rate is therefore unchanged when processes are added.

BatchNorm layers see only their rank's share of a batch (as in any DDP job); the models
shipped with cnnlens have none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens.data.batching import iterate_batches
from cnnlens.distributed import Ranks


def wrap(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when several processes train, else itself.

    DDP broadcasts rank 0's parameters at construction; checkpoints keep saving ``model``
    (the unwrapped module), so their keys never gain a ``module.`` prefix.
    """
    if not ranks.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(net: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (``net`` itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return net.module if isinstance(net, DistributedDataParallel) else net


def rank_batches(dataset: Dataset[Any], order: torch.Tensor, batch_size: int, ranks: Ranks
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's share of each global batch of ``order`` (all of it for one process).

    A share can be empty (a last batch smaller than the number of processes): the rank
    still takes the step with an empty batch, so that every rank joins every all-reduce.
    """
    if not ranks.active:
        yield from iterate_batches(dataset, order, batch_size)
        return
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size][ranks.rank :: ranks.world]
        if len(idx):
            yield next(iter(iterate_batches(dataset, idx, len(idx))))
        else:
            x, y = next(iter(iterate_batches(dataset, order[:1], 1)))
            yield x[:0], y[:0]


@dataclass
class Step:
    """One optimisation step's loss to back-propagate and its totals over all ranks."""

    loss: torch.Tensor  # call backward() on this
    loss_sum: float  # sum of per-sample losses over the global batch
    correct: int
    n: int  # samples in the global batch
    stop: bool  # some rank was asked to stop (SIGINT): all stop at this boundary

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.n if self.n else math.nan


def step_loss(logits: torch.Tensor, y: torch.Tensor, ranks: Ranks, *, stop: bool,
              label_smoothing: float = 0.0) -> Step:
    """Cross-entropy of a batch; with several ranks, its share of the global mean loss.

    One process: the plain mean loss, exactly as before. Several: one small all-reduce of
    (loss sum, correct, count, stop) before the backward pass, so every rank sees the same
    totals and takes the same decisions (a non-finite loss, an interrupt) at the same step.
    """
    correct = (logits.argmax(1) == y).sum()
    if not ranks.active:
        loss = nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
        b = int(y.shape[0])
        return Step(loss, loss.item() * b, int(correct), b, stop)
    loss_sum = nn.functional.cross_entropy(logits, y, reduction="sum",
                                           label_smoothing=label_smoothing)
    totals = ranks.all_sum([float(loss_sum.detach()), float(correct), float(y.shape[0]),
                            float(stop)])
    n = int(totals[2])
    return Step(loss_sum * (ranks.world / max(n, 1)), totals[0], int(totals[1]), n,
                totals[3] > 0)


__all__ = ["Step", "rank_batches", "step_loss", "unwrap", "wrap"]
