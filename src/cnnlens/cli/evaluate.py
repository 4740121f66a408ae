"""``cnnlens evaluate``: metrics and figures for a trained or imported run."""

from __future__ import annotations

import argparse

from cnnlens.cli._common import add_device_option, info


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run: metrics and figures in RUN_DIR/eval",
                       description="Accuracy, class-wise accuracy, ROC AUC, normalised "
                       "confusion matrix, precision/recall/F1 and example panels.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--data-dir", default=None, help="data folder, if not the run's")
    add_device_option(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from cnnlens.evaluate.stage import evaluate_run
    from cnnlens.rundir import RunDir

    run = RunDir(args.run_dir)
    m = evaluate_run(run, split=args.split, data_dir=args.data_dir, device=args.device)
    print_summary(m, run)
    return 0


def print_summary(m: dict, run: object) -> None:
    info(f"{m['split']} accuracy {m['accuracy']:.4f} ({m['correct']} of {m['n']} correct)")
    for pc in m["per_class"]:
        acc = "n/a" if pc["accuracy"] is None else f"{pc['accuracy']:.3f}"
        auc = "n/a" if pc["roc_auc"] is None else f"{pc['roc_auc']:.3f}"
        info(f"  {pc['class']:>12}  acc {acc}  AUC {auc}  F1 {pc['f1']:.3f}  n={pc['support']}")
    info(f"metrics and figures: {getattr(run, 'eval_dir', run)}")
