"""The stage list: name, skip rule, entry point and result of every stage, in order.

Each stage module owns its options (a frozen dataclass), its skip rule ``is_done(run,
options)`` and its entry ``run_stage``. This table names them, with how the runner calls
each and where a run's result keeps what it returned; :mod:`.runner` drives them in order
without knowing any stage by name. Stages are imported normally: a stage that cannot be
imported is an error, never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnlens.distributed import Ranks
from cnnlens.evaluate import stage as evaluate_stage
from cnnlens.explain import stage as explain_stage
from cnnlens.faithfulness import stage as faithfulness_stage
from cnnlens.fileio import read_json
from cnnlens.progress import Progress
from cnnlens.report import stage as report_stage
from cnnlens.rundir.folder import RunDir


@dataclass(frozen=True)
class StageCall:
    """What every stage is called with: the run folder, its options, the data, where to
    report progress, the processes, the device and the run's config (read or written once
    by the runner; a stage given None reads ``config.json`` itself)."""

    run: RunDir
    options: Any  # the stage's own options object (None for train)
    data: Any  # the run's TaskData, loaded once
    progress: Progress
    ranks: Ranks
    device: Any  # the resolved torch.device (the run's --device for evaluate)
    train_hooks: tuple[Any, ...] = ()  # epoch hooks for training (TensorBoard CAM images)
    config: Mapping[str, Any] | None = None


def _trained(run: RunDir, _options: Any = None) -> bool:
    """Training is done when ``checkpoints/model.json`` exists (written last)."""
    return run.is_trained()


def _train(call: StageCall) -> None:
    from cnnlens.train.loop import train_run

    train_run(call.run, data=call.data, resume=True, callback=call.progress.training(),
              hooks=call.train_hooks, config=call.config)


def _evaluate(call: StageCall) -> dict[str, Any]:
    return evaluate_stage.run_stage(call.run, call.options, device=call.device, data=call.data,
                                    config=call.config)


def _explain(call: StageCall) -> dict[str, Any]:
    summary = explain_stage.run_stage(call.run, call.options, device=call.device,
                                      data=call.data, progress=call.progress.update,
                                      config=call.config)
    for note in summary.get("notes") or []:
        call.progress.note(note)
    return summary


def _faithfulness(call: StageCall) -> dict[str, Any]:
    return faithfulness_stage.run_stage(call.run, call.options, device=call.device,
                                        data=call.data, progress=call.progress.update,
                                        config=call.config)


def _report(call: StageCall) -> Any:
    return call.ranks.on_main(lambda: report_stage.run_stage(call.run, call.options,
                                                             config=call.config))


def _read_results(run: RunDir) -> dict[str, Any] | None:
    done = read_json(run.faithfulness_dir / "results.json")
    return done if isinstance(done, dict) else None


@dataclass(frozen=True)
class Stage:
    """One stage: its name, what it writes, its skip rule, the stages whose outputs it
    reads (when one of those ran again, this one runs again whatever its skip rule says),
    how to run it, and the field of the run's result that keeps what it returned (read back
    from its files when it is skipped)."""

    name: str
    writes: str
    is_done: Callable[[RunDir, Any], bool]
    reads: tuple[str, ...] = ()
    run: Callable[[StageCall], Any] = _train
    result: str | None = None  # RunResult field
    read: Callable[[RunDir], Any] | None = None  # the result of a skipped stage


STAGES: dict[str, Stage] = {
    "train": Stage("train", "checkpoints/, tb/, train/", _trained),
    "evaluate": Stage("evaluate", "eval/", evaluate_stage.is_done, ("train",), _evaluate,
                      "evaluation", evaluate_stage.read_metrics),
    "explain": Stage("explain", "cams/", explain_stage.is_done, ("train",), _explain,
                     "explain", lambda run: explain_stage.read_summary(run.path)),
    "faithfulness": Stage("faithfulness", "faithfulness/", faithfulness_stage.is_done,
                          ("train", "explain"), _faithfulness, "faithfulness", _read_results),
    "report": Stage("report", "report.html", report_stage.is_done,
                    ("train", "evaluate", "explain", "faithfulness"), _report, "report"),
}
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)

__all__ = ["STAGES", "STAGE_NAMES", "Stage", "StageCall"]
