"""How the pipeline reports progress: a base class the CLI (or a notebook) subclasses.

Kept apart from :mod:`.runner` so a front end can define its progress display without
importing every stage (and their plotting and statistics libraries).
"""

from __future__ import annotations

from cnnlens.train.loop import TrainCallback


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


__all__ = ["Progress"]
