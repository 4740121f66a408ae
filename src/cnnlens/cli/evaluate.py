"""``cnnlens evaluate``: metrics and figures for a trained or imported run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlens.cli._common import (
    add_device_option,
    add_model_source_options,
    info,
    prepare_trained,
    skip_bad_data,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run: metrics and figures in RUN_DIR/eval",
                       description="Accuracy, class-wise accuracy, ROC AUC, normalised "
                       "confusion matrix, precision/recall/F1 and example panels. The data's "
                       "classes must be the model's.")
    from cnnlens.cli.options import add_options
    from cnnlens.evaluate.options import EvaluateOptions

    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder")
    add_options(p, EvaluateOptions)  # the stage's own declarations
    p.add_argument("--data-dir", "--data", dest="data_dir", default=None,
                   help="data folder (or .npz), if not the run's")
    p.add_argument("--skip-bad", action="store_true", default=None,
                   help="skip unreadable images, listing them")
    add_device_option(p)
    add_model_source_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from cnnlens.cli.options import options_from_args
    from cnnlens.evaluate.options import EvaluateOptions
    from cnnlens.evaluate.stage import run_stage
    from cnnlens.rundir.folder import RunDir

    prepare_trained(args)
    run = RunDir(args.run_dir)
    data = skip_bad_data(args)
    opts = options_from_args(EvaluateOptions, args)
    opts.validate()
    m = run_stage(run, opts, device=args.device, data=data, data_dir=args.data_dir)
    print_summary(m, run.eval_dir)
    return 0


def print_summary(m: dict[str, Any], where: Path | str) -> None:
    info(f"{m['split']} accuracy {m['accuracy']:.4f} ({m['correct']} of {m['n']} correct)")
    for pc in m["per_class"]:
        acc = "n/a" if pc["accuracy"] is None else f"{pc['accuracy']:.3f}"
        auc = "n/a" if pc["roc_auc"] is None else f"{pc['roc_auc']:.3f}"
        info(f"  {pc['class']:>12}  acc {acc}  AUC {auc}  F1 {pc['f1']:.3f}  n={pc['support']}")
    if m.get("skipped_files"):
        info(f"{len(m['skipped_files'])} unreadable image file(s) were skipped (--skip-bad); "
             "listed in metrics.json")
    info(f"metrics and figures: {where}")
