"""The ``explain`` stage: CAMs for a run's split, saved as ``cams/<method>.npz`` plus figures.

Later stages (faithfulness, report) read these files instead of recomputing maps, so each
file is self-describing: layer-resolution maps, dataset indices, targets, predictions,
labels, scores, and the layer / method / score / split that produced them. Maps at input
resolution are *not* stored (for 224 px images they were 100 MB per method): they are the
deterministic upsampling and per-sample normalisation of ``raw``, rebuilt on load by
:func:`load_cams` exactly as the engine computes them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens.data import TaskData
from cnnlens.data.batching import iterate_batches
from cnnlens.device import resolve_device
from cnnlens.distributed import setup
from cnnlens.errors import CnnlensError
from cnnlens.explain.api import explain_methods
from cnnlens.explain.files import SUMMARY_NAME, load_cams, maps_from_raw, read_summary
from cnnlens.explain.layers import default_layer, resolve_layer
from cnnlens.explain.options import DEFAULT_METHODS, SCORES, ExplainOptions, resolve_methods
from cnnlens.explain.previews import PREVIEWS_NAME, write_previews
from cnnlens.fileio import write_json, write_npz
from cnnlens.rundir.folder import RunDir, load_checked_data

#: Default batch: as many samples as fit this many MB of input. Large batches matter: the
#: engine's per-call cost dominates on small 1-D inputs (Grad-CAM on 1000 MNIST-1D signals:
#: 8.4 s in calls of 32, 0.14 s in one call, on a busy 2-core machine); the engine chunks
#: internally to bound its own memory.
BATCH_INPUT_MB = 64

#: ``progress(stage, done, total)``: stage is ``"cams"`` (done counts sample-method pairs)
#: or ``"figures"`` (done counts figures).
ProgressFn = Callable[[str, int, int], None]
LayerSpec = str | Mapping[str, str] | None


@dataclass(frozen=True)
class CamPlan:
    """Which layer and score each method runs at, and why (for the summary and the CLI)."""

    layers: dict[str, str]
    score: str
    chosen: str  # how the default layer was found: "model", "option" or "auto"
    notes: list[str] = field(default_factory=list)


def plan_cams(model: nn.Module, model_name: str, methods: Sequence[str], layer: LayerSpec,
              score: str | None, sample: torch.Tensor | None) -> CamPlan:
    """Map each method to its layer (one name for all, per method, or the model's default).

    Validated up front so a typo fails before minutes of CAM computation.
    """
    from cnnlens.models import MODELS

    spec = MODELS.get(model_name)
    notes: list[str] = []
    chosen = "option" if layer is not None else "model"
    fallback: str | None = None
    per_method: Mapping[str, str] = {}
    if isinstance(layer, Mapping):
        per_method = layer
    elif layer is not None:
        fallback = layer
    if fallback is None and spec is not None:
        per_method = {**spec.cam_layers, **per_method}
        fallback = spec.cam_layer
    if fallback is None and any(m not in per_method for m in methods):
        if sample is None:
            raise CnnlensError(f"model {model_name!r} has no default CAM layer; pass --layer")
        fallback = default_layer(model, sample)
        chosen = "auto"
        notes.append(f"CAM layer {fallback!r} chosen: the last conv-like layer with spatial "
                     "output (pass --layer to choose another)")
    layers: dict[str, str] = {}
    for method in methods:
        name = per_method.get(method, fallback)
        assert name is not None
        try:
            resolve_layer(model, name)
        except CnnlensError as exc:
            raise CnnlensError(f"--layer for {method}: {exc}") from None
        layers[method] = name
    final_score = score or (spec.cam_score if spec is not None else "logit")
    return CamPlan(layers=layers, score=final_score, chosen=chosen, notes=notes)


def resolve_layers(
    model: nn.Module, model_name: str, methods: Sequence[str], layer: LayerSpec
) -> dict[str, str]:
    """Layer per method (see :func:`plan_cams`); kept for callers that only need layers."""
    return plan_cams(model, model_name, methods, layer, None, None).layers


def default_batch_size(sample: torch.Tensor) -> int:
    """Samples per batch so that one batch of inputs takes about ``BATCH_INPUT_MB``."""
    per_sample = max(1, sample.numel() * sample.element_size())
    return max(1, BATCH_INPUT_MB * 2**20 // per_sample)


def _batches(ds: Dataset[Any], order: np.ndarray, batch_size: int
             ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield ``(indices, x, y)`` for the samples ``order`` of ``ds``, in that order."""
    start = 0
    for x, y in iterate_batches(ds, torch.from_numpy(order), batch_size):
        idx = order[start : start + x.shape[0]]
        start += x.shape[0]
        yield idx, x, torch.as_tensor(y).long()


def is_done(run: RunDir, options: ExplainOptions | None = None) -> bool:
    """Done when ``cams/summary.json`` answers this request for the current model weights
    and every file it lists is there."""
    opts = options or ExplainOptions()
    done = run.current_output(run.cams_dir / SUMMARY_NAME, request=opts.request())
    files = (done or {}).get("files") or {}
    return "inputs" in files and all(_readable(run.cams_dir / str(f)) for f in files.values())


def _readable(path: Path) -> bool:
    """The file is there and, for an ``.npz``, its zip directory reads (a truncated or empty
    archive fails here cheaply: the directory sits at its end)."""
    if not path.is_file():
        return False
    if path.suffix != ".npz":
        return True
    try:
        with np.load(path, allow_pickle=False) as f:
            return bool(f.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def run_explain(
    run_dir: str | Path,
    options: ExplainOptions | None = None,
    /,
    *,
    device: str | torch.device = "auto",
    data_dir: str | None = None,
    progress: ProgressFn | None = None,
    data: TaskData | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Compute CAMs of ``methods`` for ``split`` of a trained run and write ``cams/``.

    ``options``, or the fields of :class:`ExplainOptions` as keywords (``methods`` may be
    ``"a,b"``), say what to compute. Targets are the model's predicted classes (what the
    study explained). Methods at the same layer share their forward and backward passes.
    All maps are computed before anything is written, so a failing or interrupted run leaves
    earlier outputs alone. ``layer``: one name for every method, ``{method: name}`` (others
    get the default), or None for the model's defaults. Each ``<method>.npz`` holds ``raw``
    (N, *layer_spatial), ``input_shape``, ``indices`` (into the split), ``targets``,
    ``predicted``, ``labels``, ``scores`` (target score, logit or prob), ``probs`` (N,
    classes) and the strings/scalars ``layer``, ``method``, ``score``, ``split``,
    ``seconds``; :func:`load_cams` adds ``maps`` (N, *spatial) in [0, 1]. Returns the
    summary also written to ``cams/summary.json`` (file names in it are relative to
    ``cams/``).
    """
    if isinstance(fields.get("methods"), str):
        fields["methods"] = tuple(resolve_methods(fields["methods"]))
    opts = options if options is not None else ExplainOptions()
    changes: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                               for k, v in fields.items()}
    opts = replace(opts, **changes)
    return run_stage(RunDir(run_dir), opts, device=device, data_dir=data_dir, data=data,
                     progress=progress)


def run_stage(
    run: RunDir,
    options: ExplainOptions,
    *,
    device: str | torch.device = "auto",
    data_dir: str | None = None,
    data: TaskData | None = None,
    progress: ProgressFn | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stage with its options object (what the pipeline calls, with the run's
    ``config`` it holds; without one, ``config.json`` is read).

    Under ``torchrun`` each process computes the maps of its share of the samples; rank 0
    gathers them in order (padding dropped), draws and writes; every rank returns the same
    summary.
    """
    options.validate()
    with run.lock():
        return _explain(run, options, device=device, data_dir=data_dir, data=data,
                        progress=progress, config=config)


@dataclass
class _Computed:
    """Per-batch results of this process's samples, in order, before they are gathered."""

    methods: list[str]
    raw: dict[str, list[np.ndarray]] = field(default_factory=dict)
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    indices: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        for m in self.methods:
            self.raw[m], self.scores[m], self.seconds[m] = [], [], 0.0


def _explain(run: RunDir, opts: ExplainOptions, *, device: str | torch.device,
             data_dir: str | None, data: TaskData | None,
             progress: ProgressFn | None, config: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg = run.use_config(config)
    method_list = list(opts.methods) if opts.methods is not None else list(DEFAULT_METHODS)
    ranks, dev = setup(device if isinstance(device, torch.device)
                       else resolve_device(device))
    if not ranks.is_main:
        progress = None
    model, meta = run.load_model(device=dev, config=cfg)
    model_name = str(meta.get("model", cfg["model"]))
    data = load_checked_data(run, meta, split=opts.split, data_dir=data_dir, data=data,
                             config=cfg)
    ds = data.eval_split(opts.split)
    total = len(ds)  # type: ignore[arg-type]
    n = total if opts.limit is None else min(opts.limit, total)
    if n == 0:
        raise CnnlensError(f"{run.path}: split {opts.split!r} is empty; choose --split "
                           "train/val/test")
    sample = ds[0][0].unsqueeze(0).to(dev)
    plan = plan_cams(model, model_name, method_list, opts.layer, opts.score, sample)
    shard = ranks.shard(n)
    done = _compute(model, ds, shard.indices, plan, method_list,
                    opts.batch_size or default_batch_size(sample[0]), dev, progress)
    # compute time summed over processes (one process: its own)
    seconds = dict(zip(method_list, ranks.all_sum([done.seconds[m] for m in method_list]),
                       strict=True))
    cams = _gathered(done, shard, plan, opts.split, seconds, tuple(sample.shape[2:]))
    first = cams[method_list[0]]
    summary: dict[str, Any] = {
        "task": cfg["task"],
        "model": model_name,
        "split": opts.split,
        "n": int(n),
        "limit": opts.limit,
        "score": plan.score,
        "targets": "predicted class",
        "methods": method_list,
        "layers": plan.layers,
        "layer_choice": plan.chosen,
        "notes": plan.notes,
        "seconds": seconds,
        "seconds_per_sample": {m: s / n for m, s in seconds.items()},
        "accuracy": float((first["predicted"] == first["labels"]).mean()),
        "class_names": [str(c) for c in meta.get("class_names") or data.class_names],
        "kind": data.kind,
        "device": str(dev),
        "files": {m: f"{m}.npz" for m in method_list},
        "figures": {},
        "request": opts.request(),
        "model_digest": run.model_digest(),
    }
    return ranks.on_main(lambda: _write(run, opts, ds, cams, summary, progress))


def _compute(model: nn.Module, ds: Dataset[Any], rows: np.ndarray, plan: CamPlan,
             methods: list[str], batch_size: int, dev: torch.device,
             progress: ProgressFn | None) -> _Computed:
    """The layer-resolution maps of ``rows``: methods at the same layer share a pass."""
    groups: dict[str, list[str]] = {}
    for m in methods:
        groups.setdefault(plan.layers[m], []).append(m)
    out, done = _Computed(methods), 0
    for idx, x, y in _batches(ds, rows, batch_size):
        x = x.to(dev)
        # The first layer's pass predicts (targets None: the argmax of its own forward), so
        # no separate forward is needed; the other layers explain the same classes.
        pred: torch.Tensor | None = None
        for layer_name, group in groups.items():
            results = explain_methods(model, x, layer=layer_name, methods=group, targets=pred,
                                      score=plan.score, upsample=False, normalize=False)
            if pred is None:
                first = next(iter(results.values()))
                pred = first.targets
                out.indices.append(idx)
                out.labels.append(y.numpy())
                out.predicted.append(pred.cpu().numpy())
                out.probs.append(torch.softmax(first.logits.float(), dim=1).cpu().numpy())
            for method, res in results.items():
                out.seconds[method] += res.seconds
                out.raw[method].append(res.raw.detach().float().cpu().numpy())
                out.scores[method].append(res.scores.detach().float().cpu().numpy())
                done += len(idx)
                if progress is not None:
                    progress("cams", done, rows.size * len(methods))
    return out


def _gathered(done: _Computed, shard: Any, plan: CamPlan, split: str,
              seconds: dict[str, float], input_shape: tuple[int, ...]
              ) -> dict[str, dict[str, Any]]:
    """Each method's ``.npz`` arrays, gathered over processes in sample order."""
    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return shard.gather(np.concatenate(parts).astype(dtype))

    indices, labels = cat(done.indices, np.int64), cat(done.labels, np.int64)
    predicted, probs = cat(done.predicted, np.int64), cat(done.probs, np.float32)
    return {method: {
        "raw": cat(done.raw[method], np.float32),
        "input_shape": np.asarray(input_shape, dtype=np.int64),
        "indices": indices,
        "targets": predicted,
        "predicted": predicted,
        "labels": labels,
        "scores": shard.gather(np.concatenate(done.scores[method])),
        "probs": probs,
        "layer": np.asarray(plan.layers[method]),
        "method": np.asarray(method),
        "score": np.asarray(plan.score),
        "seconds": np.asarray(seconds[method], dtype=np.float64),
        "split": np.asarray(split),
    } for method in done.methods}


def _write(run: RunDir, opts: ExplainOptions, ds: Dataset[Any], cams: dict[str, dict[str, Any]],
           summary: dict[str, Any], progress: ProgressFn | None) -> dict[str, Any]:
    """Figures, input previews, ``<method>.npz`` files and the summary (rank 0 only under
    torchrun)."""
    first = next(iter(cams.values()))
    if opts.figures:  # drawn before any file is written: an interrupt leaves nothing new
        from cnnlens.explain.figures import write_cam_figures

        shape = tuple(int(s) for s in first["input_shape"])
        maps = {m: maps_from_raw(arrays["raw"], shape) for m, arrays in cams.items()}
        summary["figures"] = write_cam_figures(
            run.cams_dir,
            lambda i: ds[int(i)][0],
            maps,
            indices=first["indices"],
            labels=first["labels"],
            predicted=first["predicted"],
            probs=first["probs"],
            class_names=summary["class_names"],
            kind=summary["kind"],
            per_class=opts.per_class,
            max_failures=opts.max_failures,
            progress=progress,
        )
    write_previews(run.cams_dir / PREVIEWS_NAME, lambda i: ds[int(i)][0], first["indices"],
                   summary["kind"])
    summary["files"]["inputs"] = PREVIEWS_NAME
    for method, arrays in cams.items():
        write_npz(run.cams_dir / f"{method}.npz", **arrays)
    write_json(run.cams_dir / SUMMARY_NAME, summary)
    return summary


__all__ = [
    "DEFAULT_METHODS",
    "SCORES",
    "CamPlan",
    "ExplainOptions",
    "default_batch_size",
    "is_done",
    "load_cams",
    "maps_from_raw",
    "plan_cams",
    "read_summary",
    "resolve_layers",
    "resolve_methods",
    "run_explain",
    "run_stage",
]
