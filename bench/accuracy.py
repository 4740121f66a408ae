"""Accuracy table from trained run folders: test accuracy mean ± std over seeds, by model.

    .venv/bin/python bench/accuracy.py runs/m1d-best-s0 runs/m1d-best-s1 runs/m1d-best-s2 ...

Each RUN_DIR must hold a trained model evaluated on its test split (``cnnlens run`` does
both). Rows group runs by task, model and recipe; times are the training loop's own
(``train/history.json``: seconds per epoch, summed), on whatever machine ran them.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from _machine import machine_line
from cnnlens.fileio import read_json
from cnnlens.models import count_parameters
from cnnlens.rundir.folder import RunDir


def describe(path: Path) -> dict[str, Any]:
    run = RunDir(path)
    cfg = run.read_config()
    metrics = read_json(run.eval_dir / "metrics.json")
    model, _ = run.load_model()
    history_path = run.train_dir / "history.json"
    history = read_json(history_path) if history_path.exists() else []
    recipe = (cfg.get("recipe") or {}).get("name", "imported")
    val = [h["val_accuracy"] for h in history if "val_accuracy" in h]
    return {"task": cfg["task"], "model": cfg["model"], "recipe": recipe,
            "seed": cfg.get("seed"), "params": count_parameters(model),
            "accuracy": float(metrics["accuracy"]), "correct": metrics["correct"],
            "n": metrics["n"], "epochs": len(history),
            "seconds": sum(h["seconds"] for h in history),
            "val_accuracy": val[-1] if val else None,
            "size": cfg["data"].get("image_size") if cfg["task"] != "mnist1d" else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    print(machine_line())  # every figure names the CPU it was measured on
    rows = [describe(p) for p in args.runs]
    print("| run | task | model | recipe | seed | test acc | correct | val acc (last) | "
          "epochs | train s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for p, r in zip(args.runs, rows, strict=True):
        val = f"{r['val_accuracy']:.4f}" if r["val_accuracy"] is not None else "—"
        print(f"| {p.name} | {r['task']} | {r['model']} | {r['recipe']} | {r['seed']} | "
              f"{r['accuracy']:.4f} | {r['correct']}/{r['n']} | {val} | {r['epochs']} | "
              f"{r['seconds']:.0f} |")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["model"], r["recipe"])].append(r)
    print("\n| task | model | params | recipe | seeds | test acc mean ± std | train s / seed |")
    print("|---|---|---:|---|---:|---:|---:|")
    for (task, model, recipe), rs in groups.items():
        accs = [r["accuracy"] for r in rs]
        std = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        secs = statistics.mean(r["seconds"] for r in rs)
        print(f"| {task} | {model} | {rs[0]['params']:,} | {recipe} | {len(rs)} | "
              f"{statistics.mean(accs):.4f} ± {std:.4f} | {secs:.0f} |")


if __name__ == "__main__":
    main()
