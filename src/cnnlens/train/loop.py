"""The training loop: SGD with Keras-style L2, optional step schedule and early stopping.

Every epoch ends with a complete checkpoint (weights, sidecar, optimizer and RNG state), so
``resume`` continues an interrupted run and ends with the same weights as an uninterrupted
one: shuffling uses a dedicated generator whose state is saved, and augmentation is a pure
function of (seed, epoch, index). An interrupt (SIGINT) is honoured at the next batch
boundary: the state *inside* the epoch is saved too (position, running sums, the epoch's
shuffle state), and a resumed run continues from that batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NoReturn

import torch
from torch import nn

from cnnlens import distributed
from cnnlens.data import TaskData
from cnnlens.device import resolve_device
from cnnlens.errors import CnnlensError
from cnnlens.fileio import write_json
from cnnlens.models import build_model
from cnnlens.progress import TrainCallback
from cnnlens.rundir.checkpoint import load_checkpoint, save_checkpoint
from cnnlens.rundir.folder import RunDir
from cnnlens.train import ddp
from cnnlens.train.epoch import loss_and_accuracy, train_epoch
from cnnlens.train.recipes import Recipe, epochs_for
from cnnlens.train.session import Session
from cnnlens.train.speed import resolve_precision, to_channels_last, uses_channels_last
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


def train_run(
    run: RunDir,
    *,
    data: TaskData | None = None,
    resume: bool = False,
    callback: TrainCallback | None = None,
    hooks: Sequence[EpochHook] = (),
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the model a run's ``config.json`` describes; return the final epoch's metrics.

    Under ``torchrun`` the processes train one model with DistributedDataParallel
    (:mod:`cnnlens.train.ddp`); rank 0 alone writes checkpoints, logs and calls
    ``callback`` and ``hooks``. ``config``: the run's config when the caller holds it (the
    pipeline does), else ``config.json`` is read.
    """
    with run.lock():
        return _train(run, data=data, resume=resume, callback=callback, hooks=hooks,
                      config=config)


def _train(run: RunDir, *, data: TaskData | None, resume: bool,
           callback: TrainCallback | None, hooks: Sequence[EpochHook],
           config: Mapping[str, Any] | None) -> dict[str, Any]:
    s = _session(run, data, callback, hooks, config)
    start, partial = _resume(s) if resume and s.state_path.exists() else (0, None)
    s.net = ddp.wrap(s.state.model, s.ranks, s.device)
    writer = (_summary_writer(run, purge_step=start if start else None)
              if s.ranks.is_main else None)
    try:
        with s.stop.installed():
            for epoch in range(start, s.epochs):
                stats = train_epoch(s, epoch, partial)
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
             hooks: Sequence[EpochHook], config: Mapping[str, Any] | None) -> Session:
    """Read the run's config (unless given), check and decode the data, build the model and
    optimizer."""
    cfg = run.use_config(config)
    if not isinstance(cfg.get("recipe"), dict):
        raise CnnlensError(f"{run.config_path}: this run has no training recipe (an imported "
                           "model); train into a new --out")
    recipe = Recipe(**cfg["recipe"])
    recipe.validate()
    seed = int(cfg.get("seed", 0))
    ranks, device = distributed.setup(resolve_device(cfg.get("device", "auto")))
    data = data if data is not None else run.load_data(config=cfg)
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
    return Session(
        run=run,
        # the steps run at the precision resolved for this hardware and data; the stored
        # recipe keeps the user's choice ("auto"), so the run's config is the same everywhere
        recipe=replace(recipe, precision=precision),
        epochs=epochs_for(recipe, cfg["task"]), data=data, ranks=ranks, device=device,
        channels_last=channels_last,
        cb=(callback if ranks.is_main else None) or TrainCallback(),
        hooks=hooks if ranks.is_main else (), meta=meta, state=state)


def _resume(s: Session) -> tuple[int, dict[str, Any] | None]:
    """Continue from the last checkpoint: its weights, then the state saved with them."""
    expect = {k: s.meta[k] for k in ("model", "model_kwargs", "class_names")}
    loaded, _ = load_checkpoint(s.run.checkpoints, "last", device=s.device, expect=expect)
    s.state.model.load_state_dict(loaded.state_dict())
    return s.state.restore(s.state_path, s.epochs)


def _save_interrupted(s: Session, epoch: int, partial: dict[str, Any]) -> NoReturn:
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


def _end_epoch(s: Session, epoch: int, stats: dict[str, Any], writer: Any) -> None:
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
