"""The main job from Python: train (or import) → evaluate → explain → faithfulness → report.

>>> from cnnlens.pipeline import run
>>> result = run(task="mnist1d", epochs=5, out="runs/quick")
>>> result.accuracy, result.report

Every stage reads the previous stage's artifacts from the run folder, so a run started
again on the same folder and options continues where it stopped: each stage's own
``is_done`` decides whether it is skipped. The data are loaded (and images decoded) once
for all stages. Nothing here prints: progress goes to a :class:`Progress` object.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cnnlens.constraints import FRACTION, NON_NEGATIVE_INT, check
from cnnlens.data import SPLITS, TaskData
from cnnlens.distributed import Ranks, setup
from cnnlens.errors import CnnlensError, check_interrupted
from cnnlens.evaluate.options import EvaluateOptions
from cnnlens.explain.options import ExplainOptions
from cnnlens.faithfulness.options import FaithfulnessOptions
from cnnlens.models.options import TrainedModelOptions
from cnnlens.pipeline.config import resolve_run_config
from cnnlens.pipeline.create import locked_run_dir
from cnnlens.pipeline.keras_run import write_imported
from cnnlens.pipeline.stages import STAGE_NAMES, STAGES, StageCall
from cnnlens.pipeline.trained import is_trained_source
from cnnlens.progress import Progress
from cnnlens.report.options import ReportOptions
from cnnlens.rundir import RunDir
from cnnlens.train.loop import EpochHook
from cnnlens.train.options import TRAINING_FIELDS, TrainingOverrides, TrainingRunOptions


@dataclass(frozen=True)
class RunOptions(TrainingRunOptions, TrainingOverrides, TrainedModelOptions):
    """Everything ``cnnlens run`` accepts, as one value (the CLI builds exactly this).

    Run-level: the task and its data, the model (registry name, ``module:function`` or
    ``file.py:function``), recipe and training overrides (the fields of
    :class:`~cnnlens.train.options.TrainingOverrides`), a trained model's weights and
    contract (:class:`~cnnlens.models.options.TrainedModelOptions`), seed and device.
    Stage-level:
    ``evaluate``, ``explain``, ``faithfulness`` and ``report`` each have their own options,
    so nothing set for training changes another stage. ``device`` and ``data_dir`` are
    shared by every stage (documented: they say where to run and where the data is).
    ``from_keras`` imports a trained Keras file instead of training; ``pretrained`` takes
    the task's shipped ``best`` model (:mod:`cnnlens.pipeline.pretrained`); a ``model`` that
    is a trained model file (``.onnx``, ``.pt2``, ``.h5``, a pickle with ``trust_pickle``)
    or a builder with ``weights`` is explained as it is (:mod:`cnnlens.pipeline.trained`).
    """

    cache_dir: str | None = None
    from_keras: str | None = None  # import this trained Keras file instead of training
    pretrained: bool = False  # the task's shipped best model instead of training
    evaluate: EvaluateOptions = field(default_factory=EvaluateOptions)
    explain: ExplainOptions = field(default_factory=ExplainOptions)
    faithfulness: FaithfulnessOptions = field(default_factory=FaithfulnessOptions)
    report: ReportOptions = field(default_factory=ReportOptions)

    def validate(self) -> None:
        """Check every stage's options before any work starts."""
        check(self.val_fraction, "--val-fraction", FRACTION, optional=True)
        if self.from_keras is not None and any(
            getattr(self, k) is not None for k in TRAINING_FIELDS
        ):
            raise CnnlensError("--from-keras imports a trained model: training options "
                               "(--epochs, --lr, ...) do not apply")
        if is_trained_source(self.model, self.weights):
            given = [k for k in TRAINING_FIELDS if getattr(self, k) is not None]
            if given or self.from_keras is not None or self.pretrained:
                what = ", ".join(f"--{k.replace('_', '-')}" for k in given) or (
                    "--from-keras" if self.from_keras is not None else "--pretrained")
                raise CnnlensError(f"--model {self.model} is a trained model (no training): "
                                   f"{what} does not apply")
            if self.model is None:
                raise CnnlensError("--weights needs --model: the builder (module:function or "
                                   "file.py:function) or registry name the weights belong to")
        for name in ("normalize", "output", "standardize", "grayscale", "class_names"):
            value = getattr(self, name)  # output 0 is a choice: compare by identity
            if value is not None and value is not False and not is_trained_source(
                    self.model, self.weights):
                raise CnnlensError(f"--{name} describes a trained model (--model FILE, or a "
                                   "builder with --weights)")
        check(self.tb_cams_every, "--tb-cams-every", NON_NEGATIVE_INT, optional=True)
        self.evaluate.validate()
        self.explain.validate()
        self.faithfulness.validate()
        self.report.validate()


@dataclass
class RunResult:
    """What a pipeline run produced: paths, accuracy, stage summaries and timings."""

    path: Path
    config: dict[str, Any]
    accuracy: float | None = None
    evaluation: dict[str, Any] | None = None
    explain: dict[str, Any] | None = None
    faithfulness: dict[str, Any] | None = None
    report: Path | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def faithfulness_summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Mean and 95 % interval per method and metric (empty before faithfulness ran)."""
        return dict((self.faithfulness or {}).get("summary") or {})


def options_from(base: RunOptions | None, fields_: dict[str, Any]) -> RunOptions:
    """``base`` with ``fields_`` replaced; an unknown name is an error listing the valid ones."""
    opts = base or RunOptions()
    valid = {f.name for f in fields(RunOptions)}
    unknown = sorted(set(fields_) - valid)
    if unknown:
        raise CnnlensError(f"unknown run option(s) {', '.join(unknown)}; valid: "
                           f"{', '.join(sorted(valid))}")
    opts = replace(opts, **fields_) if fields_ else opts
    # faithfulness scores the methods, layer, score and samples explain was asked for
    return replace(opts, faithfulness=opts.faithfulness.following(opts.explain))


def run_config(options: RunOptions) -> tuple[dict[str, Any], Any]:
    """The run's config (and, for ``from_keras``/``pretrained``/a trained model, the model
    and its sidecar): :func:`~cnnlens.pipeline.config.resolve_run_config`'s values."""
    resolved = resolve_run_config(options)
    return resolved.values, resolved.imported


def _cam_logger(options: RunOptions, cfg: Mapping[str, Any], data: TaskData
                ) -> list[EpochHook]:
    from cnnlens.explain.tensorboard import CamImageLogger
    from cnnlens.models import MODELS
    from cnnlens.train.recipes import epochs_for, get_recipe

    every = options.tb_cams_every
    if every == 0 or len(data.test) == 0:  # type: ignore[arg-type]
        return []
    if every is None:
        epochs = cfg.get("epochs") or epochs_for(get_recipe(options.recipe, cfg["task"]),
                                                   cfg["task"])
        every = max(1, int(epochs) // 10)
    spec = MODELS.get(cfg["model"])
    layer = spec.cam_layer if spec is not None else None
    if isinstance(options.explain.layer, str):
        layer = options.explain.layer
    return [CamImageLogger(data.eval_split("test"), list(data.class_names), kind=data.kind,
                           layer=layer, every=every)]


def run(
    options: RunOptions | None = None,
    /,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    stages: Sequence[str] = STAGE_NAMES,
    **fields_: Any,
) -> RunResult:
    """Run the pipeline into run folder ``out`` (default ``runs/<task>-<timestamp>``).

    ``options`` or keyword fields of :class:`RunOptions` (``run(task="mnist1d", epochs=5)``)
    say what to run; ``stages`` picks a prefix or subset of ``train, evaluate, explain,
    faithfulness, report``. A folder holding a run of another config is refused unless
    ``overwrite``. Returns a :class:`RunResult`.

    Under ``torchrun`` every process runs this: training uses DistributedDataParallel, the
    evaluate, explain and faithfulness stages shard the samples, and rank 0 alone writes
    (the folder, checkpoints, outputs, the report) and reports ``progress``. ``out`` is
    then required, so that a restarted job finds its run folder again and resumes.
    """
    opts = options_from(options, fields_)
    opts.validate()
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise CnnlensError(f"unknown stage(s) {', '.join(unknown)}; valid: "
                           f"{', '.join(STAGE_NAMES)}")
    ranks, _ = setup(_device(opts.device))
    if ranks.active and out is None:
        raise CnnlensError("--out is required with several processes (torchrun): every "
                           "process, and every restart, must use the same run folder")
    prog = (progress or Progress()) if ranks.is_main else Progress()
    resolved = resolve_run_config(opts)  # the task looked up once, here
    _check_tta(opts.evaluate.tta, resolved)
    data = resolved.load_data()
    imported = resolved.imported
    trains = ("train" in stages and imported is None
              and not (out is not None and RunDir(out).is_trained()))
    # every bad file named before the run folder is touched (only the splits this run reads)
    data.check_readable(SPLITS if trains else (opts.evaluate.split,))
    for entry in data.info.get("skipped") or []:
        prog.note(f"skipped unreadable image (--skip-bad): {entry['error']}")
    with contextlib.ExitStack() as held:
        # rank 0 creates the folder under its lock (held to the end) and sends every process
        # the config it holds (read when continuing, else as written): no stage reads it again
        path, stored = ranks.on_main(lambda: _opened(held.enter_context(
            locked_run_dir(out, resolved.values, overwrite=overwrite))))
        run_dir = RunDir(path)
        result = RunResult(path=run_dir.path, config=copy.deepcopy(stored))
        if imported is not None:
            ranks.on_main(lambda: None if run_dir.is_trained()
                          else write_imported(run_dir, *imported))
        config = MappingProxyType(stored)  # shared by the stages, read-only
        for name in STAGE_NAMES:
            if name not in stages:
                continue
            _run_stage(name, run_dir, opts, data, prog, result, ranks, config)
    return result


def _check_tta(tta: str, resolved: Any) -> None:
    """Refuse a test-time augmentation the data cannot take before anything trains."""
    if tta == "none":
        return
    size = (resolved.values.get("data") or {}).get("image_size")
    sides = [size, size] if isinstance(size, int) else list(size or [])
    if resolved.spec.kind != "image" or len(sides) != 2 or sides[0] != sides[1]:
        what = (f"{sides[0]}x{sides[1]} images" if resolved.spec.kind == "image" and sides
                else f"{resolved.spec.kind} data")
        raise CnnlensError(f"--tta {tta} needs square images; this run has {what} "
                           "(use --tta none, or a square --image-size)")


def _opened(opened: tuple[RunDir, dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """The folder's path and config, as rank 0 sends them to the other processes."""
    run_dir, stored = opened
    return run_dir.path, stored


def _run_stage(name: str, run_dir: RunDir, opts: RunOptions, data: TaskData, prog: Progress,
               result: RunResult, ranks: Ranks, config: Mapping[str, Any]) -> None:
    stage = STAGES[name]
    options = getattr(opts, name, None)  # RunOptions has one options field per stage
    check_interrupted()  # a Ctrl-C whose KeyboardInterrupt was lost in a finalizer
    t0 = time.perf_counter()
    # A stage whose inputs were just rewritten runs again; otherwise its skip rule decides
    # (rank 0 decides for all: every process must run or skip the same stages).
    upstream_ran = any(result.stages.get(s, {}).get("status") == "ran" for s in stage.reads)
    if not upstream_ran and ranks.on_main(lambda: stage.is_done(run_dir, options)):
        detail = "already done"
        if name == "train" and (opts.from_keras or opts.pretrained
                                or is_trained_source(opts.model, opts.weights)):
            detail = "shipped pretrained model" if opts.pretrained else "imported model"
        prog.stage(name, "skipped", detail)
        result.stages[name] = {"status": "skipped", "seconds": 0.0}
        if stage.result is not None and stage.read is not None:
            _keep(result, stage.result, stage.read(run_dir))
        return
    prog.stage(name, "start")
    hooks: tuple[EpochHook, ...] = ()
    if name == "train":
        note = _resume_note(run_dir) if ranks.is_main else None
        if note:
            prog.note(note)
        hooks = tuple(_cam_logger(opts, config, data))
    device = opts.device if name == "evaluate" else _device(opts.device)
    out = stage.run(StageCall(run_dir, options, data, prog, ranks, device, hooks, config))
    if stage.result is not None:
        _keep(result, stage.result, out)
    seconds = time.perf_counter() - t0
    result.stages[name] = {"status": "ran", "seconds": seconds}
    prog.stage(name, "done", f"{seconds:.1f} s")


def _keep(result: RunResult, field_name: str, value: Any) -> None:
    """Store a stage's result (the evaluation also gives the run's accuracy)."""
    setattr(result, field_name, value)
    if field_name == "evaluation" and value is not None:
        result.accuracy = float(value["accuracy"])


def _resume_note(run_dir: RunDir) -> str | None:
    """Where a resumed training run continues (from its training state), if it does."""
    from cnnlens.rundir.checkpoint import load_train_state

    path = run_dir.checkpoints / "last_state.pt"
    if not path.is_file():
        return None
    try:
        state = load_train_state(path)
        partial = state.get("partial")
        if partial:
            return (f"resuming training in epoch {int(partial['epoch']) + 1} after batch "
                    f"{int(partial['batches'])}")
        return (f"resuming training after epoch {int(state['epoch']) + 1} (the last complete "
                "checkpoint)")
    except (CnnlensError, KeyError, TypeError, ValueError):
        return None  # train_run names the problem


def _device(name: str) -> Any:
    from cnnlens.device import resolve_device

    return resolve_device(name)


__all__ = ["Progress", "RunOptions", "RunResult", "options_from", "run", "run_config"]
