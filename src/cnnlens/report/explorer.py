"""The Explorer: every explained sample, every method's map over it, filtered and sorted in
the page.

The data travel as one JSON block that the page's script (``templates/explorer.js``) colours
and upsamples on canvases: maps at the layer's resolution (block means beyond
:data:`MAX_CELLS` a side), min-max scaled, quantised to one byte and deflated; image inputs
as small WebP thumbnails (``cams/inputs.npz``); signals quantised to one byte per point.
Per-sample faithfulness values come from ``faithfulness/results.json``, exactly as written
there, so that sorting in the page orders samples by those numbers. The script is admitted
by its sha256 hash in the page's Content-Security-Policy; class and file names are JSON
strings that the script writes as text, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import combinations
from typing import Any

import numpy as np
from matplotlib import colormaps
from scipy.stats import rankdata

from cnnlens.errors import CnnlensError
from cnnlens.explain.figures import CMAP  # the galleries' colour map, sent as 256 colours
from cnnlens.explain.overlay import ALPHA  # the galleries' blend: opacity when a page opens
from cnnlens.report.cam_sections import CAMS, FAITH, RANDOM, metric_column, output_specs
from cnnlens.report.model import Ctx, Section, as_dict, as_list, not_run, number

TITLE = "Explorer"
SCRIPT = "explorer.js"
STYLE = "explorer.css"
PREVIEWS = "cams/inputs.npz"
#: Longest map axis sent (images, signals): finer maps travel as block means. At 56 x 56
#: cells, 496 tiles x 3 maps stay near 3 MB deflated; a card is 104 px wide.
MAX_CELLS = (64, 512)


@dataclass
class ExplorerData:
    """What the explorer shows, in sample order; every array has one row per sample.

    ``labels`` holds -1 where the true class is unknown (loose inputs); ``raw`` the maps at
    the layer's resolution, ``(N, *S)`` per method; exactly one of ``thumbs`` (image data
    URIs) and ``signals`` (``(N, C, L)``) is set. ``metrics``: see :func:`metric_series`.
    """

    kind: str
    class_names: list[str]
    methods: list[str]
    indices: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    raw: dict[str, np.ndarray]
    thumbs: list[str] | None = None
    signals: np.ndarray | None = None
    names: list[str] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0  # samples explained, of which these are the first
    split: str = ""


def quantised_maps(raw: np.ndarray) -> np.ndarray:
    """``(N, *S)`` maps min-max scaled per sample (constant maps: 0), as uint8 0..255."""
    flat = np.asarray(raw, dtype=np.float64).reshape(raw.shape[0], -1)
    if flat.size == 0:
        return np.zeros(flat.shape, np.uint8)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = hi - lo
    ok = span > 0
    scaled = np.where(ok, (flat - lo) / np.where(ok, span, 1.0), 0.0)
    return np.rint(np.nan_to_num(scaled) * 255.0).astype(np.uint8)


def coarsened(maps: np.ndarray, max_cells: int) -> np.ndarray:
    """``(N, *S)`` with every axis longer than ``max_cells`` shrunk by the smallest whole
    factor that fits, as block means (the last block padded by its edge)."""
    out = np.asarray(maps, dtype=np.float64)
    for axis in range(1, out.ndim):
        size = out.shape[axis]
        if size <= max_cells:
            continue
        f = -(-size // max_cells)
        pad = [(0, 0)] * out.ndim
        pad[axis] = (0, (-size) % f)
        out = np.pad(out, pad, mode="edge")
        shape = (*out.shape[:axis], out.shape[axis] // f, f, *out.shape[axis + 1:])
        out = out.reshape(shape).mean(axis=axis + 1)
    return out


def quantised_signals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, C, L)`` signals as uint8 per sample (all channels share one range), with each
    sample's range ``(lo, hi)`` so values can be read back."""
    flat = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    if flat.shape[1] == 0:
        zeros = np.zeros(flat.shape[0])
        return flat.astype(np.uint8), zeros, zeros
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint((flat - lo[:, None]) / span[:, None] * 255.0)
    return np.clip(np.nan_to_num(q), 0, 255).astype(np.uint8), lo, hi


def resize_linear(maps: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(N, *S)`` resized to ``(N, *shape)`` by separable linear interpolation with
    ``align_corners=False`` (how the engine upsamples maps)."""
    out = np.asarray(maps, dtype=np.float64)
    for axis, size in enumerate(shape, start=1):
        n = out.shape[axis]
        if n == size:
            continue
        pos = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0.0, n - 1)
        left = np.floor(pos).astype(np.int64)
        right = np.minimum(left + 1, n - 1)
        w = (pos - left).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, left, axis=axis) * (1 - w) + np.take(out, right, axis=axis) * w
    return out


def disagreement(raw: dict[str, np.ndarray]) -> np.ndarray | None:
    """Per sample, 1 − the mean Spearman rank correlation between every two methods' maps
    (at the finest layer resolution among them); NaN where a map is constant. ``None`` with
    fewer than two methods."""
    if len(raw) < 2:
        return None
    shapes = [m.shape[1:] for m in raw.values()]
    target = max(shapes, key=lambda s: int(np.prod(s)))
    z = []
    for maps in raw.values():
        flat = resize_linear(maps, target).reshape(maps.shape[0], -1)
        r = rankdata(flat, axis=1)
        r -= r.mean(axis=1, keepdims=True)
        norm = np.sqrt((r * r).sum(axis=1, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            z.append(np.where(norm > 0, r / np.where(norm > 0, norm, 1.0), np.nan))
    rho = np.mean([(a * b).sum(axis=1) for a, b in combinations(z, 2)], axis=0)
    return 1.0 - rho


def metric_series(results: dict[str, Any], methods: list[str], indices: np.ndarray
                  ) -> list[dict[str, Any]]:
    """Each per-sample faithfulness output of ``results.json`` as ``{key, label, scale,
    higher, values: {method: [value or None per sample]}}``, aligned to ``indices``."""
    per_sample = as_dict(results.get("per_sample"))
    values = as_dict(per_sample.get("values"))
    where = {int(i): k for k, i in enumerate(as_list(per_sample.get("indices")))
             if isinstance(i, int) and not isinstance(i, bool)}
    rows = [where.get(int(i)) for i in indices]
    keys = [str(k) for k in as_list(results.get("metric_keys"))] or list(
        dict.fromkeys(k for per in values.values() for k in as_dict(per)))
    aligned: dict[str, dict[str, list[Any]]] = {}
    for m in methods:
        for key in keys:
            column = as_list(as_dict(values.get(m)).get(key))
            if column:
                aligned.setdefault(m, {})[key] = [
                    column[r] if r is not None and r < len(column) else None for r in rows]
    return series(aligned, keys)


def series(values: dict[str, dict[str, list[Any]]], keys: list[str]) -> list[dict[str, Any]]:
    """Per-sample values ``{method: {key: [value or None]}}`` as the explorer's metric list:
    ``{key, label, digits, scale, higher, values: {method: [...]}}`` per key that has any."""
    specs = output_specs()
    out = []
    for key in keys:
        per_method = {m: [number(v) for v in per[key]] for m, per in values.items()
                      if key in per}
        if not per_method:
            continue
        spec = specs.get(key.partition("@")[0])
        col = metric_column(key, specs)
        out.append({"key": key, "label": col["label"], "digits": col["digits"],
                    "scale": float(getattr(spec, "scale", 1.0)),
                    "higher": getattr(spec, "higher_is_better", None), "values": per_method})
    return out


def payload(d: ExplorerData) -> dict[str, Any]:
    """The JSON the page's script reads (see the module docstring)."""
    # a signal model written with Conv2d gives (N, L, 1): its maps run along L
    raws = {m: r.reshape(r.shape[0], -1) if d.kind == "signal" else r for m, r in d.raw.items()}
    maps = {}
    for m in d.methods:
        raw = raws[m]
        small = coarsened(raw, MAX_CELLS[d.kind == "signal"])
        data = zlib.compress(quantised_maps(small).tobytes(), 9)
        maps[m] = {"shape": [int(s) for s in small.shape[1:]],
                   "cells": [int(s) for s in raw.shape[1:]], "deflate": _b64(data)}
    out: dict[str, Any] = {
        "kind": d.kind, "split": d.split, "classes": list(d.class_names),
        "methods": list(d.methods), "total": int(d.total or len(d.indices)),
        "index": [int(i) for i in d.indices], "label": [int(v) for v in d.labels],
        "pred": [int(v) for v in d.predicted],
        "conf": [round(float(c), 4) if np.isfinite(c) else None for c in d.confidence],
        "maps": maps, "metrics": d.metrics, "alpha": ALPHA, "cmap": _b64(colour_table()),
    }
    dis = disagreement(raws)
    if dis is not None:
        out["disagreement"] = [None if not np.isfinite(v) else round(float(v), 4) for v in dis]
    if d.names is not None:
        out["names"] = list(d.names)
    if d.thumbs is not None:
        out["thumbs"] = list(d.thumbs)
    if d.signals is not None:
        q, lo, hi = quantised_signals(d.signals)
        out["signals"] = {"channels": int(d.signals.shape[1]), "length": int(d.signals.shape[2]),
                          "data": _b64(q), "lo": [float(v) for v in lo],
                          "hi": [float(v) for v in hi]}
    return out


@cache
def colour_table() -> np.ndarray:
    """The colour map as 256 RGB triplets (uint8, flattened)."""
    rgb = np.asarray(colormaps[CMAP](np.linspace(0.0, 1.0, 256)))[:, :3]
    return np.rint(rgb * 255.0).astype(np.uint8).reshape(-1)


@cache
def script() -> str:
    """The explorer's script, as inlined in pages."""
    return resources.files("cnnlens.report").joinpath("templates", SCRIPT).read_text("utf-8")


@cache
def style() -> str:
    """The explorer's stylesheet rules, added to each page's own."""
    return resources.files("cnnlens.report").joinpath("templates", STYLE).read_text("utf-8")


def sha256_source(text: str) -> str:
    """The CSP source that admits ``text`` as an inline script or style: ``'sha256-…'``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def script_hash() -> str:
    """The CSP source that admits :func:`script` inline."""
    return sha256_source(script())


def section(ctx: Ctx) -> Section:
    """The explorer section of a run's report, from ``cams/`` and ``faithfulness/``."""
    summary = ctx.read_dict(CAMS)
    if summary is None:
        return not_run("explorer", TITLE, ctx.command("explain", str(ctx.path)), CAMS)
    if ctx.explorer_limit == 0:
        return Section("explorer", TITLE, status="off",
                       message="left out of this report (--explorer-limit 0)")
    data = run_data(ctx, summary)
    shown, total = len(data.indices), data.total
    notes = [f"The first {shown} of {total} explained samples (--explorer-limit {shown})."
             if shown < total else "", coarse_note(data)]
    return Section("explorer", TITLE, data={"payload": payload(data),
                                            "note": " ".join(n for n in notes if n) or None,
                                            "legend": legend(labelled=True)})


def coarse_note(d: ExplorerData) -> str:
    """Which methods' maps the explorer draws from block means, and why; '' if none."""
    limit = MAX_CELLS[d.kind == "signal"]
    coarse = {m: r.shape[1:] for m, r in d.raw.items()
              if d.kind != "signal" and max(r.shape[1:], default=0) > limit}
    if not coarse:
        return ""
    sizes = "; ".join(f"{m} {' × '.join(map(str, shape))}" for m, shape in coarse.items())
    return (f"Maps finer than {limit} cells a side ({sizes}) are drawn here from block means "
            "to keep the page small; the galleries above and cams/*.npz keep every cell.")


def legend(*, labelled: bool) -> str:
    """What the explorer offers, in a sentence or four (``labelled``: true classes known)."""
    filters = "by true and predicted class and by correct or wrong" if labelled else \
        "by predicted class"
    return (f"Every explained {'sample' if labelled else 'input'} with each method's map over "
            f"it. Filter {filters}; sort by confidence, by how much the methods disagree, or "
            "by any per-sample faithfulness value computed. Click a card (or press Enter) to "
            "enlarge it; in the enlarged view ← and → step through the list and Esc closes "
            "it. The address keeps the view, so a link to it shows the same cards.")


def run_data(ctx: Ctx, summary: dict[str, Any]) -> ExplorerData:
    """The explained samples of a run folder as :class:`ExplorerData`."""
    methods = [str(m) for m in as_list(summary.get("methods"))]
    if not methods:
        raise CnnlensError(f"{ctx.path / CAMS}: lists no methods")
    kind = str(summary.get("kind", ""))
    limit = ctx.explorer_limit
    files = as_dict(summary.get("files"))
    arrays = {m: _npz(ctx, f"cams/{files.get(m, f'{m}.npz')}") for m in methods}
    first = arrays[methods[0]]
    total = len(first["indices"])
    n = total if limit is None else min(limit, total)
    raw = {}
    for m in methods:
        r = np.asarray(arrays[m]["raw"][:n], dtype=np.float32)
        if kind == "signal":
            r = r.reshape(r.shape[0], -1)
        elif r.ndim != 3:
            raise CnnlensError(f"{ctx.path / 'cams' / files.get(m, m)}: maps of shape "
                               f"{tuple(r.shape[1:])}; the explorer draws 1-D and 2-D maps")
        raw[m] = r
    probs = np.asarray(first["probs"][:n], dtype=np.float64)
    predicted = np.asarray(first["predicted"][:n], dtype=np.int64)
    indices = np.asarray(first["indices"][:n], dtype=np.int64)
    conf = (probs[np.arange(n), predicted] if probs.ndim == 2 and probs.shape[0] == n
            else np.full(n, np.nan))
    data = ExplorerData(
        kind=kind, split=str(summary.get("split", "")),
        class_names=[str(c) for c in as_list(summary.get("class_names"))],
        methods=methods, indices=indices, predicted=predicted, confidence=conf,
        labels=np.asarray(first["labels"][:n], dtype=np.int64), raw=raw, total=total)
    _add_previews(ctx, data)
    results = ctx.read_dict(FAITH)
    if results is not None:
        data.metrics = metric_series(results, [m for m in methods if m != RANDOM], indices)
    return data


def _add_previews(ctx: Ctx, data: ExplorerData) -> None:
    """Thumbnails or signals of ``data``'s samples from ``cams/inputs.npz``."""
    p = _npz(ctx, PREVIEWS)
    where = {int(i): k for k, i in enumerate(p["indices"])}
    missing = [int(i) for i in data.indices if int(i) not in where]
    if missing:
        raise CnnlensError(f"{ctx.path / PREVIEWS}: no preview of sample {missing[0]}; run "
                           f"`cnnlens explain {ctx.path}` again")
    rows = [where[int(i)] for i in data.indices]
    if "signals" in p:
        data.signals = np.asarray(p["signals"], dtype=np.float32)[rows]
    else:
        blob, offsets = p["webp"], p["offsets"]
        data.thumbs = ["data:image/webp;base64," + base64.b64encode(
            blob[offsets[r]:offsets[r + 1]].tobytes()).decode("ascii") for r in rows]


def _npz(ctx: Ctx, rel: str) -> dict[str, np.ndarray]:
    path = ctx.path / rel
    if not path.is_file():
        raise CnnlensError(f"{path}: not found; run `cnnlens explain {ctx.path}` again "
                           "(older versions did not write it)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CnnlensError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def _b64(a: np.ndarray | bytes) -> str:
    raw = a if isinstance(a, bytes) else np.ascontiguousarray(a, dtype=np.uint8).tobytes()
    return base64.b64encode(raw).decode("ascii")


__all__ = [
    "MAX_CELLS",
    "ExplorerData",
    "coarse_note",
    "coarsened",
    "colour_table",
    "disagreement",
    "legend",
    "metric_series",
    "payload",
    "quantised_maps",
    "resize_linear",
    "run_data",
    "script",
    "script_hash",
    "section",
    "series",
    "sha256_source",
    "style",
]
