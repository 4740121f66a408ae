"""``cnnlens train``: train a model into a run folder (the pipeline's first stage)."""

from __future__ import annotations

import argparse

from cnnlens.cli._common import CliProgress, add_training_options, info, run_options_from_args


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train a model into a run folder",
                       description="Train a model into a run folder (config.json, checkpoints/, "
                       "tb/, train/history.json). Ctrl-C saves the state at the next batch "
                       "boundary; --resume continues from it.")
    add_training_options(p)
    p.add_argument("--out", default=None, help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of another config in --out")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from cnnlens.errors import CnnlensError
    from cnnlens.fileio import read_json
    from cnnlens.pipeline.runner import run
    from cnnlens.rundir.folder import RunDir
    from cnnlens.train.loop import train_run

    unit = "signal" if args.task in ("mnist1d", "signals") else "img"
    progress = CliProgress(unit)
    if args.resume:
        if args.out is None:
            raise CnnlensError("--resume needs --out RUN_DIR (the run to continue)")
        run_dir = RunDir(args.out)
        cfg = run_dir.read_config()
        unit = "signal" if cfg["task"] in ("mnist1d", "signals") else "img"
        result = train_run(run_dir, resume=True, callback=CliProgress(unit).training())
        info(f"trained {result['epochs_run']} epochs into {run_dir.path} "
             f"(final train accuracy {result.get('accuracy', float('nan')):.4f})")
        return 0
    out = run(run_options_from_args(args), out=args.out, overwrite=args.overwrite,
              progress=progress, stages=("train",))
    history = read_json(out.path / "train" / "history.json") if (
        out.path / "train" / "history.json").exists() else []
    last = history[-1] if history else {}
    info(f"trained {len(history)} epochs into {out.path} "
         f"(final train accuracy {last.get('accuracy', float('nan')):.4f})")
    return 0
