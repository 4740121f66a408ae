"""The ``faithfulness`` stage: score every CAM method and a random baseline on a run's split.

Maps come from ``cams/<method>.npz`` (the explain stage) when they cover the requested
samples with the requested layer and score, and from the CAM engine otherwise. Everything
is computed before anything is written, so a failure leaves earlier outputs untouched.
Writes ``faithfulness/results.json``, ``results.csv`` (long format), ``per_sample.npz``,
``curves.png`` and ``sanity.png``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnlens.data import TaskData
from cnnlens.data.batching import iterate_batches
from cnnlens.distributed import current, setup
from cnnlens.errors import CnnlensError
from cnnlens.explain.api import explain_methods
from cnnlens.explain.stage import load_cams, plan_cams, resolve_methods
from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness import stats as S
from cnnlens.faithfulness.options import (
    DEFAULT_FRACS,
    DEFAULT_METHODS,
    DEFAULT_METRICS,
    IMAGE_METRICS,
    RANDOM,
    SANITY_SAMPLES,
    FaithfulnessOptions,
    MethodSpec,
    default_metrics,
    parse_method,
)
from cnnlens.faithfulness.verdict import build_verdict
from cnnlens.fileio import atomic_write, read_json, write_json, write_npz
from cnnlens.rundir.folder import RunDir, load_checked_data

#: ``progress(stage, done, total)`` with stage ``"cams"``, ``"metrics"`` or ``"sanity"``.
ProgressFn = Callable[[str, int, int], None]


def _removal_space(meta: dict[str, Any], baseline: str | float) -> str:
    """Where removed positions take the baseline value: the data's input space, which is the
    model's own unless the model normalizes it (then zero is not the model's zero)."""
    norm = meta.get("normalize")
    what = {"zero": "0", "mean": "the data's mean", "road": "noisy linear imputation"}.get(
        str(baseline), f"{baseline}")
    if not norm:
        return f"removed positions take {what} in the model's input space"
    return (f"removed positions take {what} in the data's [0, 1] input space, before the "
            f"model's normalization (mean {norm.get('mean')}, std {norm.get('std')}): zero "
            "is black, not the mean colour")


def is_done(run: RunDir, options: FaithfulnessOptions | None = None) -> bool:
    """Done when ``faithfulness/results.json`` answers this request for the current model."""
    opts = options or FaithfulnessOptions()
    path = run.faithfulness_dir / "results.json"
    if not path.is_file():
        return False
    try:
        done = read_json(path)
    except CnnlensError:
        return False
    return (isinstance(done, dict) and done.get("request") == opts.request()
            and done.get("model_digest") == run.model_digest() != "")


def _load_split(run: RunDir, meta: dict[str, Any], split: str, limit: int | None,
                data_dir: str | None, data: TaskData | None
                ) -> tuple[Any, int, list[str], str]:
    """The split's dataset, how many of its samples to score, class names and kind."""
    data = load_checked_data(run, meta, split=split, data_dir=data_dir, data=data)
    ds = data.eval_split(split)
    n = len(ds) if limit is None else min(limit, len(ds))  # type: ignore[arg-type]
    if n == 0:
        raise CnnlensError(f"{run.path}: split {split!r} is empty; choose --split train/val/test")
    return ds, n, list(data.class_names), data.kind


def _stack(ds: Any, indices: np.ndarray) -> tuple[Tensor, np.ndarray]:
    """Samples ``indices`` of ``ds`` as one input tensor and a label array."""
    xs: list[Tensor] = []
    ys: list[np.ndarray] = []
    for x, y in iterate_batches(ds, torch.from_numpy(indices), 256):
        xs.append(x)
        ys.append(np.asarray(y, dtype=np.int64))
    return torch.cat(xs), np.concatenate(ys)


def _saved_maps(run: RunDir, spec: MethodSpec, layer: str, score: str, split: str,
                predicted: np.ndarray, spatial: tuple[int, ...], n: int, rows: np.ndarray
                ) -> dict[str, Any] | None:
    """Maps from ``cams/`` if they fit this request exactly, else ``None`` (recompute).

    ``rows`` are the samples this process scores and ``predicted`` their classes.
    """
    path = run.cams_dir / f"{spec.method}.npz"
    if not path.exists():
        return None
    saved = load_cams(run.path, spec.method)
    idx = np.asarray(saved.get("indices", []))
    maps = np.asarray(saved.get("maps", np.zeros((0,))))
    targets = np.asarray(saved.get("targets", np.zeros(0))).reshape(-1)
    ok = (
        str(saved.get("split", split)) == split
        and str(saved.get("layer")) == layer
        and str(saved.get("score")) == score
        and idx.size >= n and np.array_equal(idx[:n], np.arange(n))
        and maps.shape[1:] == spatial
        and targets.size >= n and np.array_equal(targets[rows], predicted)
    )
    if not ok:
        return None
    raw = np.asarray(saved["raw"]) if "raw" in saved else None
    return {
        "maps": torch.from_numpy(maps[rows].astype(np.float32)),
        "cells": tuple(raw.shape[1:]) if raw is not None else None,
        "layer": str(saved.get("layer")),
        "score": str(saved.get("score")),
        "seconds": float(saved.get("seconds", 0.0)) * n / max(idx.size, 1),
        "source": f"cams/{spec.method}.npz",
    }


def _compute_maps(model: nn.Module, x: Tensor, targets: Tensor, *, method: str, layer: str,
                  score: str, batch_size: int, progress: Callable[[int], None] | None = None
                  ) -> tuple[Tensor, tuple[int, ...]]:
    dev = M.device_of(model)
    maps: list[Tensor] = []
    cells: tuple[int, ...] = ()
    for i in range(0, x.shape[0], batch_size):
        res = explain_methods(model, x[i : i + batch_size].to(dev), layer=layer,
                              methods=[method], targets=targets[i : i + batch_size].to(dev),
                              score=score)[method]
        maps.append(res.maps.detach().float().cpu())
        cells = tuple(res.raw.shape[1:])
        if progress:
            progress(min(i + batch_size, x.shape[0]))
    return torch.cat(maps), cells


def pairwise_tests(per_sample: dict[str, dict[str, np.ndarray]], keys: list[str], alpha: float
           ) -> list[dict[str, Any]]:
    """Paired tests: each method vs random and every pair of methods, Holm per metric."""
    labels = list(per_sample)
    methods = [m for m in labels if m != RANDOM]
    pairs = [(m, RANDOM) for m in methods if RANDOM in labels]
    pairs += [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]]
    out: list[dict[str, Any]] = []
    for key in keys:
        spec = M.OUTPUTS[key.partition("@")[0]]
        group = []
        for a, b in pairs:
            t = S.paired_test(per_sample[a][key], per_sample[b][key], binary=spec.binary)
            t.update(metric=key, a=a, b=b, higher_is_better=spec.higher_is_better,
                     mean_diff_scaled=t["mean_diff"] * spec.scale)
            group.append(t)
        for t, p in zip(group, S.holm([t["p_value"] for t in group]), strict=True):
            t["p_value_holm"] = p
            t["verdict"] = S.verdict(t, alpha=alpha)
        out.extend(group)
    return out


def output_label(key: str) -> str:
    """``drop@0.9`` -> ``drop rate (%), frac 0.9``."""
    base, _, frac = key.partition("@")
    spec = M.OUTPUTS.get(base)
    name = spec.label if spec else base
    return f"{name}, frac {frac}" if frac else name


def passes(metric: str, steps: int, n_percentages: int) -> int:
    """Forward passes over the samples one map costs in ``metric`` (drop_increase: per frac)."""
    return {"drop_increase": 1, "confidence": 1, "deletion": steps + 1,
            "insertion": steps + 1, "road": 2 * n_percentages}[metric]


def _projections(model: nn.Module, x: Tensor, n_maps: int, chosen: Sequence[str],
                 steps: int, opts: FaithfulnessOptions, bs: int, seconds: dict[str, Any], *,
                 n_fracs: int) -> dict[str, float]:
    """Projected seconds of the metric families that were not run (printed as options).

    From the measured forward time (the unmasked scoring pass) and, for ROAD and imputed
    removal, one sample's imputations at every percentage timed here.
    """
    n = int(x.shape[0])  # this process's share: under torchrun the ranks run side by side
    per_forward = seconds.get("forward", 0.0) / max(n, 1)
    solve = 0.0
    missing = [m for m in M.METRICS if m not in chosen]
    if "road" in missing or opts.baseline == "road":
        from cnnlens.faithfulness.imputation import impute
        from cnnlens.faithfulness.road import removal_counts

        if x.dim() == 4:
            from cnnlens.faithfulness.multigrid import warm_up

            warm_up()  # a first call may compile the solver's kernels: not part of a solve
        # a batch as the metrics would impute it: one 224 px tile, hundreds of short signals
        k_probe = max(1, min(n, bs, 256))
        ranks = torch.arange(int(np.prod(x.shape[2:]))).reshape(1, *x.shape[2:])
        ranks = ranks.expand(k_probe, *x.shape[2:])
        t0 = time.perf_counter()
        for k in removal_counts(int(np.prod(x.shape[2:])), opts.percentages):
            impute(x[:k_probe], ranks < k, noise=opts.noise)
        solve = (time.perf_counter() - t0) / len(opts.percentages) / k_probe  # per input
    removal = per_forward + (solve if opts.baseline == "road" else 0.0)
    out: dict[str, float] = {}
    cost = {"confidence": per_forward, "road": per_forward + solve}
    for m in missing:
        per_map = passes(m, steps, len(opts.percentages)) * (
            n_fracs if m == "drop_increase" else 1)
        out[m] = n * n_maps * per_map * cost.get(m, removal)
    return out


def _csv(summary: dict[str, Any], per_class: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "metric", "scope", "mean", "ci_low", "ci_high", "n"])
    for method, per in summary.items():
        for key, s in per.items():
            w.writerow([method, key, "all", s["mean"], s["low"], s["high"], s["n"]])
    for method, per in per_class.items():
        for key, classes in per.items():
            for cls, s in classes.items():
                w.writerow([method, key, f"class:{cls}", s["mean"], s["low"], s["high"], s["n"]])
    return buf.getvalue().encode()


def run_faithfulness(
    run_dir: str | Path,
    options: FaithfulnessOptions | None = None,
    /,
    *,
    data_dir: str | None = None,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    data: TaskData | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Score ``methods`` (``name[@layer][:score]``) and a random baseline; write ``faithfulness/``.

    ``options``, or the fields of :class:`FaithfulnessOptions` as keywords
    (``run_faithfulness(run, metrics=["road"], limit=50)``), say what to compute. Targets
    are the model's predicted classes (as in the study). The random maps are drawn on
    ``random_cells`` (default: the first method's CAM-layer grid) and upsampled: the metrics
    depend on how blob-like a mask is, so the grid is stated in the output. Returns the dict
    written to ``results.json``.
    """
    opts = FaithfulnessOptions.of(options, fields)
    return run_stage(RunDir(run_dir), opts, device=device, data_dir=data_dir, data=data,
                     progress=progress)


def run_stage(
    run: RunDir,
    options: FaithfulnessOptions,
    *,
    device: str | torch.device = "cpu",
    data_dir: str | None = None,
    data: TaskData | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The stage with its options object (what the pipeline calls).

    Under ``torchrun`` each process scores its share of the samples; rank 0 gathers the
    per-sample values in order (padding dropped), runs the statistics and the sanity check
    and writes; every rank returns the same results.
    """
    options.validate()
    with run.lock():
        ranks, dev = setup(torch.device(device))
        return ranks.settle(lambda: _faithfulness(run, options, device=dev, data_dir=data_dir,
                                                  data=data, progress=progress))


def _faithfulness(run: RunDir, opts: FaithfulnessOptions, *, device: str | torch.device,
                  data_dir: str | None, data: TaskData | None,
                  progress: ProgressFn | None) -> dict[str, Any]:
    t_start = time.perf_counter()
    cfg = run.read_config()
    split, limit, steps, baseline = opts.split, opts.limit, opts.steps, opts.baseline
    n_boot, alpha, seed, use_saved = opts.n_boot, opts.alpha, opts.seed, opts.use_saved
    sanity, sanity_samples, figures = opts.sanity, opts.sanity_samples, opts.figures
    random_cells = opts.random_cells
    specs = [parse_method(m) for m in (opts.methods or DEFAULT_METHODS)]
    frac_list = (list(opts.fracs) if opts.fracs is not None
                 else list(DEFAULT_FRACS.get(cfg["task"], (0.9,))))
    dev = torch.device(device)
    ranks = current()
    if not ranks.is_main:
        progress = None
    model, meta = run.load_model(device=dev)
    model_name = str(meta.get("model", cfg["model"]))
    ds, n, class_names, kind = _load_split(run, meta, split, limit, data_dir, data)
    shard = ranks.shard(n)  # this process's samples (all of them for one process)
    x, labels = _stack(ds, shard.indices)
    metric_list = list(dict.fromkeys(opts.metrics or default_metrics(kind)))
    class_names = [str(c) for c in meta.get("class_names") or class_names]
    resolve_methods([s.method for s in specs])
    plans = {s.label: plan_cams(model, model_name, [s.method], s.layer, s.score, x[:1].to(dev))
             for s in specs}
    layers = {label: p.layers[s.method] for (label, p), s in zip(plans.items(), specs,
                                                                  strict=True)}
    m, spatial = x.shape[0], tuple(x.shape[2:])
    bs = opts.batch_size or M.auto_batch(x)
    if random_cells is not None and (len(random_cells) != len(spatial) or min(random_cells) < 1):
        raise CnnlensError(f"--random-cells {tuple(random_cells)} is invalid; accepted: "
                           f"{len(spatial)} positive sizes (one per input dimension)")
    if {"deletion", "insertion"} & set(metric_list):
        M.check_steps(steps, int(np.prod(spatial)))
    t_fwd = time.perf_counter()
    y_t, pred_t = M.target_probs(model, x, batch_size=bs)
    predicted = pred_t.numpy()
    seconds: dict[str, Any] = {"load": t_fwd - t_start, "forward": time.perf_counter() - t_fwd,
                               "cams": {}, "metrics": {}}

    # -- maps ------------------------------------------------------------------------------
    all_maps: dict[str, Tensor] = {}
    info: dict[str, dict[str, Any]] = {}
    cells: tuple[int, ...] | None = None
    for j, spec in enumerate(specs):
        score = plans[spec.label].score
        saved = (_saved_maps(run, spec, layers[spec.label], score, split, predicted, spatial,
                             n, shard.indices) if use_saved else None)
        if saved is None:
            t0 = time.perf_counter()

            def tick(done: int, j: int = j) -> None:
                if progress:
                    progress("cams", j * m + done, m * len(specs))

            maps, c = _compute_maps(model, x, pred_t, method=spec.method,
                                    layer=layers[spec.label], score=score, batch_size=bs,
                                    progress=tick)
            saved = {"maps": maps, "cells": c, "layer": layers[spec.label], "score": score,
                     "seconds": time.perf_counter() - t0, "source": "computed"}
        all_maps[spec.label] = M.check_maps(x, saved["maps"])
        cells = cells or saved["cells"]
        seconds["cams"][spec.label] = saved["seconds"]
        info[spec.label] = {"method": spec.method, "layer": saved["layer"],
                            "score": saved["score"], "source": saved["source"]}
    if random_cells is not None:
        cells = tuple(int(c) for c in random_cells)
    # drawn for all n samples on every rank, so each sample gets the one-process map
    all_maps[RANDOM] = M.random_maps((n, *spatial), seed=seed, cells=cells)[shard.indices]
    info[RANDOM] = {"method": RANDOM, "cells": list(cells) if cells else None,
                    "description": f"uniform noise on a {'x'.join(map(str, cells))} grid, "
                    "upsampled, normalised to [0, 1]" if cells
                    else "uniform i.i.d. noise per position"}

    # -- metrics ---------------------------------------------------------------------------
    per_sample: dict[str, dict[str, np.ndarray]] = {}
    curves: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    choices: dict[str, Any] = {}
    kept: dict[str, dict[str, float]] = {}
    keys: list[str] = []
    # one memoised imputer: removals asked twice (Table I under road at frac f and ROAD
    # LeRF at 1 - f, or deletion steps and ROAD MoRF) are solved and scored once
    imputer = M.ImputedScores(noise=opts.noise, seed=seed)
    jobs = [(fam, f) for fam in metric_list
            for f in (frac_list if M.METRICS[fam].uses_frac else [None])]
    for fam, f in jobs:
        keys += [M.output_key(o, f) for o in M.METRICS[fam].outputs]
    # progress in passes over the samples, so a long ROAD job moves the bar as it goes
    job_passes = {fam: passes(fam, steps, len(opts.percentages)) for fam, _ in jobs}
    total_passes = len(all_maps) * sum(job_passes[fam] for fam, _ in jobs)
    done = 0
    for label, maps in all_maps.items():
        per_sample[label] = {}
        seconds["metrics"][label] = {}
        for fam, f in jobs:
            t0 = time.perf_counter()
            kw: dict[str, Any] = {"targets": pred_t, "batch_size": bs}
            if fam in ("drop_increase", "confidence", "road"):
                kw["base_scores"] = y_t
            if fam == "drop_increase":
                kw.update(frac=f, baseline=baseline, imputer=imputer)
            elif fam in ("deletion", "insertion"):
                kw.update(steps=steps, baseline=baseline, imputer=imputer)
            elif fam == "road":
                kw.update(percentages=opts.percentages, imputer=imputer)
                if progress:
                    kw["progress"] = (lambda k, done=done, report=progress:
                                      report("metrics", done + k, total_passes))
            res = M.METRICS[fam].fn(model, x, maps, **kw)
            for o in M.METRICS[fam].outputs:
                per_sample[label][M.output_key(o, f)] = shard.gather(res.values[o])
            if "kept" in res.values:
                kept.setdefault(label, {})[f"{f:g}"] = float(
                    shard.gather(res.values["kept"]).mean())
            if res.curves:  # per-sample rows (scores, morf, lerf) gathered; the x axis not
                curves.setdefault(fam, {})[label] = {
                    k: v if k == "fraction" else shard.gather(v) for k, v in res.curves.items()}
            choice = {k: v for k, v in res.choices.items() if k != "frac"}
            choices[fam] = choice
            seconds["metrics"][label][M.output_key(fam, f)] = time.perf_counter() - t0
            done += job_passes[fam]
            if progress and fam != "road":  # ROAD reported each of its passes already
                progress("metrics", done, total_passes)

    projected = _projections(model, x, len(all_maps), metric_list, steps, opts, bs, seconds,
                             n_fracs=len(frac_list))
    k_sanity = min(sanity_samples or SANITY_SAMPLES[kind == "image"], n)
    labels, predicted = shard.gather(labels), shard.gather(predicted)
    if ranks.active:  # rank 0 alone goes on; the sanity check takes the first samples
        if not ranks.is_main:
            return {}
        pred_t = torch.from_numpy(predicted)
        x = _stack(ds, np.arange(k_sanity))[0] if sanity else x[:0]

    # -- statistics ------------------------------------------------------------------------
    t0 = time.perf_counter()
    summary: dict[str, dict[str, Any]] = {}
    by_class: dict[str, dict[str, Any]] = {}
    for label, vals in per_sample.items():
        summary[label], by_class[label] = {}, {}
        for key, v in vals.items():
            scale = M.OUTPUTS[key.partition("@")[0]].scale
            summary[label][key] = S.bootstrap_ci(v * scale, n_boot=n_boot, seed=seed)
            by_class[label][key] = S.per_class(v * scale, labels, class_names,
                                               n_boot=min(n_boot, 1000), seed=seed)
    tests = pairwise_tests(per_sample, keys, alpha)
    higher = {k: spec.higher_is_better for k, spec in M.OUTPUTS.items()}
    verdict = build_verdict(summary, tests, keys, higher_is_better=higher,
                            labels={k: output_label(k) for k in keys},
                            task=f"{cfg['task']}, {split} split", n=n, alpha=alpha)
    seconds["stats"] = time.perf_counter() - t0

    # -- sanity check ----------------------------------------------------------------------
    sanity_res: dict[str, Any] = {}
    if sanity and specs:
        from cnnlens.faithfulness.sanity import sanity_check

        t0 = time.perf_counter()
        k = k_sanity
        seeds = [seed + i for i in range(opts.sanity_seeds)]
        for j, spec in enumerate(specs):
            layer, score = info[spec.label]["layer"], info[spec.label]["score"]

            def cam_fn(m: nn.Module, xb: Tensor, t: Tensor, spec: MethodSpec = spec,
                       layer: str = layer, score: str = score) -> Tensor:
                return _compute_maps(m, xb, t, method=spec.method, layer=layer, score=score,
                                     batch_size=bs)[0]

            sanity_res[spec.label] = sanity_check(
                model, x[:k], cam_fn, targets=pred_t[:k], seeds=seeds,
                draw=opts.sanity_draw, constant=opts.sanity_constant)
            if progress:
                progress("sanity", j + 1, len(specs))
        seconds["sanity"] = time.perf_counter() - t0

    seconds["total"] = time.perf_counter() - t_start
    results: dict[str, Any] = {
        "request": opts.request(), "model_digest": run.model_digest(),
        "task": cfg["task"], "model": model_name, "split": split, "n": int(n), "kind": kind,
        "device": str(dev), "fracs": frac_list, "metrics": metric_list, "metric_keys": keys,
        "methods": info, "summary": summary, "tests": tests, "per_class": by_class,
        "sanity": sanity_res, "seconds": seconds, "verdict": verdict,
        "projected_seconds": projected,
        # imputed inputs solved and scored, and those another metric had already asked for
        "imputation": {"solved": imputer.solved, "reused": imputer.reused},
        "kept_fraction": kept,  # mean fraction of positions the top-frac mask really kept
        "accuracy": float((predicted == labels).mean()),
        "choices": {
            **choices,
            "targets": "the model's predicted class on the unmasked input",
            "removal_space": _removal_space(meta, baseline),
            "random_baseline": info[RANDOM]["description"] + f", seed {seed}",
            "intervals": f"95 % percentile bootstrap of the mean over samples, {n_boot} "
            f"resamples, seed {seed}; rates in %",
            "tests": "paired on the same samples: Wilcoxon signed-rank (continuous), McNemar "
            f"exact (0/1 outputs); Holm-corrected per metric; alpha {alpha}",
            "per_class": "grouped by true label",
            "verdict": "methods and random ranked by the mean of every metric output; ties "
            "with the best = no difference in the paired test; Kendall's W over the outputs "
            "(tie-corrected) with Friedman's p",
        },
    }

    # -- write (only now, so a failure above leaves old outputs alone) ----------------------
    out = run.faithfulness_dir
    series = [(label, key) for label, vals in per_sample.items() for key in vals]
    write_npz(out / "per_sample.npz",
              values=np.stack([per_sample[a][b] for a, b in series]).astype(np.float64),
              series=np.asarray([f"{a}|{b}" for a, b in series]),
              indices=np.arange(n), labels=labels, predicted=predicted, targets=predicted)
    atomic_write(out / "results.csv", lambda fh: fh.write(_csv(summary, by_class)))
    files = {"results": "results.json", "csv": "results.csv", "per_sample": "per_sample.npz"}
    if figures:
        from cnnlens.faithfulness.plots import plot_curves, plot_sanity

        if plot_curves(curves, out / "curves.png"):
            files["curves"] = "curves.png"
        if plot_sanity(sanity_res, out / "sanity.png"):
            files["sanity"] = "sanity.png"
    results["files"] = files
    write_json(out / "results.json", results)
    return results


__all__ = ["DEFAULT_FRACS", "DEFAULT_METHODS", "DEFAULT_METRICS", "IMAGE_METRICS",
           "FaithfulnessOptions", "MethodSpec", "default_metrics", "is_done", "parse_method",
           "run_faithfulness", "run_stage"]
