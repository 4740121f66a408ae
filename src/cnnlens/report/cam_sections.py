"""CAM gallery and faithfulness sections, from ``cams/summary.json`` and
``faithfulness/results.json``. Every key is optional: a partial or older file still renders.
"""

from __future__ import annotations

from typing import Any

from cnnlens.evaluate.limits import many_classes
from cnnlens.report.model import Ctx, Section, as_dict, as_list, not_run, number, plain

CAMS = "cams/summary.json"
FAITH = "faithfulness/results.json"
RANDOM = "random"


def cams(ctx: Ctx) -> Section:
    """Per-method layer and timing table plus the per-class and failure galleries."""
    title = "Class activation maps"
    s = ctx.read_dict(CAMS)
    if s is None:
        return not_run("cams", title, ctx.command("explain", str(ctx.path)), CAMS)
    methods = [str(m) for m in s.get("methods") or []]
    layers, seconds = as_dict(s.get("layers")), as_dict(s.get("seconds"))
    per_sample, files = as_dict(s.get("seconds_per_sample")), as_dict(s.get("files"))
    rows = [{"method": m, "layer": plain(layers.get(m)), "seconds": number(seconds.get(m)),
             "per_sample": number(per_sample.get(m)), "file": plain(files.get(m))}
            for m in methods]
    figs = as_dict(s.get("figures"))
    galleries = []
    for entry in figs.get("classes") or []:
        if isinstance(entry, dict) and entry.get("file"):
            caption = (f"Class {plain(entry.get('class'))}: {plain(entry.get('n'))} samples "
                       f"(test indices {_indices(entry.get('indices'))})")
            galleries.append(ctx.figure(f"cams/{entry['file']}", caption, photo=True))
    omitted = as_dict(figs.get("classes_omitted"))
    gallery_note = (f"{plain(omitted.get('count'))} more classes among the explained samples "
                    f"have no gallery: at most {plain(omitted.get('limit'))} are drawn, here "
                    f"the {plain(omitted.get('rule'))}" if omitted else None)
    failures = None
    fail = figs.get("failures")
    if isinstance(fail, dict) and fail.get("file"):
        failures = ctx.figure(f"cams/{fail['file']}", f"Failures, most confident first: "
                              f"{plain(fail.get('n'))} samples (indices "
                              f"{_indices(fail.get('indices'))})", photo=True)
    facts = [("split", plain(s.get("split"))), ("samples", plain(s.get("n"))),
             ("score explained", plain(s.get("score"))),
             ("target", plain(s.get("targets", "predicted class"))),
             ("accuracy on these samples", _pct(s.get("accuracy"))),
             ("device", plain(s.get("device")))]
    if s.get("limit"):
        facts.append(("limit", plain(s.get("limit"))))
    return Section("cams", title, data={"facts": facts, "methods": rows,
                                        "galleries": galleries, "failures": failures,
                                        "gallery_note": gallery_note})


def _indices(value: Any) -> str:
    return ", ".join(plain(v) for v in value) if isinstance(value, list) else plain(value)


def _pct(value: Any) -> str:
    v = number(value)
    return "–" if v is None else f"{100 * v:.1f} %"


def output_specs() -> dict[str, Any]:
    """Labels and directions of the metric outputs, if the faithfulness package is present."""
    try:
        from cnnlens.faithfulness.metrics import OUTPUTS
    except ImportError:  # pragma: no cover - depends on which stages are installed
        return {}
    return dict(OUTPUTS)


def metric_column(key: str, specs: dict[str, Any]) -> dict[str, Any]:
    """Header text of a metric key such as ``drop@0.9``: label, fraction and better direction."""
    base, _, frac = key.partition("@")
    spec = specs.get(base)
    label = getattr(spec, "label", base)
    higher = getattr(spec, "higher_is_better", None)
    arrow = "" if higher is None else (" ↑" if higher else " ↓")
    scale = getattr(spec, "scale", 1.0)
    return {"key": key, "label": label + (f", frac {frac}" if frac else "") + arrow,
            "digits": 3 if scale == 1 else 2}


def faithfulness(ctx: Ctx) -> Section:
    """Table I with 95 % intervals, verdicts vs random, paired tests, choices and figures."""
    title = "Faithfulness"
    r = ctx.read_dict(FAITH)
    if r is None:
        return not_run("faithfulness", title, ctx.command("faithfulness", str(ctx.path)), FAITH)
    specs = output_specs()
    summary = as_dict(r.get("summary"))
    keys = [str(k) for k in r.get("metric_keys") or
            list(dict.fromkeys(k for per in summary.values() if isinstance(per, dict)
                               for k in per))]
    columns = [metric_column(k, specs) for k in keys]
    tests = [t for t in r.get("tests") or [] if isinstance(t, dict)]
    vs_random = {(t.get("a"), t.get("metric")): t for t in tests if t.get("b") == RANDOM}
    methods = [m for m in summary if m != RANDOM] + ([RANDOM] if RANDOM in summary else [])
    table = []
    for m in methods:
        per = as_dict(summary.get(m))
        cells = []
        for col in columns:
            s = as_dict(per.get(col["key"]))
            t = vs_random.get((m, col["key"]))
            cells.append({"mean": number(s.get("mean")), "low": number(s.get("low")),
                          "high": number(s.get("high")), "digits": col["digits"],
                          "verdict": plain(t.get("verdict")) if t else None})
        table.append({"method": m, "baseline": m == RANDOM, "cells": cells})
    n = next((s.get("n") for per in summary.values() if isinstance(per, dict)
              for s in per.values() if isinstance(s, dict) and "n" in s), r.get("n"))
    info = as_dict(r.get("methods"))
    method_rows = [{"label": str(label), "method": plain(i.get("method")),
                    "layer": plain(i.get("layer")), "score": plain(i.get("score")),
                    "source": plain(i.get("source", i.get("description")))}
                   for label, i in ((k, as_dict(v)) for k, v in info.items())]
    test_rows = [{"metric": _label(t.get("metric"), specs), "a": plain(t.get("a")),
                  "b": plain(t.get("b")), "verdict": plain(t.get("verdict")),
                  "diff": number(t.get("mean_diff_scaled", t.get("mean_diff"))),
                  "test": plain(t.get("test")), "p": number(t.get("p_value")),
                  "p_holm": number(t.get("p_value_holm"))} for t in tests]
    files = as_dict(r.get("files"))
    figures = [ctx.figure(f"faithfulness/{files.get('curves', 'curves.png')}",
                          "Deletion, insertion and ROAD curves: mean target probability per "
                          "method"),
               ctx.figure(f"faithfulness/{files.get('sanity', 'sanity.png')}",
                          "Sanity check: rank correlation of maps as layers are randomized")]
    return Section("faithfulness", title, data={
        "facts": [("split", plain(r.get("split"))), ("samples", plain(n)),
                  ("fractions kept (drop/increase)", _indices(r.get("fracs"))),
                  ("accuracy on these samples", _pct(r.get("accuracy"))),
                  ("device", plain(r.get("device")))],
        "columns": columns, "table": table, "methods": method_rows, "tests": test_rows,
        "choices": _choices(r.get("choices")), "sanity": _sanity(r.get("sanity")),
        "verdict": _verdict(r.get("verdict"), specs),
        "per_class": _per_class(r.get("per_class"), columns),
        "figures": [f for f in figures if f.problem != "not found"],
    })


def _label(key: Any, specs: dict[str, Any]) -> str:
    return metric_column(str(key), specs)["label"] if key is not None else "–"


def _choices(choices: Any) -> list[tuple[str, str, str]]:
    """Every stated choice as (group, item, text) rows; nested dicts become one row each."""
    rows: list[tuple[str, str, str]] = []
    for group, value in as_dict(choices).items():
        if isinstance(value, dict):
            rows += [(str(group), str(k), plain(v)) for k, v in value.items()]
        else:
            rows.append((str(group), "", plain(value)))
    return rows


def _sanity(sanity: Any) -> list[dict[str, Any]]:
    out = []
    for method, s in as_dict(sanity).items():
        s = as_dict(s)
        layers, corr = as_list(s.get("layers")), as_list(s.get("spearman_mean"))
        final = as_dict(s.get("final"))
        verdict = plain(s.get("verdict")) if s.get("verdict") else (
            "flagged" if s.get("flagged") else "passes")
        out.append({"method": str(method), "flagged": bool(s.get("flagged")),
                    "verdict": verdict, "seeds": len(as_list(s.get("seeds"))) or 1,
                    "final": {"mean": number(final.get("mean")), "low": number(final.get("low")),
                              "high": number(final.get("high"))} if final else None,
                    "threshold": number(s.get("threshold")), "n": plain(s.get("n")),
                    "steps": [(plain(layer), number(c)) for layer, c in zip(layers, corr,
                                                                            strict=False)]})
    return out


def _verdict(verdict: Any, specs: dict[str, Any]) -> dict[str, Any] | None:
    """The verdict paragraph, the agreement numbers and each metric's ranking."""
    v = as_dict(verdict)
    if not v:
        return None
    rankings = []
    for key, rows in as_dict(v.get("rankings")).items():
        col = metric_column(str(key), specs)
        rankings.append({"label": col["label"], "digits": col["digits"], "rows": [
            {"method": plain(r.get("method")), "rank": plain(r.get("rank")),
             "mean": number(r.get("mean")), "low": number(r.get("low")),
             "high": number(r.get("high")), "tied": bool(r.get("tied_with_best"))}
            for r in as_list(rows) if isinstance(r, dict)]})
    contradictions = [
        {"a": plain(c.get("a")), "b": plain(c.get("b")),
         "a_on": ", ".join(_label(k, specs) for k in as_list(c.get("a_better_on"))),
         "b_on": ", ".join(_label(k, specs) for k in as_list(c.get("b_better_on")))}
        for c in as_list(v.get("contradictions")) if isinstance(c, dict)]
    return {"text": plain(v.get("text")), "w": number(v.get("kendall_w")),
            "p": number(v.get("friedman_p")), "agreement": plain(v.get("agreement")),
            "rankings": rankings, "contradictions": contradictions}


def _per_class(per_class: Any, columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per metric: rows of classes, columns of methods (mean [CI])."""
    data = as_dict(per_class)
    methods = list(data)
    out = []
    for col in columns:
        classes: list[str] = []
        for m in methods:
            for c in as_dict(as_dict(data[m]).get(col["key"])):
                if c not in classes:
                    classes.append(c)
        if not classes:
            continue
        rows = []
        for c in classes:
            cells = []
            for m in methods:
                s = as_dict(as_dict(as_dict(data[m]).get(col["key"])).get(c))
                cells.append({"mean": number(s.get("mean")), "low": number(s.get("low")),
                              "high": number(s.get("high")), "n": plain(s.get("n"))})
            rows.append({"class": str(c), "cells": cells})
        out.append({"label": col["label"], "digits": col["digits"], "methods": methods,
                    "rows": rows, "scroll": many_classes(len(rows))})
    return out
