"""``cnnlens run``: the main job, every stage into one run folder (:func:`cnnlens.pipeline.run`)."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlens.cli._common import (
    CliProgress,
    add_trained_options,
    add_training_options,
    info,
    run_options_from_args,
)

#: The stage options ``cnnlens run`` offers (the rest keep their defaults; each stage's
#: command has them all).
EVALUATE_IN_RUN = ("tta",)
EXPLAIN_IN_RUN = ("methods", "layer", "score", "limit")
FAITHFULNESS_IN_RUN = ("fracs", "metrics", "baseline", "seed", "sanity", "precision")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cnnlens.cli.options import add_options
    from cnnlens.evaluate.options import EvaluateOptions
    from cnnlens.explain.options import ExplainOptions
    from cnnlens.faithfulness.options import FaithfulnessOptions
    from cnnlens.report.options import ReportOptions

    p = sub.add_parser(
        "run", help="train (or import), evaluate, explain, score and report in one go",
        description="Run the whole pipeline into one run folder: train (or --from-keras "
        "import) -> evaluate -> explain -> faithfulness -> report. Starting it again on the "
        "same folder and options continues where it stopped. Training options change "
        "training only; the later stages have their own options below (--device and "
        "--data-dir apply to every stage).")
    add_training_options(p)
    p.add_argument("--from-keras", default=None, metavar="FILE.h5",
                   help="import this trained Keras 2 HDF5 model instead of training")
    add_trained_options(p)
    p.add_argument("--pretrained", action="store_true",
                   help="use the task's shipped trained best model (mnist1d, hmt) instead of "
                   "training")
    p.add_argument("--out", default=None, help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of another config in --out")
    e = p.add_argument_group("evaluate, explain and faithfulness (see cnnlens evaluate / "
                             "explain / faithfulness --help for the rest)")
    add_options(e, EvaluateOptions, only=EVALUATE_IN_RUN)
    add_options(e, ExplainOptions, only=EXPLAIN_IN_RUN)  # the stages' own declarations
    add_options(e, FaithfulnessOptions, only=FAITHFULNESS_IN_RUN, prefix="faithfulness_",
                flags={"seed": ("--faithfulness-seed",),  # --seed and --precision are
                       "precision": ("--faithfulness-precision",)})  # training's here
    add_options(e, ReportOptions, only=("max_image_px", "explorer_limit"))
    p.set_defaults(func=main)


def options_from_args(args: argparse.Namespace) -> Any:
    """The pipeline options this command line asks for (the Python API takes the same)."""
    from cnnlens.cli.options import options_from_args as stage_options
    from cnnlens.evaluate.options import EvaluateOptions
    from cnnlens.explain.options import ExplainOptions
    from cnnlens.faithfulness.options import FaithfulnessOptions
    from cnnlens.report.options import ReportOptions

    evaluate = stage_options(EvaluateOptions, args, only=EVALUATE_IN_RUN)
    explain = stage_options(ExplainOptions, args, only=EXPLAIN_IN_RUN)
    # methods, layer and limit follow explain's (the runner applies them)
    faithfulness = stage_options(FaithfulnessOptions, args, only=FAITHFULNESS_IN_RUN,
                                 prefix="faithfulness_")
    report = stage_options(ReportOptions, args, only=("max_image_px", "explorer_limit"))
    return run_options_from_args(args, evaluate=evaluate, explain=explain,
                                 faithfulness=faithfulness, report=report)


def main(args: argparse.Namespace) -> int:
    from cnnlens.pipeline.runner import run

    opts = options_from_args(args)
    unit = "signal" if opts.task in ("mnist1d", "signals") else "img"
    progress = CliProgress(unit)
    result = run(opts, out=args.out, overwrite=args.overwrite, progress=progress)
    info(f"run folder: {result.path}")
    print_result(result)
    return 0


def print_result(result: Any) -> None:
    """Accuracy per class, the faithfulness table and where the report is."""
    from cnnlens.cli.evaluate import print_summary
    from cnnlens.cli.faithfulness import print_results

    if result.evaluation:
        print_summary(result.evaluation, result.path / "eval")
    if result.faithfulness:
        print_results(result.faithfulness, result.path / "faithfulness", tests=False)
    if result.report:
        info(f"report: {result.report}")
    times = ", ".join(f"{k} {v['seconds']:.1f} s" if v["status"] == "ran" else f"{k} skipped"
                      for k, v in result.stages.items())
    if times:
        info(f"stages: {times}")
    if result.accuracy is not None:
        info(f"done: {result.path} — test accuracy {result.accuracy:.4f}")
