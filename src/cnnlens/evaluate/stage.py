"""The evaluate stage: predictions, metrics and figures for one split of a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cnnlens.data import TaskData
from cnnlens.device import resolve_device
from cnnlens.distributed import setup
from cnnlens.errors import CnnlensError
from cnnlens.evaluate import plots, summary_plots
from cnnlens.evaluate.limits import bounded_dpi, many_classes
from cnnlens.evaluate.metrics import classification_metrics
from cnnlens.evaluate.options import EvaluateOptions
from cnnlens.evaluate.predict import predict_proba
from cnnlens.fileio import read_json, write_json, write_npz
from cnnlens.plotting import save_figure
from cnnlens.rundir.folder import RunDir, load_checked_data

METRICS_FILE = "metrics.json"

#: Resolution of the evaluation figures (before the ``MAX_FIGURE_PX`` bound).
FIGURE_DPI = 110


def is_done(run: RunDir, options: EvaluateOptions | None = None) -> bool:
    """Done when ``eval/metrics.json`` holds this split for the current model weights."""
    opts = options or EvaluateOptions()
    done = run.current_output(run.eval_dir / METRICS_FILE, split=opts.split)
    return done is not None and (done.get("options") or {}).get("tta", "none") == opts.tta


def read_metrics(run: RunDir) -> dict[str, Any]:
    """The metrics a finished evaluate stage wrote."""
    metrics = read_json(run.eval_dir / METRICS_FILE)
    if not isinstance(metrics, dict):
        raise CnnlensError(f"{run.eval_dir / METRICS_FILE}: not an evaluation result")
    return metrics


def evaluate_run(
    run: RunDir,
    *,
    split: str = EvaluateOptions.split,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = EvaluateOptions.batch_size,
    data: TaskData | None = None,
    tta: str = EvaluateOptions.tta,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``eval/metrics.json``, ``eval/predictions.npz`` and the figures; return metrics.

    The data's classes must be the model's (a renamed or extra class folder would silently
    permute labels). ``data`` and ``config`` let the pipeline pass data it already decoded
    and the run's config it already holds (else ``config.json`` is read). Under
    ``torchrun`` each process predicts its share of the samples; rank 0 gathers them (in
    order, padding dropped) and writes; every rank returns the same metrics.
    """
    opts = EvaluateOptions(split=split, batch_size=batch_size, tta=tta)
    opts.validate()
    with run.lock():
        ranks, dev = setup(resolve_device(device))
        cfg = run.use_config(config)
        model, meta = run.load_model(device=dev, config=cfg)
        data = load_checked_data(run, meta, split=split, data_dir=data_dir, data=data,
                                 config=cfg)
        dataset = data.eval_split(split)
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise CnnlensError(f"--split {split}: the split is empty for this run")
        shard = ranks.shard(len(dataset))  # type: ignore[arg-type]
        probs, labels = predict_proba(model, dataset, batch_size=batch_size, device=dev,
                                      indices=shard.indices, tta=tta)
        probs, labels = shard.gather(probs), shard.gather(labels)
        return ranks.on_main(lambda: _write(run, opts, data, dataset, probs, labels, meta))


def _write(run: RunDir, opts: EvaluateOptions, data: TaskData, dataset: Any, probs: np.ndarray,
           labels: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
    """Metrics and figures from all predictions (rank 0 only under torchrun)."""
    split = opts.split
    class_names = [str(c) for c in meta.get("class_names") or data.class_names]
    if probs.shape[1] != len(class_names):
        raise CnnlensError(
            f"{run.checkpoints / 'model.json'}: the model outputs {probs.shape[1]} classes "
            f"but names {len(class_names)}"
        )
    metrics = classification_metrics(labels, probs, class_names)
    metrics.update(split=split, class_names=class_names, options=asdict(opts),
                   model_digest=run.model_digest(),
                   skipped_files=list(data.info.get("skipped") or []))

    out = run.eval_dir
    write_npz(out / "predictions.npz", probs=probs, labels=labels,
              predicted=probs.argmax(1), indices=np.arange(len(labels)))
    history_path = run.train_dir / "history.json"
    if history_path.exists():
        history = read_json(history_path)
        if history:
            _save(plots.learning_curves(history), out / "learning_curves.png")
    write_class_figures(metrics, class_names, out)
    wanted = {e["index"] for group in metrics["examples"].values() for e in group}
    inputs = {i: np.asarray(dataset[i][0]) for i in sorted(wanted)}
    _save(
        plots.example_panel(metrics["examples"], inputs, class_names, kind=data.kind),
        out / "examples.png",
    )
    write_json(out / METRICS_FILE, metrics)
    return metrics


def write_class_figures(metrics: dict[str, Any], class_names: list[str], out: Path) -> list[str]:
    """ROC curves plus the confusion matrix, or above ``MANY_CLASSES`` classes the
    most-confused pairs and the per-class accuracy summary; return the file names.

    The matrix drawn cell by cell grows as K² (minutes and a 24,000-pixel PNG at 360
    classes); the summaries stay the same size, and the full matrix stays in the metrics.
    The other kind's files, left by an earlier evaluation, are removed once these are
    written, so the folder never mixes the two.
    """
    figures = {"roc_curves.png": plots.roc_curves(metrics)}
    summary = ("most_confused.png", "class_accuracy.png")
    if many_classes(len(class_names)):
        figures[summary[0]] = summary_plots.most_confused_pairs(metrics)
        figures[summary[1]] = summary_plots.class_accuracy_summary(metrics)
        stale: tuple[str, ...] = ("confusion_matrix.png",)
    else:
        figures["confusion_matrix.png"] = plots.confusion_matrix(metrics, class_names)
        stale = summary
    for name, fig in figures.items():
        _save(fig, out / name)
    for name in stale:
        (out / name).unlink(missing_ok=True)
    return list(figures)


def _save(fig: Figure, path: Path) -> None:
    """Save at the usual resolution, lowered only if a side would exceed ``MAX_FIGURE_PX``."""
    width, height = fig.get_size_inches()
    save_figure(fig, path, dpi=bounded_dpi(float(width), float(height), FIGURE_DPI))


def run_stage(run: RunDir, options: EvaluateOptions, *, device: str = "auto",
              data: TaskData | None = None, data_dir: str | None = None,
              config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The pipeline's entry: :func:`evaluate_run` with the stage's options."""
    return evaluate_run(run, split=options.split, batch_size=options.batch_size, device=device,
                        data=data, data_dir=data_dir, tta=options.tta, config=config)


__all__ = ["EvaluateOptions", "evaluate_run", "is_done", "read_metrics", "run_stage"]
