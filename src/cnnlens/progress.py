"""How long work reports progress: base classes the CLI (or a notebook) subclasses.

Pure Python at the bottom of the package, so a front end defines its progress display
without importing torch or any stage (``cnnlens --help`` stays fast).
"""

from __future__ import annotations

from typing import Any


class TrainCallback:
    """Hooks the CLI uses to draw training progress; the library itself prints nothing."""

    def on_epoch_start(self, epoch: int, epochs: int, n_items: int) -> None:
        """Called before the first batch of a (0-based) epoch."""

    def on_batch_end(self, n_items: int, loss: float, acc: float) -> None:
        """Called after each optimisation step with the batch size and running means."""

    def on_epoch_end(self, stats: dict[str, Any]) -> None:
        """Called with the epoch's metrics after its checkpoint is written."""


class Progress:
    """Where the pipeline reports what it does; the default ignores everything.

    The CLI subclasses it to print stage lines and progress bars.
    """

    def stage(self, name: str, status: str, detail: str = "") -> None:
        """``status`` is ``"start"``, ``"skipped"`` (detail says why) or ``"done"``."""

    def note(self, text: str) -> None:
        """A line worth showing (e.g. which CAM layer was chosen automatically)."""

    def update(self, what: str, done: int, total: int) -> None:
        """Progress inside a stage (``what``: ``cams``, ``figures``, ``metrics``, ...)."""

    def training(self) -> TrainCallback:
        """The training loop's per-batch callback."""
        return TrainCallback()


__all__ = ["Progress", "TrainCallback"]
