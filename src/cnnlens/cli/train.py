"""``cnnlens train``: train a model into a run folder."""

from __future__ import annotations

import argparse

from cnnlens.cli._common import TqdmTrainCallback, add_training_options, config_from_args, info


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train a model into a run folder",
                       description="Train a model into a run folder (config.json, checkpoints/, "
                       "tb/, train/history.json).")
    add_training_options(p)
    p.add_argument("--out", default=None, help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of another config in --out")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from cnnlens.pipeline import prepare_run_dir
    from cnnlens.rundir import RunDir
    from cnnlens.train.loop import train_run

    if args.resume:
        if args.out is None:
            from cnnlens.errors import CnnlensError

            raise CnnlensError("--resume needs --out RUN_DIR (the run to continue)")
        run = RunDir(args.out)
        run.read_config()
    else:
        run = prepare_run_dir(args.out, config_from_args(args), overwrite=args.overwrite)
    unit = "img" if run.read_config()["task"] != "mnist1d" else "signal"
    result = train_run(run, resume=True, callback=TqdmTrainCallback(unit))
    info(f"trained {result['epochs_run']} epochs into {run.path} "
         f"(final train accuracy {result.get('accuracy', float('nan')):.4f})")
    return 0
