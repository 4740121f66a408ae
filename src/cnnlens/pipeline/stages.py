"""The stage list: name, options type, skip rule and entry point of every stage, in order.

Each stage module owns its options (a frozen dataclass), its skip rule ``is_done(run,
options)`` and its entry ``run_stage``. This table only names them; :mod:`.run` drives them.
Stages are imported normally: a stage that cannot be imported is an error, never skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnlens.evaluate import stage as evaluate_stage
from cnnlens.explain import stage as explain_stage
from cnnlens.faithfulness import stage as faithfulness_stage
from cnnlens.report import stage as report_stage
from cnnlens.rundir.folder import RunDir


def _trained(run: RunDir, _options: Any = None) -> bool:
    """Training is done when ``checkpoints/model.json`` exists (written last)."""
    return run.is_trained()


@dataclass(frozen=True)
class Stage:
    """One stage: its name, what it writes, its skip rule, and the stages whose outputs it
    reads (when one of those ran again, this one runs again whatever its skip rule says)."""

    name: str
    writes: str
    is_done: Callable[[RunDir, Any], bool]
    reads: tuple[str, ...] = ()


STAGES: dict[str, Stage] = {
    "train": Stage("train", "checkpoints/, tb/, train/", _trained),
    "evaluate": Stage("evaluate", "eval/", evaluate_stage.is_done, ("train",)),
    "explain": Stage("explain", "cams/", explain_stage.is_done, ("train",)),
    "faithfulness": Stage("faithfulness", "faithfulness/", faithfulness_stage.is_done,
                          ("train", "explain")),
    "report": Stage("report", "report.html", report_stage.is_done,
                    ("train", "evaluate", "explain", "faithfulness")),
}
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)

__all__ = ["STAGES", "STAGE_NAMES", "Stage"]
