"""Copy a trained run's model into the package as the task's shipped ``--pretrained`` weights.

    .venv/bin/python scripts/ship_weights.py RUN_DIR

RUN_DIR must have been trained by cnnlens and evaluated on its test split (``cnnlens run``
does both). Writes ``src/cnnlens/models/weights/<task>.safetensors`` and ``<task>.json``: the
checkpoint sidecar plus the input size, the recorded test accuracy (and correct count, which
``tests/pipeline/test_pipeline_pretrained.py`` checks exactly) and the command that trained it.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from cnnlens.fileio import read_json
from cnnlens.pipeline.pretrained import WEIGHTS_DIR
from cnnlens.rundir.checkpoint import save_checkpoint
from cnnlens.rundir.folder import RunDir


def command_for(cfg: dict[str, Any]) -> str:
    """The ``cnnlens run`` command line that reproduces the run's training."""
    rec, data = cfg["recipe"], cfg["data"]
    parts = ["cnnlens", "run", "--task", cfg["task"], "--recipe", rec["name"],
             "--seed", str(cfg["seed"])]
    if data.get("data_dir"):
        parts += ["--data-dir", "DATA_DIR"]
    if rec.get("val_fraction"):
        parts += ["--val-fraction", f"{rec['val_fraction']:g}"]
    return shlex.join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    args = ap.parse_args()
    run = RunDir(args.run_dir)
    cfg = run.read_config()
    metrics = read_json(run.eval_dir / "metrics.json")
    if metrics.get("split") != "test" or metrics.get("model_digest") != run.model_digest():
        raise SystemExit(f"{run.path}: evaluate the current model on the test split first")
    model, meta = run.load_model()
    n, correct = int(metrics["n"]), int(metrics["correct"])
    history = read_json(run.train_dir / "history.json")
    shipped = {
        "model": meta["model"], "model_kwargs": meta.get("model_kwargs") or {},
        "task": cfg["task"], "class_names": meta["class_names"], "epoch": meta.get("epoch"),
        "recipe": cfg["recipe"], "seed": cfg["seed"], "precision": meta.get("precision"),
        "data": {"image_size": cfg["data"].get("image_size") if cfg["task"] != "mnist1d"
                 else None, "val_fraction": cfg["data"].get("val_fraction")},
        "test_accuracy": float(metrics["accuracy"]), "test_correct": correct, "test_n": n,
        "train_seconds": round(sum(h["seconds"] for h in history), 1),
        "command": command_for(cfg),
    }
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(WEIGHTS_DIR, cfg["task"], model, shipped)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), test accuracy "
          f"{shipped['test_accuracy']:.4f} ({correct}/{n})")


if __name__ == "__main__":
    main()
