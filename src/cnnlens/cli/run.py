"""``cnnlens run``: the main job, every stage into one run folder."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from cnnlens.cli._common import TqdmTrainCallback, add_training_options, config_from_args, info


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="train, evaluate, explain and report in one go",
                       description="Run the whole pipeline into one run folder. Starting it "
                       "again on the same folder and config continues where it stopped.")
    add_training_options(p)
    p.add_argument("--out", default=None, help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of another config in --out")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from cnnlens.evaluate.stage import evaluate_run
    from cnnlens.pipeline import prepare_run_dir, run_pipeline
    from cnnlens.rundir import RunDir
    from cnnlens.train.loop import train_run

    cfg = config_from_args(args)
    run = prepare_run_dir(args.out, cfg, overwrite=args.overwrite)
    info(f"run folder: {run.path}")
    unit = "signal" if cfg["task"] == "mnist1d" else "img"

    def train(r: RunDir) -> Any:
        if r.is_trained():
            info("train: already done")
            return None
        return train_run(r, resume=True, callback=TqdmTrainCallback(unit))

    def evaluate(r: RunDir) -> Any:
        return evaluate_run(r, device=args.device)

    stages = [("train", train), ("evaluate", evaluate)]
    stages += _optional_stages(args)
    results = run_pipeline(run, stages, on_stage=lambda name: info(f"== {name}"))
    m = results["evaluate"]
    from cnnlens.cli.evaluate import print_summary

    print_summary(m, run)
    info(f"done: {run.path} — test accuracy {m['accuracy']:.4f}")
    return 0


def _optional_stages(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Later stages, each provided by its CLI module as ``pipeline_stage(args)``."""
    stages = []
    for name in ("explain", "faithfulness", "report"):
        try:
            module = importlib.import_module(f"cnnlens.cli.{name}")
        except ModuleNotFoundError:
            continue
        stage = getattr(module, "pipeline_stage", None)
        if stage is not None:
            stages.append((name, stage(args)))
    return stages
