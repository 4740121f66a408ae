"""``cnnlens run``: the main job, every stage into one run folder (:func:`cnnlens.pipeline.run`)."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlens.cli._common import (
    CliProgress,
    add_trained_options,
    add_training_options,
    info,
    number_or_name,
    parse_layer,
    positive_int,
    run_options_from_args,
    split_list,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cnnlens.explain.options import DEFAULT_METHODS, METHOD_NAMES, SCORES
    from cnnlens.faithfulness.options import METRIC_NAMES

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
    add_trained_options(p, run_dir=False)
    p.add_argument("--pretrained", action="store_true",
                   help="use the task's shipped trained best model (mnist1d, hmt) instead of "
                   "training")
    p.add_argument("--out", default=None, help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of another config in --out")
    e = p.add_argument_group("explain and faithfulness")
    e.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help=f"CAM methods (space- or comma-separated) of {', '.join(METHOD_NAMES)} "
                   f"(default: {' '.join(DEFAULT_METHODS)})")
    e.add_argument("--layer", default=None,
                   help="CAM layer for all methods (NAME) or per method (gradcam=NAME,...); "
                   "default: the model's (the study's layers), or for your own model the last "
                   "conv-like layer with spatial output (printed)")
    e.add_argument("--score", choices=SCORES, default=None,
                   help="score the CAMs explain (default: the model's; the study's models: "
                   "logit for MNIST-1D, prob for HMT as the Keras models differentiated)")
    e.add_argument("--limit", type=positive_int, default=None,
                   help="explain and score only the first N samples of the test split")
    e.add_argument("--frac", nargs="+", type=float, default=None, metavar="F",
                   help="kept fraction(s) of the drop/increase rate (default: 0.9 for hmt, "
                   "0.15 and 0.3 for mnist1d)")
    e.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                   help=f"faithfulness metrics ({', '.join(METRIC_NAMES)}; default: all for "
                   "signals, drop_increase for images; more cost time: see cnnlens faithfulness "
                   "--help)")
    e.add_argument("--baseline", default="zero",
                   help="what removed positions become in the metrics: zero (the study), mean, a "
                   "number, or road (noisy linear imputation from the neighbours)")
    e.add_argument("--faithfulness-seed", type=int, default=0,
                   help="seed of the random baseline maps and the bootstrap (0)")
    e.add_argument("--no-sanity", action="store_true",
                   help="skip the model-randomization sanity check")
    e.add_argument("--max-image-px", type=int, default=None,
                   help="downscale report figures larger than this (0: full size)")
    p.set_defaults(func=main)


def options_from_args(args: argparse.Namespace) -> Any:
    """The pipeline options this command line asks for (the Python API takes the same)."""
    from cnnlens.explain.options import ExplainOptions
    from cnnlens.faithfulness.options import FaithfulnessOptions
    from cnnlens.report.images import DEFAULT_MAX_IMAGE_PX
    from cnnlens.report.stage import ReportOptions

    methods = split_list(args.methods) if args.methods else None
    layer = parse_layer(args.layer)
    explain = ExplainOptions(methods=tuple(methods) if methods else None, layer=layer,
                             score=args.score, limit=args.limit)
    faithfulness = FaithfulnessOptions(  # methods, layer and limit follow explain's (runner)
        fracs=tuple(args.frac) if args.frac else None,
        metrics=tuple(split_list(args.metrics) or ()) or None,
        baseline=number_or_name(args.baseline),
        seed=args.faithfulness_seed, sanity=not args.no_sanity)
    report = ReportOptions(max_image_px=DEFAULT_MAX_IMAGE_PX if args.max_image_px is None
                           else args.max_image_px)
    return run_options_from_args(args, explain=explain, faithfulness=faithfulness,
                                 report=report)


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
