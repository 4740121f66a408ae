"""What ``explain --inputs`` leaves behind: ``predictions.csv``, ``summary.json``, ``index.html``.

The overlays are written while the batches run; these three files are written from the
per-input records afterwards, the page last, each atomically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlens.faithfulness.label_free import describe
from cnnlens.fileio import atomic_write, write_json
from cnnlens.report.explorer import ExplorerData, legend, payload, series
from cnnlens.report.inputs_page import write_inputs_page

RANDOM = "random"


@dataclass
class Explained:
    """What the outputs show for one input."""

    name: str
    kind: str
    shape: tuple[int, ...]
    safe: str  # file-name stem of its overlays
    explained: int
    top: list[tuple[int, float]]
    auc: dict[str, dict[str, float]] = field(default_factory=dict)  # map -> output -> value
    files: dict[str, str] = field(default_factory=dict)  # method -> overlay path under out
    input_uri: str = ""
    uris: dict[str, str] = field(default_factory=dict)  # method -> data URI
    size: tuple[int, int] = (0, 0)  # width, height of its pictures
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # method -> layer-res map
    preview: str | np.ndarray = ""  # the explorer's thumbnail URI, or the (thinned) signal


def text_cell(value: str) -> str:
    """A file or class name as a CSV cell a spreadsheet shows as text: a leading ``=``,
    ``+``, ``-``, ``@``, tab or CR would make it a formula (OWASP's CSV injection advice)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_text(records: Sequence[Explained], methods: Sequence[str], labels: Sequence[str],
             top_k: int) -> str:
    """One row per input: file, explained class, top-k classes and probabilities, AUCs."""
    maps = [*methods, RANDOM] if records and records[0].auc else []
    header = ["file", "kind", "explained"]
    for r in range(1, top_k + 1):
        header += [f"top{r}", f"top{r}_prob"]
    header += [f"{m}_{o}" for m in maps for o in ("deletion_auc", "insertion_auc")]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for rec in records:
        row: list[Any] = [text_cell(rec.name), rec.kind, text_cell(labels[rec.explained])]
        for c, p in rec.top:
            row += [text_cell(labels[c]), f"{p:.6f}"]
        row += [f"{rec.auc[m][o]:.6f}" for m in maps for o in ("deletion_auc", "insertion_auc")]
        writer.writerow(row)
    return buf.getvalue()


def faithfulness_summary(records: Sequence[Explained], methods: Sequence[str]
                         ) -> list[dict[str, Any]]:
    """Mean AUCs per map and how many inputs each method beats its random map on."""
    if not records or not records[0].auc:
        return []
    n = len(records)
    rnd_del = np.array([r.auc[RANDOM]["deletion_auc"] for r in records])
    rnd_ins = np.array([r.auc[RANDOM]["insertion_auc"] for r in records])
    rows = []
    for m in [*methods, RANDOM]:
        dele = np.array([r.auc[m]["deletion_auc"] for r in records])
        ins = np.array([r.auc[m]["insertion_auc"] for r in records])
        rows.append({
            "method": m, "deletion": float(dele.mean()), "insertion": float(ins.mean()),
            "beats_deletion": "–" if m == RANDOM else f"{int((dele < rnd_del).sum())} of {n}",
            "beats_insertion": "–" if m == RANDOM else f"{int((ins > rnd_ins).sum())} of {n}",
        })
    return rows


def write_outputs(out: Path, records: Sequence[Explained], *, methods: Sequence[str],
                  layers: Mapping[str, str], labels: Sequence[str], ready: Any,
                  settings: dict[str, Any], bad: Sequence[tuple[str, str]],
                  skipped: Sequence[str], timings: Mapping[str, float]) -> dict[str, Any]:
    """Write the CSV and the page; return the summary (the caller adds the timings and
    writes it as ``summary.json`` with :func:`write_summary`)."""
    loaded = ready.loaded
    steps = int(settings["faithfulness_steps"])
    choices = {**describe(steps, settings["faithfulness_baseline"]),
               "random map": "uniform noise on the CAM layer's grid, upsampled like a CAM, "
               "one per input"} if steps else {}
    summary_rows = faithfulness_summary(records, methods)
    atomic_write(out / "predictions.csv", lambda fh: fh.write(
        csv_text(records, methods, labels, int(settings["top_k"])).encode("utf-8")))
    model_info = {"source": loaded.source, "kind": loaded.kind, "weights": loaded.weights,
                  "sha256": loaded.sha256, "converter": loaded.converter,
                  "outputs": ready.outputs, "input": ready.normalize,
                  "notes": list(loaded.notes)}
    summary: dict[str, Any] = {
        "n": len(records), "methods": list(methods), "layers": dict(layers),
        "classes": len(labels), "model": {k: v for k, v in model_info.items() if v},
        **settings, "faithfulness": {"choices": choices, "summary": summary_rows},
        "bad": [{"path": p, "error": e} for p, e in bad], "skipped": len(skipped),
        "files": {"overlays": "overlays", "predictions": "predictions.csv",
                  "page": "index.html", "summary": "summary.json"},
        "timings": dict(timings),
    }
    header = [("model", f"{loaded.source} ({loaded.kind})"), ("sha256", loaded.sha256),
              ("outputs", ready.outputs), ("input", ready.normalize),
              ("methods", ", ".join(f"{m} at {layers[m]}" for m in methods)),
              ("score explained", settings["score"]),
              ("explained class", settings["target"] or "the predicted class"),
              ("classes", f"{len(labels)}" + (f" ({settings['class_names']})"
                                               if settings["class_names"] else " (no names)"))]
    if settings.get("image_size"):
        header.append(("image size", f"{settings['image_size']} px, Pillow bilinear, x / 255"))
    write_inputs_page(out / "index.html", {
        "title": "cnnlens: explained inputs", "header": header, "summary": summary_rows,
        "choices": choices, "bad": list(bad), "skipped": list(skipped),
        "inputs": [_page_item(r, methods, labels) for r in records],
        "explorer": explorer_section(records, methods, labels)})
    return summary


def explorer_section(records: Sequence[Explained], methods: Sequence[str],
                     labels: Sequence[str]) -> dict[str, Any] | None:
    """The page's explorer (every input, every map, sortable by its AUCs), or a note when
    the inputs cannot share one (images and signals mixed, or maps of different shapes)."""
    if not records:
        return None
    kinds = {r.kind for r in records}
    shapes = {tuple(r.raw[m].shape for m in methods) for r in records}
    previews = {np.shape(r.preview) for r in records if r.kind == "signal"}
    if len(kinds) > 1 or len(shapes) > 1 or len(previews) > 1:
        return {"payload": None, "note": "No explorer: it needs inputs of one kind whose "
                "maps share one shape (these mix images and signals, or sizes)."}
    names = list(labels)
    values = {m: {key: [r.auc[m][key] if r.auc else None for r in records]
                  for key in ("deletion_auc", "insertion_auc")} for m in methods}
    data = ExplorerData(
        kind=records[0].kind, class_names=names, methods=list(methods),
        indices=np.arange(len(records)), labels=np.full(len(records), -1),
        predicted=np.asarray([r.top[0][0] for r in records]),
        confidence=np.asarray([r.top[0][1] for r in records]),
        raw={m: np.stack([r.raw[m] for r in records]) for m in methods},
        names=[r.name for r in records], total=len(records),
        metrics=series(values, ["deletion_auc", "insertion_auc"]) if records[0].auc else [])
    if data.kind == "image":
        data.thumbs = [str(r.preview) for r in records]
    else:
        data.signals = np.stack([np.asarray(r.preview, np.float32) for r in records])
    return {"payload": payload(data), "note": None, "legend": legend(labelled=False)}


def write_summary(out: Path, summary: Mapping[str, Any]) -> None:
    """``summary.json``, written after the page so that it holds the page's time too."""
    write_json(out / "summary.json", dict(summary))


def _page_item(rec: Explained, methods: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    auc = rec.auc
    return {
        "name": rec.name, "explained": labels[rec.explained],
        "top": [(labels[c], p) for c, p in rec.top],
        "input_uri": rec.input_uri, "width": rec.size[0], "height": rec.size[1],
        "random": ({"deletion": auc[RANDOM]["deletion_auc"],
                    "insertion": auc[RANDOM]["insertion_auc"]} if auc else None),
        "overlays": [{"method": m, "uri": rec.uris[m], "file": rec.files[m],
                      "deletion": auc[m]["deletion_auc"] if auc else None,
                      "insertion": auc[m]["insertion_auc"] if auc else None}
                     for m in methods],
    }


__all__ = ["Explained", "csv_text", "faithfulness_summary", "text_cell", "write_outputs",
           "write_summary"]
