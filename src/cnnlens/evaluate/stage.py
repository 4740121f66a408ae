"""The evaluate stage: predictions, metrics and figures for one split of a run."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlens.device import resolve_device
from cnnlens.errors import CnnlensError
from cnnlens.evaluate import plots
from cnnlens.evaluate.metrics import classification_metrics
from cnnlens.evaluate.predict import predict_proba
from cnnlens.fileio import read_json, write_json, write_npz
from cnnlens.plotting import save_figure
from cnnlens.rundir import RunDir


def evaluate_run(
    run: RunDir,
    *,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Write ``eval/metrics.json``, ``eval/predictions.npz`` and the figures; return metrics."""
    dev = resolve_device(device)
    model, meta = run.load_model(device=dev)
    data = run.load_data(data_dir=data_dir, augment=False)
    dataset = data.split(split)
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise CnnlensError(f"--split {split}: the split is empty for this run")
    probs, labels = predict_proba(model, dataset, batch_size=batch_size, device=dev)
    class_names = list(meta.get("class_names") or data.class_names)
    if probs.shape[1] != len(class_names):
        raise CnnlensError(
            f"model outputs {probs.shape[1]} classes but the data has {len(class_names)}"
        )
    metrics = classification_metrics(labels, probs, class_names)
    metrics.update(split=split, class_names=class_names)

    out = run.eval_dir
    write_npz(out / "predictions.npz", probs=probs, labels=labels,
              predicted=probs.argmax(1), indices=np.arange(len(labels)))
    history_path = run.train_dir / "history.json"
    if history_path.exists():
        history = read_json(history_path)
        if history:
            save_figure(plots.learning_curves(history), out / "learning_curves.png")
    save_figure(plots.roc_curves(metrics), out / "roc_curves.png")
    save_figure(plots.confusion_matrix(metrics, class_names), out / "confusion_matrix.png")
    wanted = {e["index"] for group in metrics["examples"].values() for e in group}
    inputs = {i: np.asarray(dataset[i][0]) for i in sorted(wanted)}
    save_figure(
        plots.example_panel(metrics["examples"], inputs, class_names, kind=data.kind),
        out / "examples.png",
    )
    write_json(out / "metrics.json", metrics)
    return metrics
