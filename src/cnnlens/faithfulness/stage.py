"""The ``faithfulness`` stage: score every CAM method and a random baseline on a run's split.

Maps come from ``cams/<method>.npz`` (the explain stage) when they cover the requested
samples with the requested layer and score, and from the CAM engine otherwise. Everything
is computed before anything is written, so a failure leaves earlier outputs untouched.
Writes ``faithfulness/results.json``, ``results.csv`` (long format), ``per_sample.npz``,
``curves.png`` and ``sanity.png``. The steps (prepare → maps → score → statistics → sanity
→ write) are in :mod:`cnnlens.faithfulness.steps`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlens.data import TaskData
from cnnlens.device import resolve_device
from cnnlens.distributed import setup
from cnnlens.faithfulness import steps
from cnnlens.faithfulness.comparisons import pairwise_tests
from cnnlens.faithfulness.maps import stack
from cnnlens.faithfulness.options import (
    DEFAULT_FRACS,
    DEFAULT_METHODS,
    DEFAULT_METRICS,
    IMAGE_METRICS,
    RANDOM,
    FaithfulnessOptions,
    MethodSpec,
    default_metrics,
    parse_method,
)
from cnnlens.faithfulness.steps import ProgressFn
from cnnlens.rundir.folder import RunDir


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
    return run.current_output(path, request=opts.request()) is not None


def run_faithfulness(
    run_dir: str | Path,
    options: FaithfulnessOptions | None = None,
    /,
    *,
    data_dir: str | None = None,
    device: str | torch.device = "auto",
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
    device: str | torch.device = "auto",
    data_dir: str | None = None,
    data: TaskData | None = None,
    progress: ProgressFn | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stage with its options object (what the pipeline calls, with the run's
    ``config`` it holds; without one, ``config.json`` is read).

    Under ``torchrun`` each process scores its share of the samples; rank 0 gathers the
    per-sample values in order (padding dropped), runs the statistics and the sanity check
    and writes; every rank returns the same results.
    """
    options.validate()
    with run.lock():
        ranks, dev = setup(device if isinstance(device, torch.device)
                           else resolve_device(device))
        return ranks.settle(lambda: _faithfulness(run, options, device=dev, data_dir=data_dir,
                                                  data=data, progress=progress, config=config))


def _faithfulness(run: RunDir, opts: FaithfulnessOptions, *, device: str | torch.device,
                  data_dir: str | None, data: TaskData | None,
                  progress: ProgressFn | None, config: Mapping[str, Any] | None
                  ) -> dict[str, Any]:
    job = steps.prepare(run, opts, device=device, data_dir=data_dir, data=data,
                        progress=progress, config=config)
    all_maps, info = steps.maps(job)
    scores = steps.score(job, all_maps)
    projected = steps.projections(job.model, job.x, len(all_maps), job.metrics, opts.steps,
                                  opts, job.batch_size, job.seconds, n_fracs=len(job.fracs))
    labels, predicted = job.shard.gather(job.labels), job.shard.gather(job.predicted)
    x, targets = job.x, job.targets
    if job.ranks.active:  # rank 0 alone goes on; the sanity check takes the first samples
        if not job.ranks.is_main:
            return {}
        targets = torch.from_numpy(predicted)
        x = stack(job.ds, np.arange(steps.sanity_samples(job)))[0] if opts.sanity else x[:0]
    stats = steps.statistics(job, scores, labels)
    sanity_res = steps.sanity(job, x, targets, info)
    job.seconds["total"] = time.perf_counter() - job.t_start
    results = _results(job, info, scores, stats, sanity_res, projected, labels, predicted)
    return steps.write(job, results, scores, sanity_res, labels, predicted)


def _results(job: steps.Job, info: dict[str, dict[str, Any]], scores: steps.Scores,
             stats: dict[str, Any], sanity_res: dict[str, Any], projected: dict[str, float],
             labels: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """What ``results.json`` holds: the request, every number, and how each was made."""
    opts, seed = job.opts, job.opts.seed
    return {
        "request": opts.request(), "model_digest": job.run.model_digest(),
        "task": job.cfg["task"], "model": job.model_name, "split": opts.split, "n": int(job.n),
        "kind": job.kind, "device": str(job.device), "fracs": job.fracs,
        "metrics": job.metrics, "metric_keys": scores.keys, "methods": info,
        "summary": stats["summary"], "tests": stats["tests"], "per_class": stats["per_class"],
        "sanity": sanity_res, "seconds": job.seconds, "verdict": stats["verdict"],
        "projected_seconds": projected,
        # imputed inputs solved and scored, and those another metric had already asked for
        "imputation": {"solved": scores.imputer.solved, "reused": scores.imputer.reused},
        "kept_fraction": scores.kept,  # mean fraction of positions the mask really kept
        "accuracy": float((predicted == labels).mean()),
        "choices": {
            **scores.choices,
            "targets": "the model's predicted class on the unmasked input",
            "removal_space": _removal_space(job.meta, opts.baseline),
            "random_baseline": info[RANDOM]["description"] + f", seed {seed}",
            "intervals": f"95 % percentile bootstrap of the mean over samples, {opts.n_boot} "
            f"resamples, seed {seed}; rates in %",
            "tests": "paired on the same samples: Wilcoxon signed-rank (continuous), McNemar "
            f"exact (0/1 outputs); Holm-corrected per metric; alpha {opts.alpha}",
            "per_class": "grouped by true label",
            "verdict": "methods and random ranked by the mean of every metric output; ties "
            "with the best = no difference in the paired test; Kendall's W over the outputs "
            "(tie-corrected) with Friedman's p",
        },
    }


__all__ = ["DEFAULT_FRACS", "DEFAULT_METHODS", "DEFAULT_METRICS", "IMAGE_METRICS",
           "FaithfulnessOptions", "MethodSpec", "default_metrics", "is_done", "pairwise_tests",
           "parse_method", "run_faithfulness", "run_stage"]
