"""``cnnlens explain --inputs``: explain a trained model on loose files, with no labels.

:func:`explain_inputs` takes a model (file, or builder plus weights) and paths (images,
folders, ``.npy``/``.npz`` signals) and writes, under ``out``: one overlay PNG per input and
method, ``predictions.csv`` (top-k classes, per-method deletion/insertion AUC) and one
offline ``index.html``. Inputs are decoded like the folder tasks, grouped by shape and sent
through the CAM engine in batches, so all methods at a layer share one forward/backward pass
per batch; the faithfulness score needs no label (it scores the explained class). The page
is written last and atomically: an ``index.html`` only exists once everything is done.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlens.data.loose import (
    LooseInputs,
    Sample,
    input_kind,
    read_class_names,
    read_inputs,
    scan_inputs,
)
from cnnlens.device import resolve_device
from cnnlens.errors import CnnlensError
from cnnlens.explain.api import explain_methods
from cnnlens.explain.figures import safe_filename
from cnnlens.explain.layers import default_layer, resolve_layer
from cnnlens.explain.options import DEFAULT_METHODS, SCORES, resolve_methods
from cnnlens.explain.overlay import image_overlay, image_uint8, png_bytes, signal_overlay_png
from cnnlens.explain.previews import thin_signal, webp_thumbnail
from cnnlens.faithfulness.label_free import (
    DEFAULT_BASELINE,
    DEFAULT_STEPS,
    deletion_insertion,
)
from cnnlens.faithfulness.metrics import random_maps
from cnnlens.fileio import atomic_path
from cnnlens.pipeline.loose_model import (
    DEFAULT_IMAGE_SIZE,
    ReadyModel,
    class_count,
    image_size_for,
    input_channels,
    load_model,
    ready_model,
)
from cnnlens.pipeline.loose_outputs import RANDOM, Explained, write_outputs, write_summary
from cnnlens.report.inputs_page import png_uri, webp_uri

#: ``progress(what, done, total)``: ``what`` is "cams", "faithfulness" or "overlays"; done
#: and total count inputs.
ProgressFn = Callable[[str, int, int], None]
PHASES = ("load", "decode", "cams", "faithfulness", "overlays", "html")


def explain_inputs(
    model: str | Path,
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    weights: str | Path | None = None,
    trust_pickle: bool = False,
    normalize: str | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    layer: str | Mapping[str, str] | None = None,
    score: str = "logit",
    image_size: int | None = None,
    target: str | int | None = None,
    top_k: int = 3,
    class_names: str | Path | Sequence[str] | None = None,
    skip_bad: bool = False,
    faithfulness_steps: int = DEFAULT_STEPS,
    faithfulness_baseline: str | float = DEFAULT_BASELINE,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Explain ``model`` on the files ``paths``; write overlays, CSV and HTML under ``out``.

    ``target`` (a class name or index) is explained instead of each input's predicted class;
    ``class_names`` is a file (text, one per line, or a JSON list) or the names themselves;
    ``faithfulness_steps`` chunks per deletion/insertion curve (0: no faithfulness), with
    removed positions set to ``faithfulness_baseline`` (``mean``, ``zero`` or a number). Returns
    the summary also written to ``out/summary.json``. Every failure is a
    :class:`~cnnlens.errors.CnnlensError` naming the file or option at fault.
    """
    timings = dict.fromkeys(PHASES, 0.0)
    t0 = time.perf_counter()
    wanted = resolve_methods(list(methods))
    _check_options(score, top_k, faithfulness_steps, batch_size)
    out = _out_folder(out)
    job = _prepare(model, paths, wanted, weights=weights, trust_pickle=trust_pickle,
                   normalize=normalize, layer=layer, image_size=image_size, target=target,
                   class_names=class_names, skip_bad=skip_bad, device=device,
                   timings=timings, t0=t0)
    records = _explain_all(
        job.ready, job.inputs.samples, out, layers=job.layers, score=score, target=job.target,
        top_k=min(top_k, job.k), steps=faithfulness_steps, baseline=faithfulness_baseline,
        batch_size=batch_size, seed=seed,
        dev=job.dev, timings=timings, progress=progress)
    t3 = time.perf_counter()
    summary = write_outputs(
        out, records, methods=wanted, layers=job.layers, labels=job.labels, ready=job.ready,
        settings={"score": score, "image_size": job.image_size,
                  "target": None if job.target is None else job.labels[job.target],
                  "top_k": min(top_k, job.k), "faithfulness_steps": faithfulness_steps,
                  "faithfulness_baseline": faithfulness_baseline,
                  "class_names": job.names_from, "device": str(job.dev)},
        bad=job.inputs.bad, skipped=job.inputs.skipped, timings=timings)
    timings["html"] = time.perf_counter() - t3
    summary["timings"] = {**timings, "total": time.perf_counter() - t0}
    write_summary(out, summary)
    return summary


@dataclass
class _Prepared:
    """The decoded inputs and the model ready for them: what the explaining needs."""

    inputs: LooseInputs
    ready: ReadyModel
    dev: torch.device
    image_size: int | None  # the size images were decoded at; None without images
    labels: list[str]  # the class names, or the indices as text
    names_from: str | None  # where given class names came from
    k: int  # classes the model scores
    target: int | None  # the class explained in every input; None: each one's prediction
    layers: dict[str, str]  # per method


def _prepare(model: str | Path, paths: Sequence[str | Path], methods: list[str], *,
             weights: str | Path | None, trust_pickle: bool, normalize: str | None,
             layer: str | Mapping[str, str] | None, image_size: int | None,
             target: str | int | None, class_names: str | Path | Sequence[str] | None,
             skip_bad: bool, device: str, timings: dict[str, float], t0: float) -> _Prepared:
    """Load the model and decode the inputs (its image size may decide theirs), then ready
    the model for their shape: device, classes, explained class and layer per method."""
    names, names_from = _class_names(class_names)
    scan = scan_inputs(list(paths))
    has_images = any(_is_image(p) for p, _ in scan.files)
    builder_shape = ((3, image_size or DEFAULT_IMAGE_SIZE, image_size or DEFAULT_IMAGE_SIZE)
                     if has_images else None)
    loaded = load_model(str(model), None if weights is None else str(weights),
                        trust_pickle=trust_pickle, builder_shape=builder_shape,
                        num_classes=len(names) if names else None)
    size = image_size_for(loaded, image_size) if has_images else image_size or 224
    timings["load"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    inputs = read_inputs(scan, image_size=size, channels=input_channels(loaded),
                         skip_bad=skip_bad)
    timings["decode"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    first = inputs.samples[0].x
    ready = ready_model(loaded, tuple(first.shape), normalize)
    dev = resolve_device(device)
    ready.module.to(dev)
    k = class_count(ready, first, names, names_from)
    labels = names or [str(i) for i in range(k)]
    target_idx = _target_index(target, labels)
    layers = _plan_layers(ready.module, methods, layer, first[None].to(dev))
    timings["load"] += time.perf_counter() - t2
    return _Prepared(inputs, ready, dev, size if has_images else None, labels,
                     names_from if names else None, k, target_idx, layers)


def _check_options(score: str, top_k: int, steps: int, batch_size: int) -> None:
    if score not in SCORES:
        raise CnnlensError(f"--score {score!r}: expected one of {', '.join(SCORES)}")
    for name, v, low in (("--top-k", top_k, 1), ("--faithfulness-steps", steps, 0),
                         ("--batch-size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise CnnlensError(f"{name} must be an integer >= {low}, got {v!r}")
    if steps == 1:  # both ends are shared by every map: one chunk cannot tell maps apart
        raise CnnlensError("--faithfulness-steps 1 scores no point between the curve's ends, "
                           "so every map gets the same AUC; accepted: 0 (off) or >= 2")


def _out_folder(out: str | Path) -> Path:
    """``--out`` as a path; it may not exist yet, but must not be a file."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise CnnlensError(f"--out {out}: is a file; give a folder")
    return out


def _is_image(path: Path) -> bool:
    return input_kind(path) != "signal"


def _class_names(given: str | Path | Sequence[str] | None) -> tuple[list[str] | None, str]:
    """The names and how to call their source in messages."""
    if given is None:
        return None, ""
    if isinstance(given, str | Path):
        return read_class_names(given), f"--class-names {given}"
    names = [str(n) for n in given]
    if not names:
        raise CnnlensError("class_names is empty")
    return names, "class_names"


def _target_index(target: str | int | None, labels: list[str]) -> int | None:
    """``--target`` as a class index: a class name first, else a number in range."""
    if target is None:
        return None
    if isinstance(target, str) and target in labels:
        return labels.index(target)
    try:
        idx = int(target)
    except (TypeError, ValueError):
        idx = -1
    if isinstance(target, bool) or not 0 <= idx < len(labels) or str(idx) != str(target).strip():
        shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
        raise CnnlensError(f"--target {target!r}: not a class; expected a class name ({shown}) "
                           f"or an index 0..{len(labels) - 1}")
    return idx


def _plan_layers(module: torch.nn.Module, methods: list[str],
                 layer: str | Mapping[str, str] | None, sample: torch.Tensor) -> dict[str, str]:
    """Layer per method: one for all, per method, or the last conv-like layer."""
    per = dict(layer) if isinstance(layer, Mapping) else {}
    fallback = layer if isinstance(layer, str) else None
    if fallback is None and any(m not in per for m in methods):
        fallback = default_layer(module, sample)
    layers = {m: per.get(m, fallback) or "" for m in methods}
    for m, name in layers.items():
        try:
            resolve_layer(module, name)
        except CnnlensError as exc:
            raise CnnlensError(f"--layer for {m}: {exc}") from None
    return layers


def _groups(samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
    """Indices of same-shape samples, in input order, cut into batches."""
    by_shape: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for i, s in enumerate(samples):
        by_shape.setdefault((s.kind, tuple(s.x.shape)), []).append(i)
    return [idx[j : j + batch_size] for idx in by_shape.values()
            for j in range(0, len(idx), batch_size)]


def _explain_all(ready: ReadyModel, samples: list[Sample], out: Path, *,
                 layers: dict[str, str], score: str, target: int | None, top_k: int,
                 steps: int, baseline: str | float, batch_size: int, seed: int, dev: torch.device,
                 timings: dict[str, float], progress: ProgressFn | None) -> list[Explained]:
    """CAMs, faithfulness and overlays batch by batch; one record per input, input order."""
    records: dict[int, Explained] = {}
    taken: set[str] = set()
    done = 0
    by_layer: dict[str, list[str]] = {}
    for m, name in layers.items():
        by_layer.setdefault(name, []).append(m)
    n = len(samples)
    for idx in _groups(samples, batch_size):
        t = time.perf_counter()
        x = torch.stack([samples[i].x for i in idx]).to(dev)
        maps, raws, logits, raw_shape = _cams(ready, x, by_layer, target=target, score=score)
        probs = torch.softmax(logits, dim=1)
        explained = (torch.full((len(idx),), target, dtype=torch.long) if target is not None
                     else probs.argmax(dim=1))
        batch = _records(samples, idx, probs, explained, top_k, taken)
        for j, rec in enumerate(batch):
            rec.raw = {m: r[j] for m, r in raws.items()}
        timings["cams"] += time.perf_counter() - t
        if progress is not None:
            progress("cams", done + len(idx), n)
        if steps:
            t = time.perf_counter()
            maps_all = {**maps, RANDOM: _random(idx, x.shape, raw_shape, seed)}
            base = probs.gather(1, explained[:, None])[:, 0]
            auc = deletion_insertion(ready.module, x, maps_all, explained, steps=steps,
                                     baseline=baseline, base_probs=base)
            for j, rec in enumerate(batch):
                rec.auc = {m: {o: float(v[j]) for o, v in per.items()} for m, per in auc.items()}
            timings["faithfulness"] += time.perf_counter() - t
            if progress is not None:
                progress("faithfulness", done + len(idx), n)
        t = time.perf_counter()
        for j, rec in enumerate(batch):
            _draw(rec, samples[idx[j]].x, {m: maps[m][j] for m in layers}, out)
        timings["overlays"] += time.perf_counter() - t
        done += len(idx)
        if progress is not None:
            progress("overlays", done, n)
        records.update(zip(idx, batch, strict=True))
    return [records[i] for i in range(n)]


def _cams(ready: ReadyModel, x: torch.Tensor, by_layer: dict[str, list[str]], *,
          target: int | None, score: str
          ) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray], torch.Tensor,
                     tuple[int, ...]]:
    """Every method's maps and raw layer maps of a batch, one engine pass per layer; with the
    logits and the raw maps' grid (both from the first layer)."""
    maps: dict[str, torch.Tensor] = {}
    raws: dict[str, np.ndarray] = {}
    logits = raw_shape = None
    for name, ms in by_layer.items():
        res = explain_methods(ready.module, x, layer=name, methods=ms, targets=target,
                              score=score)
        for m in ms:
            maps[m] = res[m].maps.detach().cpu()
            raws[m] = res[m].raw.detach().float().cpu().numpy()
        first = res[ms[0]]
        logits = first.logits.detach().float().cpu() if logits is None else logits
        raw_shape = raw_shape or tuple(first.raw.shape[1:])
    assert logits is not None and raw_shape is not None
    return maps, raws, logits, raw_shape


def _records(samples: list[Sample], idx: list[int], probs: torch.Tensor,
             explained: torch.Tensor, top_k: int, taken: set[str]) -> list[Explained]:
    """A record per input of the batch: its file-safe name, explained class and top-k."""
    top = torch.topk(probs, top_k, dim=1)
    return [Explained(samples[i].name, samples[i].kind, tuple(samples[i].x.shape),
                      _unique(safe_filename(samples[i].name, max_len=60), taken),
                      int(explained[j]),
                      [(int(c), float(p)) for c, p in zip(top.indices[j], top.values[j],
                                                          strict=True)])
            for j, i in enumerate(idx)]


def _random(idx: list[int], shape: torch.Size, cells: tuple[int, ...], seed: int
            ) -> torch.Tensor:
    """A random map per input on the CAM layer's grid, seeded by the input's position (so
    it does not depend on the batching)."""
    spatial = tuple(shape[2:])
    return torch.cat([random_maps((1, *spatial), seed=seed * 1_000_003 + i, cells=cells)
                      for i in idx])


def _unique(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when two inputs slugify alike."""
    name, n = stem, 1
    while name.lower() in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name.lower())
    return name


def _draw(rec: Explained, x: torch.Tensor, maps: dict[str, torch.Tensor], out: Path) -> None:
    """Write the input's overlay PNGs and keep their page versions (data URIs)."""
    x = x.detach().cpu()
    if rec.kind == "image":
        rgb = image_uint8(x)
        rec.input_uri, rec.size = webp_uri(rgb), (rgb.shape[1], rgb.shape[0])
        rec.preview = "data:image/webp;base64," + base64.b64encode(
            webp_thumbnail(rgb)).decode("ascii")
    else:
        png = signal_overlay_png(x, None)
        rec.input_uri, rec.size = png_uri(png), _png_size(png)
        rec.preview = thin_signal(x.float().numpy().reshape(x.shape[0], -1))
    for method, m in maps.items():
        rel = f"overlays/{rec.safe}__{method}.png"
        if rec.kind == "image":
            blend = image_overlay(x, m)
            png, rec.uris[method] = png_bytes(blend), webp_uri(blend)
        else:
            png = signal_overlay_png(x, m)
            rec.uris[method] = png_uri(png)
        _write_bytes(out / rel, png)
        rec.files[method] = rel


def _write_bytes(path: Path, data: bytes) -> None:
    """Atomically, without an fsync per picture (hundreds of them; the page is synced)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


__all__ = ["PHASES", "Explained", "explain_inputs"]
