"""The training loop: SGD with Keras-style L2, optional step schedule and early stopping.

Every epoch ends with a complete checkpoint (weights, sidecar, optimizer and RNG state), so
``resume`` continues an interrupted run and ends with the same weights as an uninterrupted
one: shuffling uses a dedicated generator whose state is saved, and augmentation is a pure
function of (seed, epoch, index). An interrupt (SIGINT) is honoured at the next batch
boundary: the state *inside* the epoch is saved too (position, running sums, the epoch's
shuffle state), and a resumed run continues from that batch.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens import distributed
from cnnlens.data import TaskData
from cnnlens.data.batching import iterate_batches
from cnnlens.device import resolve_device
from cnnlens.distributed import Ranks
from cnnlens.errors import CnnlensError
from cnnlens.fileio import write_json
from cnnlens.models import build_model
from cnnlens.progress import TrainCallback
from cnnlens.rundir.checkpoint import load_checkpoint, save_checkpoint
from cnnlens.rundir.folder import RunDir
from cnnlens.train import ddp
from cnnlens.train.recipes import Recipe, epochs_for, lr_at
from cnnlens.train.speed import (
    autocast,
    prepare_batch,
    resolve_precision,
    to_channels_last,
    uses_channels_last,
)
from cnnlens.train.state import TrainState


class EpochHook:
    """Work done after each epoch's checkpoint with the live model and TensorBoard writer.

    The pipeline uses it to log CAM images while training without the training loop
    importing the explain stage (which sits above it).
    """

    def after_epoch(self, epoch: int, epochs: int, model: nn.Module, writer: Any) -> None:
        """Called after the checkpoint of (0-based) ``epoch`` is written."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT arrived; the state at the last batch boundary is saved for ``--resume``."""


def kernel_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split parameters into kernels (weights of rank >= 2, L2-regularised) and the rest."""
    kernels: list[nn.Parameter] = []
    others: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (kernels if p.dim() >= 2 else others).append(p)
    return kernels, others


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD where weight decay ``2·l2`` on kernels equals Keras' ``loss += l2·Σw²``, or AdamW
    with decoupled ``weight_decay`` on kernels (biases and norm scales never decay)."""
    kernels, others = kernel_parameters(model)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(
            [{"params": kernels, "weight_decay": recipe.weight_decay},
             {"params": others, "weight_decay": 0.0}], lr=recipe.lr)
    groups = [
        {"params": kernels, "weight_decay": 2.0 * recipe.l2},
        {"params": others, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(
        groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov
    )


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


class _StopFlag:
    """SIGINT sets a flag the loop checks at each batch boundary (main thread only)."""

    def __init__(self) -> None:
        self.set = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(_sig: int, _frame: object) -> None:
            if self.set:  # a second Ctrl-C: stop now, the last epoch checkpoint is kept
                raise KeyboardInterrupt
            self.set = True

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def train_run(
    run: RunDir,
    *,
    data: TaskData | None = None,
    resume: bool = False,
    callback: TrainCallback | None = None,
    hooks: Sequence[EpochHook] = (),
) -> dict[str, Any]:
    """Train the model a run's ``config.json`` describes; return the final epoch's metrics.

    Under ``torchrun`` the processes train one model with DistributedDataParallel
    (:mod:`cnnlens.train.ddp`); rank 0 alone writes checkpoints, logs and calls
    ``callback`` and ``hooks``.
    """
    with run.lock():
        return _train(run, data=data, resume=resume, callback=callback, hooks=hooks)


@dataclass
class _Session:
    """One training run's fixed parts: what every epoch and every checkpoint share."""

    run: RunDir
    recipe: Recipe  # with precision resolved for this hardware and data
    epochs: int
    data: TaskData
    ranks: Ranks
    device: torch.device
    channels_last: bool
    cb: TrainCallback
    hooks: Sequence[EpochHook]
    meta: dict[str, Any]  # the checkpoint sidecar's fixed keys
    state: TrainState
    stop: _StopFlag = field(default_factory=lambda: _StopFlag())
    net: nn.Module | None = None  # the model as trained (DDP-wrapped under torchrun)

    @property
    def state_path(self) -> Path:
        return self.run.checkpoints / "last_state.pt"


def _train(run: RunDir, *, data: TaskData | None, resume: bool,
           callback: TrainCallback | None, hooks: Sequence[EpochHook]) -> dict[str, Any]:
    s = _session(run, data, callback, hooks)
    start, partial = _resume(s) if resume and s.state_path.exists() else (0, None)
    s.net = ddp.wrap(s.state.model, s.ranks, s.device)
    writer = (_summary_writer(run, purge_step=start if start else None)
              if s.ranks.is_main else None)
    try:
        with s.stop.installed():
            for epoch in range(start, s.epochs):
                stats = _train_epoch(s, epoch, partial)
                partial = None
                if stats.get("interrupted"):
                    _save_interrupted(s, epoch, stats["partial"])
                _end_epoch(s, epoch, stats, writer)
                if s.state.stopped_early:
                    break
    finally:
        if writer is not None:
            writer.close()
    history = s.state.history
    final_name = "best" if s.recipe.early_stopping and s.state.best["epoch"] >= 0 else "last"

    def save_final() -> None:
        final, final_meta = load_checkpoint(run.checkpoints, final_name, device="cpu")
        save_checkpoint(run.checkpoints, "model", final,
                        {**final_meta, "selected": final_name, "epochs_run": len(history)})

    s.ranks.on_main(save_final)  # the other ranks wait until the model is in place
    return {"epochs_run": len(history), "selected": final_name, **(history[-1] if history else {})}


def _session(run: RunDir, data: TaskData | None, callback: TrainCallback | None,
             hooks: Sequence[EpochHook]) -> _Session:
    """Read the run's config, check and decode the data, build the model and optimizer."""
    cfg = run.read_config()
    if not isinstance(cfg.get("recipe"), dict):
        raise CnnlensError(f"{run.config_path}: this run has no training recipe (an imported "
                           "model); train into a new --out")
    recipe = Recipe(**cfg["recipe"])
    recipe.validate()
    seed = int(cfg.get("seed", 0))
    ranks, device = distributed.setup(resolve_device(cfg.get("device", "auto")))
    data = data if data is not None else run.load_data()
    if len(data.train) == 0:  # type: ignore[arg-type]
        raise CnnlensError(f"task {cfg['task']!r}: the training split is empty")
    for split in (data.train, data.val):  # decode every image now: name all bad files at once
        preload = getattr(split, "preload", None)
        if callable(preload) and len(split):  # type: ignore[arg-type]
            preload()
    torch.manual_seed(seed)
    model_kwargs = cfg.get("model_kwargs") or {}
    model = build_model(cfg["model"], **model_kwargs).to(device)
    sample = data.train[0][0]
    channels_last = uses_channels_last(sample.unsqueeze(0), device)
    if channels_last:
        to_channels_last(model)
    precision = resolve_precision(recipe.precision, device, sample.dim() - 1)
    meta = {"model": cfg["model"], "model_kwargs": model_kwargs, "task": cfg["task"],
            "class_names": data.class_names, "recipe": recipe.to_dict(), "seed": seed,
            "precision": precision}
    state = TrainState(model, make_optimizer(model, recipe), torch.Generator().manual_seed(seed))
    return _Session(
        run=run,
        # the steps run at the precision resolved for this hardware and data; the stored
        # recipe keeps the user's choice ("auto"), so the run's config is the same everywhere
        recipe=replace(recipe, precision=precision),
        epochs=epochs_for(recipe, cfg["task"]), data=data, ranks=ranks, device=device,
        channels_last=channels_last,
        cb=(callback if ranks.is_main else None) or TrainCallback(),
        hooks=hooks if ranks.is_main else (), meta=meta, state=state)


def _resume(s: _Session) -> tuple[int, dict[str, Any] | None]:
    """Continue from the last checkpoint: its weights, then the state saved with them."""
    expect = {k: s.meta[k] for k in ("model", "model_kwargs", "class_names")}
    loaded, _ = load_checkpoint(s.run.checkpoints, "last", device=s.device, expect=expect)
    s.state.model.load_state_dict(loaded.state_dict())
    return s.state.restore(s.state_path, s.epochs)


def _save_interrupted(s: _Session, epoch: int, partial: dict[str, Any]) -> NoReturn:
    """Save the state at the batch a Ctrl-C stopped, then stop (``--resume`` goes on)."""
    history = s.state.history
    if s.ranks.is_main:
        save_checkpoint(s.run.checkpoints, "last", s.state.model,
                        {**s.meta, "epoch": epoch - 1, "partial_epoch": epoch,
                         "metrics": history[-1] if history else {}})
        s.state.stopped_early = False
        s.state.save(s.state_path, epoch=epoch - 1, partial=partial)
    s.ranks.barrier()
    raise TrainingInterrupted(f"interrupted in epoch {epoch + 1} after batch "
                              f"{partial['batches']}; resume with --resume")


def _end_epoch(s: _Session, epoch: int, stats: dict[str, Any], writer: Any) -> None:
    """Record the epoch; rank 0 logs it and writes its checkpoints and state."""
    has_val = bool(len(s.data.val))  # type: ignore[arg-type]
    patience = s.recipe.patience if s.recipe.early_stopping else None
    improved = s.state.record(stats, epoch, has_val, patience)
    if s.ranks.is_main:
        _log_scalars(writer, stats)
        meta = {**s.meta, "epoch": epoch, "metrics": stats}
        if improved and s.recipe.early_stopping:
            save_checkpoint(s.run.checkpoints, "best", s.state.model, meta)
        save_checkpoint(s.run.checkpoints, "last", s.state.model, meta)
        s.state.save(s.state_path, epoch=epoch)
        write_json(s.run.train_dir / "history.json", s.state.history)
    for hook in s.hooks:
        hook.after_epoch(epoch, s.epochs, s.state.model, writer)
    s.cb.on_epoch_end(stats)


def _train_epoch(s: _Session, epoch: int, partial: dict[str, Any] | None) -> dict[str, Any]:
    """One epoch (from ``partial``'s batch when resuming inside it): its metrics, or
    ``{"interrupted": True, "partial": ...}`` when a Ctrl-C stopped it."""
    recipe, data, shuffle, optimizer = s.recipe, s.data, s.state.shuffle, s.state.optimizer
    assert s.net is not None
    lr = lr_at(recipe, epoch, s.epochs)
    for group in optimizer.param_groups:
        group["lr"] = lr
    per_step = recipe.schedule == "onecycle"  # lr is a function of the step, set every batch
    set_epoch = getattr(data.train, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)
    n = len(data.train)  # type: ignore[arg-type]
    if partial is not None:  # resume inside the epoch: the same order, from the same batch
        shuffle.set_state(partial["shuffle_before"])
    shuffle_before = shuffle.get_state()
    order = torch.randperm(n, generator=shuffle)
    s.cb.on_epoch_start(epoch, s.epochs, n)
    s.net.train()
    total_loss, correct, seen, skip = 0.0, 0, 0, 0
    seconds = 0.0
    if partial is not None:
        total_loss, correct, seen = partial["loss_sum"], partial["correct"], partial["seen"]
        skip, seconds = partial["batches"], partial["seconds"]
        torch.set_rng_state(partial["torch_rng"])
        s.cb.on_batch_end(seen, total_loss / max(seen, 1), correct / max(seen, 1))
    bs = recipe.batch_size
    steps = math.ceil(n / bs)
    t0, cpu0 = time.perf_counter(), time.process_time()
    batches = ddp.rank_batches(data.train, order[skip * bs:], bs, s.ranks)
    for step, (x, y) in enumerate(batches, start=skip):
        x = prepare_batch(x.to(s.device, non_blocking=True), s.channels_last)
        y = y.to(s.device, non_blocking=True)
        if per_step:
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
        total_loss += totals.loss_sum
        correct += totals.correct
        seen += totals.n
        s.cb.on_batch_end(totals.n, total_loss / seen, correct / seen)
        if totals.stop and seen < n:
            return {"interrupted": True, "partial": {
                "epoch": epoch, "batches": step + 1, "loss_sum": total_loss, "correct": correct,
                "seen": seen, "shuffle_before": shuffle_before, "torch_rng": torch.get_rng_state(),
                "seconds": seconds + time.perf_counter() - t0}}
    seconds += time.perf_counter() - t0
    stats: dict[str, Any] = {
        "epoch": epoch,
        "lr": lr,
        "loss": total_loss / seen,
        "accuracy": correct / seen,
        "seconds": seconds,
        # CPU seconds of this process (all threads) in this epoch's steps: on a shared
        # machine wall time includes the neighbours, this does not
        "cpu_seconds": time.process_time() - cpu0,
        "items_per_s": seen / seconds if seconds > 0 else math.nan,
    }
    if len(data.val):  # type: ignore[arg-type]
        val_loss, val_acc = loss_and_accuracy(ddp.unwrap(s.net), data.val,
                                              batch_size=recipe.batch_size, device=s.device,
                                              ranks=s.ranks)
        stats.update(val_loss=val_loss, val_accuracy=val_acc)
    return stats


def _summary_writer(run: RunDir, purge_step: int | None) -> Any:
    """A TensorBoard writer (tensorboard is a dependency; import lazily, it is slow)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run.tb), purge_step=purge_step)


def _log_scalars(writer: Any, stats: dict[str, Any]) -> None:
    epoch = stats["epoch"]
    writer.add_scalar("loss/train", stats["loss"], epoch)
    writer.add_scalar("accuracy/train", stats["accuracy"], epoch)
    writer.add_scalar("lr", stats["lr"], epoch)
    if "val_loss" in stats:
        writer.add_scalar("loss/val", stats["val_loss"], epoch)
        writer.add_scalar("accuracy/val", stats["val_accuracy"], epoch)
    writer.flush()


__all__ = ["EpochHook", "TrainCallback", "TrainingInterrupted", "kernel_parameters",
           "loss_and_accuracy", "make_optimizer", "train_run"]
