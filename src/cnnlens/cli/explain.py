"""``cnnlens explain RUN_DIR``: class activation maps for a trained run, with figures."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlens.cli._common import (
    Bars,
    add_device_option,
    add_pretrained_option,
    info,
    parse_layer,
    positive_int,
    prepare_pretrained,
    skip_bad_data,
    split_list,
)


def register(subparsers: Any) -> None:
    from cnnlens.explain.options import DEFAULT_METHODS, METHOD_NAMES, SCORES

    p: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="compute CAMs for a trained run and draw them",
        description="Compute class activation maps of the predicted class for a split of a "
        "trained run; writes RUN_DIR/cams/<method>.npz, summary.json and PNG galleries "
        "(per class and for failures). Methods at the same layer share their passes.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a trained cnnlens run folder")
    add_pretrained_option(p)
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help=f"CAM methods (space- or comma-separated) of {', '.join(METHOD_NAMES)} "
                   f"(default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--layer", default=None,
                   help="layer to explain at, for all methods (NAME) or per method "
                   "(gradcam=max_pooling2d_1,ablationcam=conv2d_3); default: the model's "
                   "CAM layers, or the last conv-like layer with spatial output")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="explain only the first N samples")
    p.add_argument("--score", choices=SCORES, default=None,
                   help="score to explain: the class logit or its softmax probability "
                   "(default: the model's; prob for the study's HMT model)")
    add_device_option(p)
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images, listing them")
    p.add_argument("--data-dir", "--data", dest="data_dir", default=None,
                   help="data folder (or .npz), if it moved since training")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="samples per CAM batch")
    p.add_argument("--per-class", type=positive_int, default=3, help="samples per class gallery")
    p.add_argument("--no-figures", action="store_true", help="write the .npz files only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlens.device import resolve_device
    from cnnlens.explain.stage import run_explain
    from cnnlens.rundir.folder import RunDir

    prepare_pretrained(args)
    bars = Bars("explain ")
    data = skip_bad_data(args)
    try:
        summary = run_explain(
            args.run_dir,
            methods=split_list(args.methods),
            layer=parse_layer(args.layer),
            split=args.split,
            limit=args.limit,
            score=args.score,
            device=resolve_device(args.device),
            data_dir=args.data_dir,
            batch_size=args.batch_size,
            figures=not args.no_figures,
            per_class=args.per_class,
            progress=bars,
            data=data,
        )
    finally:
        bars.close()
    print_summary(summary, RunDir(args.run_dir))
    return 0


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
