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
from dataclasses import replace
from typing import Any

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
from cnnlens.rundir.checkpoint import (
    load_checkpoint,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
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


def _train(run: RunDir, *, data: TaskData | None, resume: bool,
           callback: TrainCallback | None, hooks: Sequence[EpochHook]) -> dict[str, Any]:
    cfg = run.read_config()
    if not isinstance(cfg.get("recipe"), dict):
        raise CnnlensError(f"{run.config_path}: this run has no training recipe (an imported "
                           "model); train into a new --out")
    recipe = Recipe(**cfg["recipe"])
    recipe.validate()
    epochs = epochs_for(recipe, cfg["task"])
    seed = int(cfg.get("seed", 0))
    ranks, device = distributed.setup(resolve_device(cfg.get("device", "auto")))
    cb = (callback if ranks.is_main else None) or TrainCallback()
    hooks = hooks if ranks.is_main else ()
    data = data if data is not None else run.load_data()
    n_train = len(data.train)  # type: ignore[arg-type]
    if n_train == 0:
        raise CnnlensError(f"task {cfg['task']!r}: the training split is empty")
    for split in (data.train, data.val):  # decode every image now: name all bad files at once
        preload = getattr(split, "preload", None)
        if callable(preload) and len(split):  # type: ignore[arg-type]
            preload()

    torch.manual_seed(seed)
    model_kwargs = cfg.get("model_kwargs") or {}
    model = build_model(cfg["model"], **model_kwargs).to(device)
    channels_last = uses_channels_last(data.train[0][0].unsqueeze(0), device)
    if channels_last:
        to_channels_last(model)
    optimizer = make_optimizer(model, recipe)
    shuffle = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    best = {"val_loss": math.inf, "epoch": -1}
    bad_epochs = 0
    start = 0
    partial: dict[str, Any] | None = None
    meta_base = {
        "model": cfg["model"],
        "model_kwargs": model_kwargs,
        "task": cfg["task"],
        "class_names": data.class_names,
        "recipe": recipe.to_dict(),
        "seed": seed,
        "precision": resolve_precision(recipe.precision, device, data.train[0][0].dim() - 1),
    }
    # the steps run at the precision resolved for this hardware and data; the stored recipe
    # keeps the user's choice ("auto"), so the run's config is the same on every machine
    recipe = replace(recipe, precision=meta_base["precision"])

    state_path = run.checkpoints / "last_state.pt"
    if resume and state_path.exists():
        state = load_train_state(state_path)
        expect = {"model": cfg["model"], "model_kwargs": model_kwargs,
                  "class_names": data.class_names}
        loaded, _ = load_checkpoint(run.checkpoints, "last", device=device, expect=expect)
        model.load_state_dict(loaded.state_dict())
        try:
            if "model" in state:  # the weights saved with this state: a kill between the
                model.load_state_dict(state["model"])  # two files cannot mix epochs
            optimizer.load_state_dict(state["optimizer"])
            shuffle.set_state(state["shuffle_rng"])
            torch.set_rng_state(state["torch_rng"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CnnlensError(f"{state_path}: training state does not fit this run ({exc}); "
                               "start again with --overwrite") from None
        history = list(state["history"])
        best = dict(state["best"])
        bad_epochs = int(state["bad_epochs"])
        start = int(state["epoch"]) + 1
        partial = state.get("partial")
        if partial is not None:
            start = int(partial["epoch"])
        if state.get("stopped_early"):
            start = epochs

    net = ddp.wrap(model, ranks, device)
    writer = _summary_writer(run, purge_step=start if start else None) if ranks.is_main else None
    stop_flag = _StopFlag()
    try:
        with stop_flag.installed():
            for epoch in range(start, epochs):
                stats = _train_epoch(net, optimizer, data, recipe, epoch, epochs, shuffle,
                                     device, cb, stop_flag, partial, ranks, channels_last)
                partial = None
                if stats.get("interrupted"):
                    if ranks.is_main:
                        save_checkpoint(run.checkpoints, "last", model,
                                        {**meta_base, "epoch": epoch - 1, "partial_epoch": epoch,
                                         "metrics": history[-1] if history else {}})
                        save_train_state(state_path, {
                            "epoch": epoch - 1,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "shuffle_rng": shuffle.get_state(),
                            "torch_rng": torch.get_rng_state(),
                            "history": history,
                            "best": best,
                            "bad_epochs": bad_epochs,
                            "stopped_early": False,
                            "partial": stats["partial"],
                        })
                    ranks.barrier()
                    raise TrainingInterrupted(
                        f"interrupted in epoch {epoch + 1} after batch "
                        f"{stats['partial']['batches']}; resume with --resume"
                    )
                history.append(stats)
                improved = stats.get("val_loss", math.inf) < best["val_loss"]
                if improved:
                    best = {"val_loss": stats["val_loss"], "epoch": epoch}
                    bad_epochs = 0
                elif len(data.val):  # type: ignore[arg-type]
                    bad_epochs += 1
                stop = recipe.early_stopping and bad_epochs >= recipe.patience
                if ranks.is_main:
                    _log_scalars(writer, stats)
                    meta = {**meta_base, "epoch": epoch, "metrics": stats}
                    if improved and recipe.early_stopping:
                        save_checkpoint(run.checkpoints, "best", model, meta)
                    save_checkpoint(run.checkpoints, "last", model, meta)
                    save_train_state(
                        state_path,
                        {
                            "epoch": epoch,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "shuffle_rng": shuffle.get_state(),
                            "torch_rng": torch.get_rng_state(),
                            "history": history,
                            "best": best,
                            "bad_epochs": bad_epochs,
                            "stopped_early": stop,
                            "partial": None,
                        },
                    )
                    write_json(run.train_dir / "history.json", history)
                for hook in hooks:
                    hook.after_epoch(epoch, epochs, model, writer)
                cb.on_epoch_end(stats)
                if stop:
                    break
    finally:
        if writer is not None:
            writer.close()

    final_name = "best" if recipe.early_stopping and best["epoch"] >= 0 else "last"

    def save_final() -> None:
        final, final_meta = load_checkpoint(run.checkpoints, final_name, device="cpu")
        save_checkpoint(
            run.checkpoints,
            "model",
            final,
            {**final_meta, "selected": final_name, "epochs_run": len(history)},
        )

    ranks.on_main(save_final)  # the other ranks wait until the model is in place
    return {"epochs_run": len(history), "selected": final_name, **(history[-1] if history else {})}


def _train_epoch(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TaskData,
    recipe: Recipe,
    epoch: int,
    epochs: int,
    shuffle: torch.Generator,
    device: torch.device,
    cb: TrainCallback,
    stop: _StopFlag,
    partial: dict[str, Any] | None,
    ranks: Ranks,
    channels_last: bool = False,
) -> dict[str, Any]:
    lr = lr_at(recipe, epoch, epochs)
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
    cb.on_epoch_start(epoch, epochs, n)
    net.train()
    total_loss, correct, seen, skip = 0.0, 0, 0, 0
    seconds = 0.0
    if partial is not None:
        total_loss, correct, seen = partial["loss_sum"], partial["correct"], partial["seen"]
        skip, seconds = partial["batches"], partial["seconds"]
        torch.set_rng_state(partial["torch_rng"])
        cb.on_batch_end(seen, total_loss / max(seen, 1), correct / max(seen, 1))
    bs = recipe.batch_size
    steps = math.ceil(n / bs)
    t0, cpu0 = time.perf_counter(), time.process_time()
    batches = ddp.rank_batches(data.train, order[skip * bs:], bs, ranks)
    for step, (x, y) in enumerate(batches, start=skip):
        x = prepare_batch(x.to(device, non_blocking=True), channels_last)
        y = y.to(device, non_blocking=True)
        if per_step:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(recipe, epoch + step / steps, epochs)
        with autocast(device, recipe.precision):
            logits = net(x)
        totals = ddp.step_loss(logits.float(), y, ranks, stop=stop.set,
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
        b = totals.n
        total_loss += totals.loss_sum
        correct += totals.correct
        seen += b
        cb.on_batch_end(b, total_loss / seen, correct / seen)
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
        val_loss, val_acc = loss_and_accuracy(
            ddp.unwrap(net), data.val, batch_size=recipe.batch_size, device=device, ranks=ranks
        )
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
