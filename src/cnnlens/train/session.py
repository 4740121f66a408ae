"""What every epoch of one training run shares, and the Ctrl-C flag its batches check.

Kept apart from the loop so that the epoch (:mod:`cnnlens.train.epoch`) and the run around
it (:mod:`cnnlens.train.loop`) can both use it without importing each other.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnlens.data import TaskData
from cnnlens.distributed import Ranks
from cnnlens.progress import TrainCallback
from cnnlens.rundir.folder import RunDir
from cnnlens.train.recipes import Recipe
from cnnlens.train.state import TrainState

if TYPE_CHECKING:
    from cnnlens.train.loop import EpochHook


class StopFlag:
    """SIGINT sets a flag the loop checks at each batch boundary (main thread only)."""

    def __init__(self) -> None:
        self.set = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
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


@dataclass
class Session:
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
    stop: StopFlag = field(default_factory=lambda: StopFlag())
    net: nn.Module | None = None  # the model as trained (DDP-wrapped under torchrun)

    @property
    def state_path(self) -> Path:
        return self.run.checkpoints / "last_state.pt"


__all__ = ["Session", "StopFlag"]
