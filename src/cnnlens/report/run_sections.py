"""Header, data, training, evaluation and timing sections, from the run's JSON artifacts."""

from __future__ import annotations

from typing import Any

from cnnlens.evaluate.limits import MANY_CLASSES, many_classes
from cnnlens.report import class_summaries
from cnnlens.report.model import (
    IMPORTED,
    NOT_RUN,
    Ctx,
    Section,
    as_dict,
    name_of,
    not_run,
    number,
    plain,
)

HISTORY = "train/history.json"
METRICS = "eval/metrics.json"


def header(ctx: Ctx) -> dict[str, Any]:
    """Rows describing the run: what was trained how, when, with which versions."""
    cfg, meta = ctx.config, ctx.meta
    versions = as_dict(meta.get("versions"))
    rows: list[tuple[str, str]] = [
        ("task", plain(cfg.get("task"))),
        ("model", plain(cfg.get("model", meta.get("model")))),
        ("recipe", _recipe_text(cfg.get("recipe", meta.get("recipe")))),
        ("epochs (config)", plain(cfg.get("epochs"))),
        ("seed", plain(cfg.get("seed", meta.get("seed")))),
        ("created", plain(cfg.get("created"))),
        ("device (config)", plain(cfg.get("device"))),
    ]
    if meta:
        rows.append(("checkpoint", _checkpoint_text(meta)))
    rows.append(("cnnlens version", plain(versions.get("cnnlens", cfg.get("cnnlens_version")))))
    for lib in ("torch", "numpy", "python"):
        if lib in versions:
            rows.append((f"{lib} version", plain(versions[lib])))
    rows.append(("run folder", str(ctx.path.resolve())))
    rows = [(k, v) for k, v in rows if v != "–" or k in ("task", "model")]
    source = cfg.get("source") or meta.get("imported_from")
    source_rows = ([(str(k), plain(v)) for k, v in source.items()]
                   if isinstance(source, dict) else [("source", plain(source))] if source else [])
    return {"rows": rows, "source": source_rows}


def _recipe_text(recipe: Any) -> str:
    if not isinstance(recipe, dict):
        return "none (imported model)" if recipe is None else plain(recipe)
    parts = [f"{k} {plain(recipe[k])}" for k in ("lr", "batch_size", "l2", "momentum",
                                                   "schedule", "val_fraction", "augment")
             if k in recipe]
    if recipe.get("early_stopping"):
        parts.append(f"early stopping, patience {plain(recipe.get('patience'))}")
    return f"{plain(recipe.get('name', 'custom'))}: " + ", ".join(parts)


def _checkpoint_text(meta: dict[str, Any]) -> str:
    parts = ["checkpoints/model.safetensors"]
    if meta.get("selected"):
        parts.append(f"copy of '{plain(meta['selected'])}'")
    if number(meta.get("epoch")) is not None:
        parts.append(f"after epoch {int(meta['epoch']) + 1}")
    if number(meta.get("epochs_run")) is not None:
        parts.append(f"{int(meta['epochs_run'])} epochs run")
    return ", ".join(parts)


def data_summary(ctx: Ctx) -> Section:
    """What the model saw: task, classes, data options and samples per class of the eval split."""
    cfg = ctx.config
    data = as_dict(cfg.get("data"))
    metrics = ctx.read_dict(METRICS) or {}
    names = _class_names(ctx, metrics)
    rows: list[tuple[str, str]] = [("task", ctx.task)]
    kind = _kind(ctx)
    if kind:
        rows.append(("input kind", kind))
    rows.append(("classes", _class_list(names)))
    for key in ("data_dir", "image_size", "val_fraction", "augment", "seed"):
        if key in data and not (key == "image_size" and kind == "signal"):
            rows.append((key.replace("_", " "), plain(data[key])))
    history = ctx.read(HISTORY)
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        last = history[-1]
        seen = number(last.get("items_per_s"))
        secs = number(last.get("seconds"))
        if seen is not None and secs is not None:
            rows.append(("training samples per epoch", str(round(seen * secs))))
        rows.append(("validation split", "yes" if "val_loss" in last else "none"))
    per_class = [p for p in metrics.get("per_class") or [] if isinstance(p, dict)]
    support = [{"class": plain(p.get("class")), "support": plain(p.get("support"))}
               for p in per_class]
    split = metrics.get("split")
    if metrics:
        rows.append((f"{plain(split)} split samples", plain(metrics.get("n"))))
    return Section("data", "Data", data={"rows": rows, "support": support,
                                         "split": plain(split) if split else None,
                                         "scroll": many_classes(len(support))})


def _class_list(names: list[str]) -> str:
    """``K: a, b, …``; above ``MANY_CLASSES`` only the first names (all are in the tables)."""
    if not names:
        return "–"
    if not many_classes(len(names)):
        return f"{len(names)}: {', '.join(names)}"
    return (f"{len(names)}: {', '.join(names[:MANY_CLASSES])}, … and "
            f"{len(names) - MANY_CLASSES} more (all in the per-class tables)")


def _class_names(ctx: Ctx, metrics: dict[str, Any]) -> list[str]:
    names = metrics.get("class_names") or ctx.meta.get("class_names") or []
    return [str(n) for n in names] if isinstance(names, list) else []


def _kind(ctx: Ctx) -> str | None:
    for rel in ("cams/summary.json", "faithfulness/results.json"):
        obj = ctx.read_dict(rel)
        if obj and obj.get("kind"):
            return str(obj["kind"])
    return None


def training(ctx: Ctx) -> Section:
    """Learning curves and the first / best / final epoch from ``train/history.json``."""
    title = "Training"
    history = ctx.read(HISTORY)
    if not isinstance(history, list) or not history:
        if ctx.config.get("source") or ctx.meta.get("imported_from"):
            return Section("training", title, status=IMPORTED,
                           message="the model was imported, not trained by cnnlens")
        return not_run("training", title, ctx.command("train", "--resume", "--out",
                                                      str(ctx.path)), HISTORY)
    epochs = [h for h in history if isinstance(h, dict)]
    has_val = any(number(h.get("val_loss")) is not None for h in epochs)
    key = "val_loss" if has_val else "loss"
    scored = [h for h in epochs if number(h.get(key)) is not None]
    best = min(scored, key=lambda h: float(h[key])) if scored else None
    rows = [("first", epochs[0]), ("final", epochs[-1])]
    if best is not None:
        rows.insert(1, (f"best ({key.replace('_', ' ')})", best))
    secs = [s for s in (number(h.get("seconds")) for h in epochs) if s is not None]
    return Section("training", title, data={
        "epochs_run": len(epochs),
        "has_val": has_val,
        "rows": [(label, _epoch_row(h)) for label, h in rows],
        "seconds_total": sum(secs) if secs else None,
        "seconds_per_epoch": sum(secs) / len(secs) if secs else None,
        "curves": ctx.figure("eval/learning_curves.png", "Learning curves (loss and accuracy "
                             "per epoch)"),
    })


def _epoch_row(h: dict[str, Any]) -> dict[str, Any]:
    epoch = number(h.get("epoch"))
    return {"epoch": int(epoch) + 1 if epoch is not None else None,
            **{k: number(h.get(k)) for k in ("lr", "loss", "accuracy", "val_loss",
                                              "val_accuracy", "seconds", "items_per_s")}}


def evaluation(ctx: Ctx) -> Section:
    """Accuracy, class-wise metrics, averages, figures and example lists from metrics.json."""
    title = "Evaluation"
    m = ctx.read_dict(METRICS)
    if m is None:
        return not_run("evaluation", title, ctx.command("evaluate", str(ctx.path)), METRICS)
    names = _class_names(ctx, m)
    per_class = [{"class": plain(p.get("class")),
                  **{k: number(p.get(k)) for k in ("support", "accuracy", "precision",
                                                   "recall", "f1", "roc_auc")}}
                 for p in m.get("per_class") or [] if isinstance(p, dict)]
    averages = as_dict(m.get("averages"))
    avg_rows = [(kind, {k: number(as_dict(averages.get(kind)).get(k))
                        for k in ("precision", "recall", "f1")})
                for kind in ("macro", "weighted") if isinstance(averages.get(kind), dict)]
    cm = m.get("confusion_matrix_normalized")
    cm_rows = ([[number(v) for v in row] for row in cm]
               if isinstance(cm, list) and 0 < len(cm) <= 15
               and all(isinstance(r, list) for r in cm) else None)
    many = many_classes(len(per_class) or len(names))
    examples = as_dict(m.get("examples"))
    ex = {group: [{"index": plain(e.get("index")), "true": name_of(names, e.get("true")),
                   "predicted": name_of(names, e.get("predicted")),
                   "confidence": number(e.get("confidence"))}
                  for e in examples.get(group) or [] if isinstance(e, dict)]
          for group in ("successes", "failures")}
    return Section("evaluation", title, data={
        "split": plain(m.get("split")),
        "n": number(m.get("n")),
        "correct": number(m.get("correct")),
        "accuracy": number(m.get("accuracy")),
        "macro_roc_auc": number(m.get("macro_roc_auc")),
        "tta": plain((m.get("options") or {}).get("tta") or "none"),
        "per_class": per_class,
        "averages": avg_rows,
        "class_names": names,
        "confusion": cm_rows,
        "examples": ex,
        "many": class_summaries.summary(m, names) if many else None,
        "figures": class_summaries.figures(ctx, len(per_class)) if many else [
            ctx.figure("eval/roc_curves.png", "ROC curves, one per class (one vs rest)"),
            ctx.figure("eval/confusion_matrix.png", "Confusion matrix (normalised per true "
                       "class)"),
        ],
        "examples_figure": ctx.figure("eval/examples.png", "Success and failure examples",
                                      photo=True),
    })


def timings(ctx: Ctx) -> Section:
    """Seconds per stage where the stage recorded them (evaluation does not)."""
    rows: list[tuple[str, str, float | None]] = []
    history = ctx.read(HISTORY)
    if isinstance(history, list) and history:
        secs = [number(h.get("seconds")) for h in history if isinstance(h, dict)]
        done = [s for s in secs if s is not None]
        if done:
            rows.append(("train", f"all {len(done)} epoch(s)", sum(done)))
            rows.append(("train", "mean per epoch", sum(done) / len(done)))
    cams = ctx.read_dict("cams/summary.json")
    if cams and isinstance(cams.get("seconds"), dict):
        for method, s in cams["seconds"].items():
            rows.append(("explain", f"{method} ({plain(cams.get('n'))} samples)", number(s)))
    faith = ctx.read_dict("faithfulness/results.json")
    secs_f = faith.get("seconds") if faith else None
    if isinstance(secs_f, dict):
        for part, value in secs_f.items():
            if isinstance(value, dict):
                rows.append(("faithfulness", part, _nested_sum(value)))
            else:
                rows.append(("faithfulness", part, number(value)))
    if not rows:
        return Section("timings", "Timings", status=NOT_RUN,
                       message="no stage has recorded timings yet (train, explain and "
                       "faithfulness record them)")
    return Section("timings", "Timings", data={"rows": rows})


def _nested_sum(value: Any) -> float | None:
    if isinstance(value, dict):
        parts = [_nested_sum(v) for v in value.values()]
        nums = [p for p in parts if p is not None]
        return sum(nums) if nums else None
    return number(value)
