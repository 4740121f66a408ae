"""One training epoch: the per-batch step, the running sums a Ctrl-C saves, the metrics.

A resumed epoch draws the same order from the saved shuffle state and goes on from the batch
it stopped at, with the running sums and torch's RNG as they were there, so it ends with the
same weights as an epoch never interrupted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens.data.batching import iterate_batches
from cnnlens.distributed import Ranks
from cnnlens.errors import CnnlensError
from cnnlens.progress import TrainCallback
from cnnlens.train import ddp
from cnnlens.train.recipes import lr_at
from cnnlens.train.session import Session
from cnnlens.train.speed import autocast, prepare_batch


@torch.no_grad()
def loss_and_accuracy(
    model: nn.Module, dataset: Dataset[Any], *, batch_size: int, device: torch.device,
    ranks: Ranks | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``dataset`` (eval mode).

    With several ``ranks`` each scores its share and the sums are all-reduced.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        return math.nan, math.nan
    ranks = ranks or Ranks()
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0.0
    try:
        for x, y in iterate_batches(dataset, ranks.part(n), max(batch_size, 256)):
            x, y = x.to(device), y.to(device)
            logits = model(x).float()
            total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    finally:
        model.train(was_training)
    total_loss, correct = ranks.all_sum([total_loss, correct])
    return total_loss / n, correct / n


@dataclass
class _Sums:
    """An epoch's running totals: what a Ctrl-C saves and a resume goes on from."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # training time, including that before a resume
    skip: int = 0  # batches done before this process took the epoch up

    @classmethod
    def resume(cls, partial: dict[str, Any], cb: TrainCallback) -> _Sums:
        """The totals where ``partial`` stopped, with torch's RNG as it was there."""
        sums = cls(partial["loss_sum"], partial["correct"], partial["seen"],
                   partial["seconds"], partial["batches"])
        torch.set_rng_state(partial["torch_rng"])
        cb.on_batch_end(sums.seen, sums.loss_sum / max(sums.seen, 1),
                        sums.correct / max(sums.seen, 1))
        return sums

    def add(self, totals: ddp.Step) -> None:
        self.loss_sum += totals.loss_sum
        self.correct += totals.correct
        self.seen += totals.n

    def partial(self, epoch: int, batches: int, shuffle_before: torch.Tensor, t0: float
                ) -> dict[str, Any]:
        """Where a Ctrl-C stopped the epoch: what ``--resume`` needs to go on from there."""
        return {"epoch": epoch, "batches": batches, "loss_sum": self.loss_sum,
                "correct": self.correct, "seen": self.seen, "shuffle_before": shuffle_before,
                "torch_rng": torch.get_rng_state(),
                "seconds": self.seconds + time.perf_counter() - t0}


def train_epoch(s: Session, epoch: int, partial: dict[str, Any] | None) -> dict[str, Any]:
    """One epoch (from ``partial``'s batch when resuming inside it): its metrics, or
    ``{"interrupted": True, "partial": ...}`` when a Ctrl-C stopped it."""
    assert s.net is not None
    lr = _start(s, epoch)
    n = len(s.data.train)  # type: ignore[arg-type]
    shuffle = s.state.shuffle
    if partial is not None:  # resume inside the epoch: the same order, from the same batch
        shuffle.set_state(partial["shuffle_before"])
    shuffle_before = shuffle.get_state()
    order = torch.randperm(n, generator=shuffle)
    s.cb.on_epoch_start(epoch, s.epochs, n)
    s.net.train()
    sums = _Sums() if partial is None else _Sums.resume(partial, s.cb)
    bs = s.recipe.batch_size
    steps = math.ceil(n / bs)
    t0, cpu0 = time.perf_counter(), time.process_time()
    batches = ddp.rank_batches(s.data.train, order[sums.skip * bs:], bs, s.ranks)
    for step, (x, y) in enumerate(batches, start=sums.skip):
        totals = _step(s, x, y, epoch=epoch, step=step, steps=steps, lr=lr)
        sums.add(totals)
        s.cb.on_batch_end(totals.n, sums.loss_sum / sums.seen, sums.correct / sums.seen)
        if totals.stop and sums.seen < n:
            return {"interrupted": True,
                    "partial": sums.partial(epoch, step + 1, shuffle_before, t0)}
    sums.seconds += time.perf_counter() - t0
    return _stats(s, epoch, lr, sums, cpu0)


def _start(s: Session, epoch: int) -> float:
    """Set the epoch's learning rate (returned) and tell the training split the epoch
    (augmentation is a function of it)."""
    lr = lr_at(s.recipe, epoch, s.epochs)
    for group in s.state.optimizer.param_groups:
        group["lr"] = lr
    set_epoch = getattr(s.data.train, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)
    return lr


def _step(s: Session, x: torch.Tensor, y: torch.Tensor, *, epoch: int, step: int, steps: int,
          lr: float) -> ddp.Step:
    """One optimisation step on a batch; a non-finite loss stops the run before it."""
    assert s.net is not None
    recipe, optimizer = s.recipe, s.state.optimizer
    x = prepare_batch(x.to(s.device, non_blocking=True), s.channels_last)
    y = y.to(s.device, non_blocking=True)
    if recipe.schedule == "onecycle":  # lr is a function of the step, set every batch
        for group in optimizer.param_groups:
            group["lr"] = lr_at(recipe, epoch + step / steps, s.epochs)
    with autocast(s.device, recipe.precision):
        logits = s.net(x)
    totals = ddp.step_loss(logits.float(), y, s.ranks, stop=s.stop.set,
                           label_smoothing=recipe.label_smoothing)
    if not math.isfinite(totals.loss_sum):
        raise CnnlensError(
            f"loss became {totals.mean_loss} at epoch {epoch + 1}, batch {step + 1} "
            f"(lr {lr:g}); training stopped, the last good checkpoint is kept "
            "(try a smaller --lr)"
        )
    optimizer.zero_grad(set_to_none=True)
    totals.loss.backward()
    optimizer.step()
    return totals


def _stats(s: Session, epoch: int, lr: float, sums: _Sums, cpu0: float) -> dict[str, Any]:
    """The epoch's metrics, with the validation split's loss and accuracy when it has one."""
    assert s.net is not None
    stats: dict[str, Any] = {
        "epoch": epoch,
        "lr": lr,
        "loss": sums.loss_sum / sums.seen,
        "accuracy": sums.correct / sums.seen,
        "seconds": sums.seconds,
        # CPU seconds of this process (all threads) in this epoch's steps: on a shared
        # machine wall time includes the neighbours, this does not
        "cpu_seconds": time.process_time() - cpu0,
        "items_per_s": sums.seen / sums.seconds if sums.seconds > 0 else math.nan,
    }
    if len(s.data.val):  # type: ignore[arg-type]
        val_loss, val_acc = loss_and_accuracy(ddp.unwrap(s.net), s.data.val,
                                              batch_size=s.recipe.batch_size, device=s.device,
                                              ranks=s.ranks)
        stats.update(val_loss=val_loss, val_accuracy=val_acc)
    return stats


__all__ = ["loss_and_accuracy", "train_epoch"]
