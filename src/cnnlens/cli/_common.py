"""Options and progress display shared by the CLI commands (parsing and printing only)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from tqdm import tqdm

from cnnlens.constraints import NON_NEGATIVE_INT, POSITIVE_INT, Interval
from cnnlens.errors import CnnlensError
from cnnlens.progress import Progress, TrainCallback


def _int_type(constraint: Interval) -> Callable[[str], int]:
    """An argparse type for integers that ``constraint`` accepts: the library's own words."""
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{value!r} is invalid; accepted: {constraint.describe()}") from None
        if not constraint.accepts(n):
            raise argparse.ArgumentTypeError(
                f"{n} is invalid; accepted: {constraint.describe()}")
        return n

    return parse


#: argparse types: an integer > 0, and an integer >= 0
positive_int = _int_type(POSITIVE_INT)
non_negative_int = _int_type(NON_NEGATIVE_INT)


def split_list(values: Sequence[str] | None) -> list[str] | None:
    """Accept ``a b``, ``a,b`` or a mix of both."""
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def parse_layer(text: str | None) -> str | dict[str, str] | None:
    """``NAME`` for every method, or ``method=NAME,method=NAME`` per method."""
    if text is None:
        return None
    if "=" not in text:
        return text.strip()
    out: dict[str, str] = {}
    for part in text.split(","):
        method, sep, layer = part.partition("=")
        if not sep or not method.strip() or not layer.strip():
            raise CnnlensError(
                f"--layer {text!r}: expected NAME or method=NAME[,method=NAME...], got {part!r}"
            )
        out[method.strip()] = layer.strip()
    return out


def number_or_name(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def image_size(text: str) -> Any:
    """argparse type of ``--image-size``: ``H`` or ``H,W``."""
    from cnnlens.data.resize import parse_image_size

    try:
        return parse_image_size(text)
    except CnnlensError as exc:
        message = str(exc).removeprefix(f"--image-size {text!r}: ")
        raise argparse.ArgumentTypeError(message) from None


def add_image_size_options(p: argparse.ArgumentParser) -> None:
    """``--image-size H[,W]`` and ``--resize``: how image files become the model's input."""
    add_run_options(p, "image_size", "resize")


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Options that define a training run (shared by ``train`` and ``run``): the run-level
    fields of ``RunOptions`` and the recipe overrides, as those dataclasses declare them."""
    from cnnlens.cli.options import add_options
    from cnnlens.train.options import TrainingOverrides

    add_run_options(p, "task", "data_dir", "image_size", "resize", "skip_bad", "model",
                     "recipe")
    add_options(p, TrainingOverrides)  # the recipe overrides, declared in train/options.py
    add_run_options(p, "seed", "tb_cams_every", "device")


def add_run_options(p: Any, *names: str) -> None:
    """The fields ``names`` of :class:`~cnnlens.train.options.TrainingRunOptions` as flags,
    in the order given (help lists them so)."""
    from cnnlens.cli.options import add_options
    from cnnlens.train.options import TrainingRunOptions

    for name in names:
        add_options(p, TrainingRunOptions, only=(name,))


def skip_bad_data(args: argparse.Namespace) -> Any:
    """With ``--skip-bad`` on a stage command, the run's data loaded skipping bad images
    (their list is printed); otherwise None (the stage loads the data itself)."""
    if not getattr(args, "skip_bad", False):
        return None
    from cnnlens.rundir.folder import RunDir

    data = RunDir(args.run_dir).load_data(data_dir=args.data_dir, augment=False, skip_bad=True)
    print_skipped(data.info.get("skipped") or [])
    return data


def print_skipped(skipped: list[dict[str, str]]) -> None:
    """List the files ``--skip-bad`` left out, with the reason each was unreadable."""
    if skipped:
        info(f"skipped {len(skipped)} unreadable image file(s) (--skip-bad):")
        for entry in skipped:
            info(f"  {entry['path']}: {entry['error'].split(': ', 1)[-1]}")


def add_pretrained_option(p: argparse.ArgumentParser) -> None:
    """``--pretrained TASK`` for commands that take a RUN_DIR (explain, faithfulness)."""
    p.add_argument("--pretrained", default=None, metavar="TASK",
                   help="make RUN_DIR from the task's shipped trained best model (mnist1d, "
                   "hmt) if it holds no run yet; hmt also needs --data-dir")


def prepare_pretrained(args: argparse.Namespace) -> None:
    """Create ``args.run_dir`` from shipped weights when ``--pretrained`` asks for it."""
    if getattr(args, "pretrained", None) is None:
        return
    from cnnlens.pipeline.pretrained import pretrained_run

    run = pretrained_run(args.run_dir, args.pretrained, data_dir=args.data_dir)
    info(f"run folder {run.path}: the shipped {args.pretrained} model")


def add_trained_options(p: argparse.ArgumentParser) -> None:
    """``--weights FILE`` and the model's contract for ``--model SOURCE``: a model trained
    elsewhere, explained without training (declared in :mod:`cnnlens.models.options`)."""
    from cnnlens.cli.options import add_options
    from cnnlens.models.options import TrainedModelOptions

    add_options(p, TrainedModelOptions)


def add_model_source_options(p: argparse.ArgumentParser) -> None:
    """For commands that take a RUN_DIR: make it from a model trained elsewhere."""
    g = p.add_argument_group("a model trained elsewhere (makes RUN_DIR if it holds no run)")
    g.add_argument("--model", default=None, metavar="SOURCE",
                   help="a trained model file (.onnx, .pt2, .h5, a pickled .pt with "
                   "--trust-pickle) or a builder (module:function, file.py:function) with "
                   "--weights")
    g.add_argument("--task", default=None,
                   help="the data's task (images, signals, hmt, mnist1d) for --model")
    add_image_size_options(g)  # type: ignore[arg-type]
    add_trained_options(g)  # type: ignore[arg-type]


def prepare_trained(args: argparse.Namespace) -> None:
    """Create ``args.run_dir`` from a model trained elsewhere when ``--model`` asks for it."""
    if getattr(args, "model", None) is None:
        for flag in ("weights", "normalize", "output"):
            if getattr(args, flag, None) is not None:
                raise CnnlensError(f"--{flag} describes --model SOURCE; give --model too")
        return
    if getattr(args, "pretrained", None) is not None:
        raise CnnlensError("--model and --pretrained both name the model; give one")
    if args.task is None:
        raise CnnlensError("--model needs --task (images, signals, hmt or mnist1d) to read "
                           "the data it explains")
    from cnnlens.pipeline.trained import trained_run

    weights, contract = trained_model_options(args)
    run = trained_run(args.run_dir, args.model, weights, task=args.task,
                      data_dir=args.data_dir, image_size=args.image_size, resize=args.resize,
                      device=getattr(args, "device", "auto"), **contract)
    info(f"run folder {run.path}: {args.model} (trained elsewhere; not trained here)")


def trained_model_options(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """``--weights`` and the model's contract as the command line gave them (fields a
    command does not offer keep their defaults)."""
    from dataclasses import asdict

    from cnnlens.cli.options import options_from_args
    from cnnlens.models.options import TrainedModelOptions

    contract = asdict(options_from_args(TrainedModelOptions, args))
    return contract.pop("weights"), contract


def add_device_option(p: argparse.ArgumentParser) -> None:
    """``--device``, as ``RunOptions`` declares it (every stage runs on it)."""
    add_run_options(p, "device")


def run_options_from_args(args: argparse.Namespace, **stage_options: Any) -> Any:
    """The :class:`RunOptions` a parsed ``run``/``train`` command line describes: every field
    the command declares, read as ``RunOptions`` and the dataclasses it inherits declare them
    (a field the command does not offer keeps its default)."""
    from cnnlens.cli.options import options_from_args
    from cnnlens.pipeline.runner import RunOptions

    extra = {name: getattr(args, name) for name in ("from_keras", "pretrained")
             if hasattr(args, name)}  # run's own two, declared in cli/run.py
    return options_from_args(RunOptions, args, **extra, **stage_options)


class TqdmTrainCallback(TrainCallback):
    """One progress bar per epoch with running loss and accuracy, items/s and ETA."""

    def __init__(self, unit: str = "sample") -> None:
        self.unit = unit
        self.bar: tqdm[Any] | None = None

    def on_epoch_start(self, epoch: int, epochs: int, n_items: int) -> None:
        self.bar = tqdm(total=n_items, desc=f"epoch {epoch + 1}/{epochs}", unit=self.unit,
                        leave=False, file=sys.stderr, dynamic_ncols=True,
                        disable=not is_main_process())

    def on_batch_end(self, n_items: int, loss: float, acc: float) -> None:
        if self.bar is not None:
            self.bar.update(n_items)
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", refresh=False)

    def on_epoch_end(self, stats: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        line = (f"epoch {stats['epoch'] + 1}: loss {stats['loss']:.4f} acc {stats['accuracy']:.4f}"
                f" lr {stats['lr']:.3g}")
        if "val_loss" in stats:
            line += f" | val loss {stats['val_loss']:.4f} acc {stats['val_accuracy']:.4f}"
        line += f" | {stats['items_per_s']:.0f} {self.unit}/s"
        if is_main_process():
            tqdm.write(line, file=sys.stderr)


class Bars:
    """One tqdm bar per named piece of work (``cams``, ``figures``, ``metrics``, ...)."""

    UNITS: ClassVar[dict[str, str]] = {"cams": "map", "figures": "figure"}

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.bars: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        bar = self.bars.get(what)
        if bar is None:
            bar = self.bars[what] = tqdm(total=total, desc=f"{self.prefix}{what}",
                                         unit=self.UNITS.get(what, "it"), leave=False,
                                         file=sys.stderr, dynamic_ncols=True,
                                         disable=not is_main_process())
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


class CliProgress(Progress):
    """Stage lines on stdout, bars on stderr."""

    def __init__(self, unit: str = "sample") -> None:
        self.unit = unit
        self.bars = Bars()

    def stage(self, name: str, status: str, detail: str = "") -> None:
        if status == "start":
            info(f"== {name}")
        elif status == "skipped":
            info(f"== {name}: {detail or 'already done'}")
        else:
            self.bars.close()
            info(f"   {name} done ({detail})" if detail else f"   {name} done")

    def note(self, text: str) -> None:
        info(text)

    def update(self, what: str, done: int, total: int) -> None:
        self.bars(what, done, total)

    def training(self) -> TrainCallback:
        return TqdmTrainCallback(self.unit)


def is_main_process() -> bool:
    """False on the ranks other than 0 of a ``torchrun`` job: only rank 0 draws progress."""
    from cnnlens.distributed import env_rank

    return env_rank() == 0


def info(message: str) -> None:
    """A line of CLI output (stdout)."""
    print(message, flush=True)
