"""The faithfulness stage's steps, in order: prepare → maps → score → statistics → sanity →
write. Each takes the :class:`Job` that :func:`prepare` builds (what every step shares) and
returns what the next needs; :mod:`cnnlens.faithfulness.stage` runs them. What the metrics
that did not run would cost is :mod:`cnnlens.faithfulness.cost` (re-exported here).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnlens.data import TaskData
from cnnlens.device import inference_precision, resolve_precision
from cnnlens.distributed import Ranks, Shard, current
from cnnlens.errors import CnnlensError
from cnnlens.explain.stage import CamPlan, plan_cams, resolve_methods
from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness import stats as S
from cnnlens.faithfulness.comparisons import output_label, pairwise_tests
from cnnlens.faithfulness.cost import _measured_pass as _measured_pass  # re-exported
from cnnlens.faithfulness.cost import passes, projections
from cnnlens.faithfulness.maps import compute_maps, load_split, saved_maps, stack
from cnnlens.faithfulness.options import (
    DEFAULT_FRACS,
    DEFAULT_METHODS,
    RANDOM,
    SANITY_SAMPLES,
    FaithfulnessOptions,
    MethodSpec,
    default_metrics,
    parse_method,
)
from cnnlens.faithfulness.verdict import build_verdict
from cnnlens.fileio import atomic_write, write_json, write_npz
from cnnlens.rundir.folder import RunDir

#: ``progress(stage, done, total)`` with stage ``"cams"``, ``"metrics"`` or ``"sanity"``.
ProgressFn = Callable[[str, int, int], None]


@dataclass
class Job:
    """One faithfulness run: the request, the model, this process's samples and their
    unmasked scores, and the seconds each step took."""

    run: RunDir
    opts: FaithfulnessOptions
    cfg: Mapping[str, Any]
    model: nn.Module
    meta: dict[str, Any]
    model_name: str
    device: torch.device
    ranks: Ranks
    progress: ProgressFn | None
    ds: Any  # the split's dataset (the sanity check reads its first samples again)
    n: int  # samples scored, over all processes
    class_names: list[str]
    kind: str
    shard: Shard
    x: Tensor  # this process's samples
    labels: np.ndarray
    specs: list[MethodSpec]
    plans: dict[str, CamPlan]
    layers: dict[str, str]
    fracs: list[float]
    metrics: list[str]
    batch_size: int
    scores: Tensor  # the target's probability on the unmasked input
    targets: Tensor  # the predicted classes (the study's targets)
    seconds: dict[str, Any] = field(default_factory=dict)
    t_start: float = 0.0

    @property
    def predicted(self) -> np.ndarray:
        return self.targets.numpy()


@dataclass
class Scores:
    """Per-sample values of every map and metric output, with what each metric chose."""

    per_sample: dict[str, dict[str, np.ndarray]]
    curves: dict[str, dict[str, dict[str, np.ndarray]]]
    choices: dict[str, Any]
    kept: dict[str, dict[str, float]]
    keys: list[str]
    imputer: M.ImputedScores


def prepare(run: RunDir, opts: FaithfulnessOptions, *, device: str | torch.device,
            data_dir: str | None, data: TaskData | None, progress: ProgressFn | None,
            config: Mapping[str, Any] | None = None) -> Job:
    """Load the model and this process's samples, plan the layers, score the unmasked input
    (``config``: the run's config when the caller holds it, else ``config.json`` is read)."""
    t_start = time.perf_counter()
    cfg = run.use_config(config)
    specs = [parse_method(m) for m in (opts.methods or DEFAULT_METHODS)]
    fracs = (list(opts.fracs) if opts.fracs is not None
             else list(DEFAULT_FRACS.get(cfg["task"], (0.9,))))
    dev = torch.device(device)
    ranks = current()
    model, meta = run.load_model(device=dev, config=cfg)
    model_name = str(meta.get("model", cfg["model"]))
    ds, n, class_names, kind = load_split(run, meta, opts.split, opts.limit, data_dir, data,
                                          cfg)
    shard = ranks.shard(n)  # this process's samples (all of them for one process)
    x, labels = stack(ds, shard.indices)
    metric_list = list(dict.fromkeys(opts.metrics or default_metrics(kind)))
    class_names = [str(c) for c in meta.get("class_names") or class_names]
    resolve_methods([s.method for s in specs])
    plans = {s.label: plan_cams(model, model_name, [s.method], s.layer, s.score, x[:1].to(dev))
             for s in specs}
    layers = {label: p.layers[s.method] for (label, p), s in zip(plans.items(), specs,
                                                                  strict=True)}
    spatial = tuple(x.shape[2:])
    bs = opts.batch_size or M.auto_batch(x)
    cells = opts.random_cells
    if cells is not None and (len(cells) != len(spatial) or min(cells) < 1):
        raise CnnlensError(f"--random-cells {tuple(cells)} is invalid; accepted: "
                           f"{len(spatial)} positive sizes (one per input dimension)")
    if {"deletion", "insertion"} & set(metric_list):
        M.check_steps(opts.steps, int(np.prod(spatial)))
    t_fwd = time.perf_counter()
    y_t, pred_t = M.target_probs(model, x, batch_size=bs)
    seconds: dict[str, Any] = {"load": t_fwd - t_start, "forward": time.perf_counter() - t_fwd,
                               "cams": {}, "metrics": {}}
    return Job(run=run, opts=opts, cfg=cfg, model=model, meta=meta, model_name=model_name,
               device=dev, ranks=ranks, progress=progress if ranks.is_main else None, ds=ds,
               n=n, class_names=class_names, kind=kind, shard=shard, x=x, labels=labels,
               specs=specs, plans=plans, layers=layers, fracs=fracs, metrics=metric_list,
               batch_size=bs, scores=y_t, targets=pred_t, seconds=seconds, t_start=t_start)


def maps(job: Job) -> tuple[dict[str, Tensor], dict[str, dict[str, Any]]]:
    """Every method's maps (from ``cams/`` or computed) and the random baseline's; with what
    each is (method, layer, score, where it came from)."""
    m, spatial, progress = job.x.shape[0], tuple(job.x.shape[2:]), job.progress
    all_maps: dict[str, Tensor] = {}
    info: dict[str, dict[str, Any]] = {}
    cells: tuple[int, ...] | None = None
    for j, spec in enumerate(job.specs):
        layer, score = job.layers[spec.label], job.plans[spec.label].score
        saved = (saved_maps(job.run, spec, layer, score, job.opts.split, job.predicted,
                            spatial, job.n, job.shard.indices) if job.opts.use_saved else None)
        if saved is None:
            t0 = time.perf_counter()

            def tick(done: int, j: int = j) -> None:
                if progress:
                    progress("cams", j * m + done, m * len(job.specs))

            computed, c = compute_maps(job.model, job.x, job.targets, method=spec.method,
                                       layer=layer, score=score, batch_size=job.batch_size,
                                       progress=tick)
            saved = {"maps": computed, "cells": c, "layer": layer, "score": score,
                     "seconds": time.perf_counter() - t0, "source": "computed"}
        all_maps[spec.label] = M.check_maps(job.x, saved["maps"])
        cells = cells or saved["cells"]
        job.seconds["cams"][spec.label] = saved["seconds"]
        info[spec.label] = {"method": spec.method, "layer": saved["layer"],
                            "score": saved["score"], "source": saved["source"]}
    if job.opts.random_cells is not None:
        cells = tuple(int(c) for c in job.opts.random_cells)
    # drawn for all n samples on every rank, so each sample gets the one-process map
    all_maps[RANDOM] = M.random_maps((job.n, *spatial), seed=job.opts.seed,
                                     cells=cells)[job.shard.indices]
    info[RANDOM] = {"method": RANDOM, "cells": list(cells) if cells else None,
                    "description": f"uniform noise on a {'x'.join(map(str, cells))} grid, "
                    "upsampled, normalised to [0, 1]" if cells
                    else "uniform i.i.d. noise per position"}
    return all_maps, info


def score(job: Job, all_maps: dict[str, Tensor]) -> Scores:
    """Every metric of every map, per sample (gathered over processes in sample order)."""
    opts = job.opts
    out = Scores({}, {}, {}, {}, [], M.ImputedScores(noise=opts.noise, seed=opts.seed))
    # one memoised imputer: removals asked twice (Table I under road at frac f and ROAD
    # LeRF at 1 - f, or deletion steps and ROAD MoRF) are solved and scored once
    jobs = [(fam, f) for fam in job.metrics
            for f in (job.fracs if M.METRICS[fam].uses_frac else [None])]
    for fam, f in jobs:
        out.keys += [M.output_key(o, f) for o in M.METRICS[fam].outputs]
    precision = resolve_precision(opts.precision, job.device, job.x.dim() - 2)
    with inference_precision(precision):
        _score_all(job, all_maps, jobs, out, precision)
    return out


def _score_all(job: Job, all_maps: dict[str, Tensor], jobs: list[tuple[str, float | None]],
               out: Scores, precision: str) -> None:
    """The metrics of every map, in the precision :func:`score` set for the passes."""
    progress, shard, opts = job.progress, job.shard, job.opts
    # progress in passes over the samples, so a long ROAD job moves the bar as it goes
    job_passes = {fam: passes(fam, opts.steps, len(opts.percentages)) for fam, _ in jobs}
    total_passes = len(all_maps) * sum(job_passes[fam] for fam, _ in jobs)
    done = 0
    for label, label_maps in all_maps.items():
        out.per_sample[label] = {}
        job.seconds["metrics"][label] = {}
        for fam, f in jobs:
            t0 = time.perf_counter()
            kw = _metric_options(job, fam, f, out.imputer, precision)
            if fam == "road" and progress:
                kw["progress"] = (lambda k, done=done, report=progress:
                                  report("metrics", done + k, total_passes))
            res = M.METRICS[fam].fn(job.model, job.x, label_maps, **kw)
            for o in M.METRICS[fam].outputs:
                out.per_sample[label][M.output_key(o, f)] = shard.gather(res.values[o])
            if "kept" in res.values:
                out.kept.setdefault(label, {})[f"{f:g}"] = float(
                    shard.gather(res.values["kept"]).mean())
            if res.curves:  # per-sample rows (scores, morf, lerf) gathered; the x axis not
                out.curves.setdefault(fam, {})[label] = {
                    k: v if k == "fraction" else shard.gather(v) for k, v in res.curves.items()}
            out.choices[fam] = {k: v for k, v in res.choices.items() if k != "frac"}
            if precision != "fp32":
                out.choices[fam]["precision"] = f"{precision} autocast (unmasked scores too)"
            job.seconds["metrics"][label][M.output_key(fam, f)] = time.perf_counter() - t0
            done += job_passes[fam]
            if progress and fam != "road":  # ROAD reported each of its passes already
                progress("metrics", done, total_passes)


def _metric_options(job: Job, fam: str, frac: float | None, imputer: M.ImputedScores,
                    precision: str = "fp32") -> dict[str, Any]:
    """The keyword arguments metric family ``fam`` takes from this request. In bf16 the
    unmasked scores are computed again in bf16: a drop between an fp32 and a bf16
    probability would measure the precision, not the removal."""
    opts = job.opts
    kw: dict[str, Any] = {"targets": job.targets, "batch_size": job.batch_size}
    if fam in ("drop_increase", "confidence", "road") and precision == "fp32":
        kw["base_scores"] = job.scores
    if fam == "drop_increase":
        kw.update(frac=frac, baseline=opts.baseline, imputer=imputer)
    elif fam in ("deletion", "insertion"):
        kw.update(steps=opts.steps, baseline=opts.baseline, imputer=imputer)
    elif fam == "road":
        kw.update(percentages=opts.percentages, imputer=imputer)
    return kw


def statistics(job: Job, scores: Scores, labels: np.ndarray) -> dict[str, Any]:
    """Bootstrap intervals, per-class breakdown, paired tests and the verdict."""
    t0 = time.perf_counter()
    opts = job.opts
    summary: dict[str, dict[str, Any]] = {}
    by_class: dict[str, dict[str, Any]] = {}
    for label, vals in scores.per_sample.items():
        summary[label], by_class[label] = {}, {}
        for key, v in vals.items():
            scale = M.OUTPUTS[key.partition("@")[0]].scale
            summary[label][key] = S.bootstrap_ci(v * scale, n_boot=opts.n_boot, seed=opts.seed)
            by_class[label][key] = S.per_class(v * scale, labels, job.class_names,
                                               n_boot=min(opts.n_boot, 1000), seed=opts.seed)
    tests = pairwise_tests(scores.per_sample, scores.keys, opts.alpha)
    higher = {k: spec.higher_is_better for k, spec in M.OUTPUTS.items()}
    verdict = build_verdict(summary, tests, scores.keys, higher_is_better=higher,
                            labels={k: output_label(k) for k in scores.keys},
                            task=f"{job.cfg['task']}, {opts.split} split", n=job.n,
                            alpha=opts.alpha)
    job.seconds["stats"] = time.perf_counter() - t0
    return {"summary": summary, "per_class": by_class, "tests": tests, "verdict": verdict}


def sanity_samples(job: Job) -> int:
    """How many of the first samples the sanity check explains again."""
    return min(job.opts.sanity_samples or SANITY_SAMPLES[job.kind == "image"], job.n)


def sanity(job: Job, x: Tensor, targets: Tensor, info: dict[str, dict[str, Any]]
           ) -> dict[str, Any]:
    """The model-randomization check of every method on ``x`` (the first samples)."""
    out: dict[str, Any] = {}
    if not (job.opts.sanity and job.specs):
        return out
    from cnnlens.faithfulness.sanity import sanity_check

    t0 = time.perf_counter()
    opts, k = job.opts, sanity_samples(job)
    seeds = [opts.seed + i for i in range(opts.sanity_seeds)]
    for j, spec in enumerate(job.specs):
        layer, score_name = info[spec.label]["layer"], info[spec.label]["score"]

        def cam_fn(m: nn.Module, xb: Tensor, t: Tensor, spec: MethodSpec = spec,
                   layer: str = layer, score_name: str = score_name) -> Tensor:
            return compute_maps(m, xb, t, method=spec.method, layer=layer, score=score_name,
                                batch_size=job.batch_size)[0]

        out[spec.label] = sanity_check(job.model, x[:k], cam_fn, targets=targets[:k],
                                       seeds=seeds, draw=opts.sanity_draw,
                                       constant=opts.sanity_constant)
        if job.progress:
            job.progress("sanity", j + 1, len(job.specs))
    job.seconds["sanity"] = time.perf_counter() - t0
    return out


def write(job: Job, results: dict[str, Any], scores: Scores, sanity_res: dict[str, Any],
          labels: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """``faithfulness/``: per-sample values, the CSV, the figures, then ``results.json``
    last (only now, so a failure before leaves old outputs alone)."""
    out = job.run.faithfulness_dir
    per_sample = scores.per_sample
    series = [(label, key) for label, vals in per_sample.items() for key in vals]
    write_npz(out / "per_sample.npz",
              values=np.stack([per_sample[a][b] for a, b in series]).astype(np.float64),
              series=np.asarray([f"{a}|{b}" for a, b in series]),
              indices=np.arange(job.n), labels=labels, predicted=predicted, targets=predicted)
    atomic_write(out / "results.csv", lambda fh: fh.write(
        results_csv(results["summary"], results["per_class"])))
    files = {"results": "results.json", "csv": "results.csv", "per_sample": "per_sample.npz"}
    if job.opts.figures:
        from cnnlens.faithfulness.plots import plot_curves, plot_sanity

        if plot_curves(scores.curves, out / "curves.png"):
            files["curves"] = "curves.png"
        if plot_sanity(sanity_res, out / "sanity.png"):
            files["sanity"] = "sanity.png"
    results["files"] = files
    results["per_sample"] = per_sample_json(per_sample, job.n)
    write_json(out / "results.json", results)
    return results


def per_sample_json(per_sample: dict[str, dict[str, np.ndarray]], n: int) -> dict[str, Any]:
    """Every sample's value of every output, by method and metric key (unscaled, as in
    ``per_sample.npz``), so that a reader of ``results.json`` can sort and filter samples
    without a second file; non-finite values are null."""
    def column(v: np.ndarray) -> list[float | None]:
        return [float(x) if np.isfinite(x) else None for x in np.asarray(v, np.float64)]

    return {"indices": list(range(n)),
            "values": {label: {key: column(v) for key, v in vals.items()}
                       for label, vals in per_sample.items()}}


def results_csv(summary: dict[str, Any], per_class: dict[str, Any]) -> bytes:
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


__all__ = ["Job", "ProgressFn", "Scores", "maps", "passes", "prepare", "projections",
           "results_csv", "sanity", "sanity_samples", "score", "statistics", "write"]
