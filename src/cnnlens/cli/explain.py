"""``cnnlens explain RUN_DIR``: class activation maps for a trained run, with figures.

``cnnlens explain --inputs PATH ... --model SOURCE --out OUT``: the same maps for loose
files and a model trained elsewhere, with no labels and no run folder
(:func:`cnnlens.pipeline.loose.explain_inputs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlens.cli._common import (
    Bars,
    add_device_option,
    add_pretrained_option,
    info,
    non_negative_int,
    number_or_name,
    parse_layer,
    positive_int,
    prepare_pretrained,
    print_skipped,
    skip_bad_data,
    split_list,
    trained_model_options,
)
from cnnlens.errors import CnnlensError


def register(subparsers: Any) -> None:
    from cnnlens.cli.options import add_options
    from cnnlens.explain.options import ExplainOptions

    p: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="compute CAMs for a trained run and draw them",
        description="Compute class activation maps of the predicted class for a split of a "
        "trained run; writes RUN_DIR/cams/<method>.npz, summary.json and PNG galleries "
        "(per class and for failures). Methods at the same layer share their passes. "
        "With --inputs instead of RUN_DIR: explain loose image files, folders and "
        ".npy/.npz signals with --model (no labels); writes OUT/overlays/, "
        "OUT/predictions.csv and OUT/index.html.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", default=None,
                   help="a trained cnnlens run folder (not with --inputs)")
    add_pretrained_option(p)
    add_options(p, ExplainOptions)  # every stage option, declared in the dataclass
    add_device_option(p)
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images, listing them")
    p.add_argument("--data-dir", "--data", dest="data_dir", default=None,
                   help="data folder (or .npz), if it moved since training")
    _add_inputs_options(p)
    p.set_defaults(func=run)


def _add_inputs_options(p: argparse.ArgumentParser) -> None:
    from cnnlens.cli.options import add_options
    from cnnlens.faithfulness.options import LABEL_FREE_BASELINE as DEFAULT_BASELINE
    from cnnlens.faithfulness.options import LABEL_FREE_STEPS as DEFAULT_STEPS
    from cnnlens.models.options import TrainedModelOptions

    g = p.add_argument_group("a model trained elsewhere: loose inputs (no RUN_DIR, no labels), "
                             "or RUN_DIR made from it with --task")
    g.add_argument("--task", default=None,
                   help="with RUN_DIR and --model: the data's task (images, signals, hmt, "
                   "mnist1d)")
    g.add_argument("--inputs", nargs="+", default=None, metavar="PATH",
                   help="image files, folders (recursive) and .npy/.npz signals to explain")
    g.add_argument("--model", default=None, metavar="SOURCE",
                   help="the trained model: .onnx, .pt2, .h5, a pickled .pt with "
                   "--trust-pickle, or a builder (module:function, file.py:function) with "
                   "--weights")
    add_options(g, TrainedModelOptions, only=("weights", "trust_pickle", "normalize"))
    g.add_argument("--out", default=None, metavar="OUT", help="output folder")
    g.add_argument("--image-size", type=positive_int, default=None,
                   help="resize images to this square size (default: the model's declared "
                   "input size, else 224)")
    g.add_argument("--target", default=None, metavar="CLASS",
                   help="explain this class (name or index) instead of the predicted one")
    g.add_argument("--top-k", type=positive_int, default=3, help="predictions listed (3)")
    add_options(g, TrainedModelOptions, only=("class_names",))
    g.add_argument("--faithfulness-steps", type=non_negative_int, default=DEFAULT_STEPS,
                   metavar="N", help="chunks per deletion/insertion curve; each costs 2 "
                   f"forward passes per input and map (default {DEFAULT_STEPS}; 0: off)")
    g.add_argument("--faithfulness-baseline", default=DEFAULT_BASELINE,
                   type=number_or_name, metavar="BASE",
                   help=f"value of removed positions: mean, zero or a number "
                   f"(default {DEFAULT_BASELINE})")


_INPUT_ONLY = ("out", "target")
_RUN_ONLY = ("pretrained", "data_dir", "limit", "task")


def run(args: argparse.Namespace) -> int:
    if args.inputs is not None:
        return run_inputs(args)
    given = [f"--{n.replace('_', '-')}" for n in _INPUT_ONLY if getattr(args, n) is not None]
    if args.run_dir is None or given:
        raise CnnlensError(
            (f"{', '.join(given)} need(s) --inputs" if given else "RUN_DIR is missing")
            + "; give a run folder (cnnlens explain RUN_DIR, or RUN_DIR --model SOURCE "
            "--task TASK to make it) or loose files "
            "(cnnlens explain --model SOURCE --inputs PATH ... --out OUT)")
    _make_run_from_model(args)
    from cnnlens.cli.options import options_from_args
    from cnnlens.device import resolve_device
    from cnnlens.explain.options import ExplainOptions
    from cnnlens.explain.stage import run_explain
    from cnnlens.rundir.folder import RunDir

    prepare_pretrained(args)
    bars = Bars("explain ")
    data = skip_bad_data(args)
    try:
        summary = run_explain(args.run_dir, options_from_args(ExplainOptions, args),
                              device=resolve_device(args.device), data_dir=args.data_dir,
                              progress=bars, data=data)
    finally:
        bars.close()
    print_summary(summary, RunDir(args.run_dir))
    return 0


def _make_run_from_model(args: argparse.Namespace) -> None:
    """RUN_DIR mode with ``--model``: make RUN_DIR from the trained model, as evaluate and
    faithfulness do (the loose-inputs options that also describe the model apply)."""
    if args.model is None:
        for flag in ("weights", "normalize", "image_size", "class_names"):
            if getattr(args, flag) is not None:
                raise CnnlensError(f"--{flag.replace('_', '-')} describes --model SOURCE; "
                                   "give --model too (or --inputs for loose files)")
        return
    if args.pretrained is not None:
        raise CnnlensError("--model and --pretrained both name the model; give one")
    if args.task is None:
        raise CnnlensError("--model with RUN_DIR needs --task (images, signals, hmt or "
                           "mnist1d) to read the data it explains")
    from cnnlens.pipeline.trained import trained_run

    weights, contract = trained_model_options(args)  # the ones explain offers, given
    run = trained_run(args.run_dir, args.model, weights, task=args.task,
                      data_dir=args.data_dir, image_size=args.image_size, device=args.device,
                      **contract)
    info(f"run folder {run.path}: {args.model} (trained elsewhere; not trained here)")


def run_inputs(args: argparse.Namespace) -> int:
    """``--inputs`` mode: check the options, run the library, print what was written."""
    from cnnlens.explain.options import DEFAULT_METHODS
    from cnnlens.pipeline.loose import explain_inputs

    wrong = [f"--{n.replace('_', '-')}" for n in _RUN_ONLY if getattr(args, n) is not None]
    if args.run_dir is not None:
        wrong.insert(0, f"RUN_DIR {args.run_dir}")
    if wrong:
        raise CnnlensError(f"--inputs explains loose files without a run folder; "
                           f"{', '.join(wrong)} cannot be used with it")
    missing = [o for o, v in (("--model", args.model), ("--out", args.out)) if v is None]
    if missing:
        raise CnnlensError(f"--inputs needs {' and '.join(missing)} (the trained model and "
                           "the output folder)")
    bars = Bars("explain ")
    try:
        summary = explain_inputs(
            args.model, args.inputs, args.out, weights=args.weights,
            trust_pickle=args.trust_pickle, normalize=args.normalize,
            methods=split_list(args.methods) or DEFAULT_METHODS, layer=parse_layer(args.layer),
            score=args.score or "logit", image_size=args.image_size, target=args.target,
            top_k=args.top_k, class_names=args.class_names, skip_bad=args.skip_bad,
            faithfulness_steps=args.faithfulness_steps,
            faithfulness_baseline=args.faithfulness_baseline,
            batch_size=args.batch_size or 32, device=args.device, progress=bars)
    finally:
        bars.close()
    print_inputs_summary(summary, Path(args.out))
    return 0


def print_inputs_summary(summary: dict[str, Any], out: Path) -> None:
    if summary["bad"]:
        print_skipped(summary["bad"])
    info(f"explained {summary['n']} input(s) with {len(summary['methods'])} method(s), "
         f"score {summary['score']}, {summary['classes']} classes:")
    for row in summary["faithfulness"]["summary"]:
        info(f"  {row['method']:<12} layer {summary['layers'].get(row['method'], '-'):<16} "
             f"deletion AUC {row['deletion']:.3f}  insertion AUC {row['insertion']:.3f}")
    t = summary["timings"]
    info("  time: " + ", ".join(f"{k} {t[k]:.1f} s" for k in t))
    info(f"overlays: {out / 'overlays'}")
    info(f"predictions: {out / 'predictions.csv'}")
    info(f"page: {out / 'index.html'}")


def print_summary(summary: dict[str, Any], run: Any) -> None:
    cams = run.cams_dir
    for note in summary.get("notes") or []:
        info(note)
    info(f"explained {summary['n']} {summary['split']} samples "
         f"(accuracy {summary['accuracy']:.1%}) with {len(summary['methods'])} method(s), "
         f"score {summary['score']}:")
    for m in summary["methods"]:
        info(f"  {m:<12} layer {summary['layers'][m]:<16} {summary['seconds'][m]:8.2f} s  "
             f"{cams / summary['files'][m]}")
    figs = summary.get("figures") or {}
    n_figs = len(figs.get("classes", [])) + (1 if figs.get("failures") else 0)
    if n_figs:
        info(f"  {n_figs} figures (per class and failures) in {cams}")
    info(f"summary: {cams / 'summary.json'}")
