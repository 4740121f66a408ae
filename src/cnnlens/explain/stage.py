"""The ``explain`` stage: CAMs for a run's split, saved as ``cams/<method>.npz`` plus figures.

Later stages (faithfulness, report) read these files instead of recomputing maps, so each
file is self-describing: maps, raw layer-resolution maps, dataset indices, targets,
predictions, labels, scores, and the layer / method / score / split that produced them.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.fileio import write_json, write_npz
from cnnlens.rundir import RunDir

DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "ablationcam")
SCORES: tuple[str, ...] = ("logit", "prob")
#: Default batch: as many samples as fit this many MB of input. Large batches matter: the
#: engine's per-call cost dominates on small 1-D inputs (Grad-CAM on 1000 MNIST-1D signals:
#: 8.4 s in calls of 32, 0.14 s in one call, on a busy 2-core machine); the engine chunks
#: internally to bound its own memory.
BATCH_INPUT_MB = 64
SUMMARY_NAME = "summary.json"

#: ``progress(stage, done, total)``: stage is ``"cams"`` (done counts sample-method pairs)
#: or ``"figures"`` (done counts figures).
ProgressFn = Callable[[str, int, int], None]
LayerSpec = str | Mapping[str, str] | None


def _engine() -> Any:
    """The CAM engine, imported late so this module never forms an import cycle with it."""
    return importlib.import_module("cnnlens.explain")


def available_methods() -> list[str]:
    """Names of the CAM methods the engine offers."""
    return list(_engine().METHODS)


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """Parse ``"a,b"`` or a sequence into a de-duplicated list of known method names."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    names = [m for m in names if m]
    if not names:
        raise CnnlensError(f"--methods is empty; valid: {', '.join(available_methods())}")
    valid = available_methods()
    out: list[str] = []
    for name in names:
        if name not in valid:
            raise unknown_choice("CAM method (--methods)", name, valid)
        if name not in out:
            out.append(name)
    return out


def resolve_layers(
    model: nn.Module, model_name: str, methods: Sequence[str], layer: LayerSpec
) -> dict[str, str]:
    """Map each method to its layer: one name for all, a per-method mapping, or the default.

    Validated up front so a typo fails before minutes of CAM computation.
    """
    from cnnlens.models import MODELS

    default = MODELS[model_name].cam_layer if model_name in MODELS else None
    if isinstance(layer, Mapping):
        known = available_methods()
        for m in layer:  # a mapping may cover methods not run now, but not unknown ones
            if m not in known:
                raise unknown_choice("CAM method in --layer", m, known)
        chosen = {m: layer.get(m, default) for m in methods}
    else:
        chosen = {m: layer if layer is not None else default for m in methods}
    out: dict[str, str] = {}
    for method, name in chosen.items():
        if name is None:
            top = [n for n, _ in model.named_children()]
            raise CnnlensError(
                f"model {model_name!r} has no default CAM layer; pass --layer "
                f"(one of {', '.join(top)})"
            )
        try:
            _engine().resolve_layer(model, name)
        except CnnlensError as exc:
            raise CnnlensError(f"--layer for {method}: {exc}") from None
        out[method] = name
    return out


def default_batch_size(sample: torch.Tensor) -> int:
    """Samples per batch so that one batch of inputs takes about ``BATCH_INPUT_MB``."""
    per_sample = max(1, sample.numel() * sample.element_size())
    return max(1, BATCH_INPUT_MB * 2**20 // per_sample)


def _batches(ds: Dataset[Any], n: int, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor,
                                                                          torch.Tensor]]:
    """Yield ``(indices, x, y)`` for the first ``n`` samples of ``ds``, in order."""
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        xs, ys = zip(*(ds[int(i)] for i in idx), strict=True)
        yield idx, torch.stack(list(xs)), torch.as_tensor([int(y) for y in ys])


def _explain_batch(
    model: nn.Module, x: torch.Tensor, *, method: str, layer: str, targets: torch.Tensor, score: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One engine call: (maps at input size in [0, 1], raw layer-resolution maps, scores)."""
    res = _engine().explain(model, x, layer=layer, method=method, targets=targets, score=score)
    maps = res.maps.detach().float().cpu().numpy()
    raw = res.raw.detach().float().cpu().numpy()
    scores = torch.as_tensor(res.scores).detach().float().cpu().numpy()
    return maps, raw, scores


def run_explain(
    run_dir: str | Path,
    *,
    methods: str | Sequence[str] = DEFAULT_METHODS,
    layer: LayerSpec = None,
    split: str = "test",
    limit: int | None = None,
    score: str = "logit",
    device: str | torch.device = "cpu",
    data_dir: str | None = None,
    batch_size: int | None = None,
    figures: bool = True,
    per_class: int = 3,
    max_failures: int = 8,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Compute CAMs of ``methods`` for ``split`` of a trained run and write ``cams/``.

    Targets are the model's predicted classes (what the study explained). All maps are
    computed before anything is written, so a failing method leaves earlier outputs alone.
    ``layer``: one name for every method, ``{method: name}`` (others get the default), or
    None for the model's ``cam_layer``. Each ``<method>.npz`` holds ``maps`` (N, *spatial)
    in [0, 1], ``raw`` (N, *layer_spatial), ``indices`` (into the split), ``targets``,
    ``predicted``, ``labels``, ``scores`` (target score, logit or prob), ``probs`` (N,
    classes) and the strings/scalars ``layer``, ``method``, ``score``, ``split``,
    ``seconds``. Returns the summary also written to ``cams/summary.json`` (file names in
    it are relative to ``cams/``).
    """
    run = RunDir(run_dir)
    cfg = run.read_config()
    method_list = resolve_methods(methods)
    if score not in SCORES:
        raise unknown_choice("score (--score)", score, SCORES)
    if limit is not None and limit < 1:
        raise CnnlensError(f"--limit must be a positive number of samples, got {limit}")
    if batch_size is not None and batch_size < 1:
        raise CnnlensError(f"--batch-size must be at least 1, got {batch_size}")
    dev = torch.device(device)
    model, meta = run.load_model(device=dev)
    model_name = str(meta.get("model", cfg["model"]))
    layers = resolve_layers(model, model_name, method_list, layer)
    data = run.load_data(data_dir=data_dir, augment=False)
    ds = data.split(split)
    n = len(ds) if limit is None else min(limit, len(ds))  # type: ignore[arg-type]
    if n == 0:
        raise CnnlensError(f"{run.path}: split {split!r} is empty; choose --split train/val/test")
    class_names = [str(c) for c in meta.get("class_names") or data.class_names]
    bs = batch_size or default_batch_size(ds[0][0])

    parts: dict[str, dict[str, list[np.ndarray]]] = {m: {"maps": [], "raw": [], "scores": []}
                                                     for m in method_list}
    seconds = dict.fromkeys(method_list, 0.0)
    idx_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    pred_parts: list[np.ndarray] = []
    prob_parts: list[np.ndarray] = []
    done = 0
    for idx, x, y in _batches(ds, n, bs):
        x = x.to(dev)
        with torch.no_grad():
            probs = torch.softmax(model(x).float(), dim=1)
        pred = probs.argmax(dim=1)
        idx_parts.append(idx)
        label_parts.append(y.numpy())
        pred_parts.append(pred.cpu().numpy())
        prob_parts.append(probs.cpu().numpy())
        for method in method_list:
            t0 = time.perf_counter()
            maps, raw, scores = _explain_batch(
                model, x, method=method, layer=layers[method], targets=pred, score=score
            )
            seconds[method] += time.perf_counter() - t0
            parts[method]["maps"].append(maps.astype(np.float32))
            parts[method]["raw"].append(raw.astype(np.float32))
            parts[method]["scores"].append(scores.astype(np.float32))
            done += len(idx)
            if progress is not None:
                progress("cams", done, n * len(method_list))

    indices = np.concatenate(idx_parts).astype(np.int64)
    labels = np.concatenate(label_parts).astype(np.int64)
    predicted = np.concatenate(pred_parts).astype(np.int64)
    probs_all = np.concatenate(prob_parts).astype(np.float32)
    cams: dict[str, dict[str, Any]] = {}
    for method in method_list:
        cams[method] = {
            "maps": np.concatenate(parts[method]["maps"]),
            "raw": np.concatenate(parts[method]["raw"]),
            "indices": indices,
            "targets": predicted,
            "predicted": predicted,
            "labels": labels,
            "scores": np.concatenate(parts[method]["scores"]),
            "probs": probs_all,
            "layer": np.asarray(layers[method]),
            "method": np.asarray(method),
            "score": np.asarray(score),
            "seconds": np.asarray(seconds[method], dtype=np.float64),
            "split": np.asarray(split),
        }
    for method, arrays in cams.items():
        write_npz(run.cams_dir / f"{method}.npz", **arrays)

    figure_files: dict[str, Any] = {}
    if figures:
        from cnnlens.explain.figures import write_cam_figures

        figure_files = write_cam_figures(
            run.cams_dir,
            lambda i: ds[int(i)][0],
            {m: cams[m]["maps"] for m in method_list},
            indices=indices,
            labels=labels,
            predicted=predicted,
            probs=probs_all,
            class_names=class_names,
            kind=data.kind,
            per_class=per_class,
            max_failures=max_failures,
            progress=progress,
        )

    summary: dict[str, Any] = {
        "task": cfg["task"],
        "model": model_name,
        "split": split,
        "n": int(n),
        "limit": limit,
        "score": score,
        "targets": "predicted class",
        "methods": method_list,
        "layers": layers,
        "seconds": seconds,
        "seconds_per_sample": {m: s / n for m, s in seconds.items()},
        "accuracy": float((predicted == labels).mean()),
        "class_names": class_names,
        "kind": data.kind,
        "device": str(dev),
        "files": {m: f"{m}.npz" for m in method_list},
        "figures": figure_files,
    }
    write_json(run.cams_dir / SUMMARY_NAME, summary)
    return summary


def load_cams(run_dir: str | Path, method: str) -> dict[str, Any]:
    """Read ``cams/<method>.npz``: arrays as numpy, string/scalar fields as Python values."""
    path = RunDir(run_dir).cams_dir / f"{method}.npz"
    if not path.exists():
        raise CnnlensError(f"{path}: not found; run `cnnlens explain` with --methods {method}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise CnnlensError(f"{path}: corrupt CAM file ({exc})") from None
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        out[key] = value.item() if value.ndim == 0 else value
    return out


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """Read ``cams/summary.json`` (which methods, layers and figures the stage produced)."""
    from cnnlens.fileio import read_json

    summary = read_json(RunDir(run_dir).cams_dir / SUMMARY_NAME)
    if not isinstance(summary, dict):
        raise CnnlensError(f"{RunDir(run_dir).cams_dir / SUMMARY_NAME}: not a CAM summary")
    return summary


__all__ = [
    "DEFAULT_METHODS",
    "SCORES",
    "available_methods",
    "default_batch_size",
    "load_cams",
    "read_summary",
    "resolve_layers",
    "resolve_methods",
    "run_explain",
]
