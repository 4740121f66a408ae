"""``cnnlens import-keras``: turn a trained Keras HDF5 model into a cnnlens run folder."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``import-keras`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "import-keras",
        help="import a Keras 2 HDF5 Sequential model as a run folder",
        description="Read a Keras 2 HDF5 Sequential model (Conv1D/2D, MaxPooling1D/2D, "
        "GlobalAveragePooling1D/2D, Flatten, Dense; ReLU/softmax activations) with h5py, "
        "check it layer by layer against the task's cnnlens model and write a run folder "
        "that evaluate, explain, faithfulness and report can use. A final softmax is "
        "dropped: cnnlens models output logits.",
    )
    p.add_argument("file", metavar="FILE.h5", help="Keras HDF5 model file (model.save(...h5))")
    p.add_argument("--task", required=True, choices=["hmt", "mnist1d"],
                   help="task the model solves")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to create")
    p.add_argument(
        "--overwrite", action="store_true", help="replace RUN_DIR if it exists and is not empty"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the model and say where the run folder is."""
    from cnnlens.models import count_parameters
    from cnnlens.pipeline.keras_run import import_keras
    from cnnlens.rundir.folder import RunDir

    out = import_keras(args.file, task=args.task, out_dir=args.out, overwrite=args.overwrite)
    model, meta = RunDir(out).load_model()
    dropped = meta["imported_from"].get("dropped_activation")
    note = f"; dropped final {dropped} (outputs logits)" if dropped else ""
    print(
        f"imported {args.file} as {meta['model']} "
        f"({count_parameters(model):,} parameters{note}) -> {out}"
    )
    return 0
