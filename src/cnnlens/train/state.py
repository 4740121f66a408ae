"""What training needs to continue exactly: one object, saved and restored whole.

Written after every epoch (and at an interrupt, with the position inside the epoch), so a
resumed run ends with the same weights as an uninterrupted one: the weights saved with the
state, the optimizer, the shuffling generator, torch's RNG, the history and the
early-stopping bookkeeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.rundir.checkpoint import load_train_state, save_train_state


def _no_best() -> dict[str, Any]:
    return {"val_loss": math.inf, "epoch": -1}


@dataclass
class TrainState:
    """The live training state; ``save``/``restore`` move it to and from ``last_state.pt``."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=_no_best)
    bad_epochs: int = 0
    stopped_early: bool = False

    def save(self, path: Path, *, epoch: int, partial: dict[str, Any] | None = None) -> None:
        """Write the state after (0-based) ``epoch``; ``partial``: where inside the next
        epoch an interrupt stopped it."""
        save_train_state(path, {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "shuffle_rng": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "partial": partial,
        })

    def restore(self, path: Path, epochs: int) -> tuple[int, dict[str, Any] | None]:
        """Load ``path`` into this state; return the epoch to start from and, for a run
        interrupted inside an epoch, where in it to go on."""
        state = load_train_state(path)
        try:
            if "model" in state:  # the weights saved with this state: a kill between the
                self.model.load_state_dict(state["model"])  # two files cannot mix epochs
            self.optimizer.load_state_dict(state["optimizer"])
            self.shuffle.set_state(state["shuffle_rng"])
            torch.set_rng_state(state["torch_rng"])
            self.history = list(state["history"])
            self.best = dict(state["best"])
            self.bad_epochs = int(state["bad_epochs"])
            start = int(state["epoch"]) + 1
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CnnlensError(f"{path}: training state does not fit this run ({exc}); "
                               "start again with --overwrite") from None
        partial = state.get("partial")
        if partial is not None:
            start = int(partial["epoch"])
        self.stopped_early = bool(state.get("stopped_early"))
        return (epochs if self.stopped_early else start), partial

    def record(self, stats: dict[str, Any], epoch: int, has_val: bool, patience: int | None
               ) -> bool:
        """Add an epoch's metrics; True when it improved the validation loss. With
        ``patience`` (early stopping), ``stopped_early`` says whether to stop now."""
        self.history.append(stats)
        improved = stats.get("val_loss", math.inf) < self.best["val_loss"]
        if improved:
            self.best = {"val_loss": stats["val_loss"], "epoch": epoch}
            self.bad_epochs = 0
        elif has_val:
            self.bad_epochs += 1
        self.stopped_early = patience is not None and self.bad_epochs >= patience
        return improved


__all__ = ["TrainState"]
