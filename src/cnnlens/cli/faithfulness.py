"""``cnnlens faithfulness RUN_DIR``: score CAM methods against a random baseline, with intervals."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlens.cli._common import (
    Bars,
    add_device_option,
    add_model_source_options,
    add_pretrained_option,
    prepare_pretrained,
    prepare_trained,
    skip_bad_data,
)


def register(subparsers: Any) -> None:
    from cnnlens.cli.options import add_options
    from cnnlens.faithfulness.options import FaithfulnessOptions

    p: argparse.ArgumentParser = subparsers.add_parser(
        "faithfulness",
        help="measure how faithful the CAMs are (drop/increase, ROAD, deletion/insertion, "
        "sanity) and which method is best",
        description="Score CAM methods and a random-map baseline on a split of a trained run: "
        "the study's drop/increase rates, Average Drop / Increase in Confidence, deletion and "
        "insertion AUC, ROAD (removal with noisy linear imputation), with 95% bootstrap "
        "intervals, paired tests, a per-class breakdown and a verdict across metrics "
        "(rankings, Kendall's W, contradictions), plus the model-randomization sanity check "
        "over several seeds. Uses RUN_DIR/cams/ when it holds the maps; writes "
        "RUN_DIR/faithfulness/. Where the time goes: each metric costs forward passes per "
        "map (methods + random) and sample: drop_increase 1 per frac, confidence 1, "
        "deletion/insertion steps+1 each, road 2 per percentage plus a linear solve per "
        "imputed input (224 px tiles: multigrid CG, ~10-50 ms of CPU from 10% to 90% "
        "removed, on torch's threads; MNIST-1D: microseconds). On 2 idle CPU cores the VGG-7 "
        "scores ~35 tiles/s, so for the 496 HMT tiles each pass over 4 maps takes ~1 min: the "
        "image default (drop_increase) ~1 min with the unmasked scores, the 3-seed sanity "
        "check ~30 s; ROAD is 10 passes plus the solves (measured: 17 min for 3 methods and "
        "the random map). The output prints the projected time of every metric left out.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a trained cnnlens run folder")
    add_pretrained_option(p)
    add_options(p, FaithfulnessOptions)  # every stage option, declared in the dataclass
    add_device_option(p)
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images, listing them")
    p.add_argument("--data-dir", "--data", dest="data_dir", default=None,
                   help="data folder (or .npz), if it moved since training")
    add_model_source_options(p)
    p.set_defaults(func=run)


def compute(args: argparse.Namespace, run_dir: str) -> dict[str, Any]:
    """Run the stage with the options in ``args``."""
    from cnnlens.cli.options import options_from_args
    from cnnlens.device import resolve_device
    from cnnlens.faithfulness.options import FaithfulnessOptions
    from cnnlens.faithfulness.stage import run_faithfulness

    bars = Bars()
    data = skip_bad_data(args)
    try:
        return run_faithfulness(run_dir, options_from_args(FaithfulnessOptions, args),
                                data_dir=args.data_dir, device=resolve_device(args.device),
                                progress=bars, data=data)
    finally:
        bars.close()


def print_results(results: dict[str, Any], out_dir: Any, *, tests: bool = True) -> None:
    """The Table-I-style table, the verdicts between methods, sanity flags and files.

    ``tests=False`` (inside ``cnnlens run``) leaves the list of paired tests to the report.
    """
    from cnnlens.faithfulness.table import format_table, format_tests

    print(f"faithfulness of {len(results['methods'])} maps (incl. random) on "
          f"{results['n']} {results['split']} samples, targets = predicted class:")
    for label, m in results["methods"].items():
        if label != "random":
            print(f"  {label}: {m['method']} at {m['layer']} ({m['score']}), from {m['source']}")
    print()
    print(format_table(results))
    print()
    if tests:
        print(format_tests(results))
    print_sanity(results)
    verdict = results.get("verdict") or {}
    if verdict.get("text"):
        print()
        print(verdict["text"])
    print_timings(results)
    print(f"results: {out_dir / 'results.json'}")


def print_sanity(results: dict[str, Any]) -> None:
    """One line per method: correlation after each randomized layer, and the verdict."""
    for label, s in results.get("sanity", {}).items():
        corr = ", ".join(f"{r:.2f}" for r in s["spearman_mean"])
        final = s.get("final")
        if final:
            seeds = len(s.get("seeds", []))
            print(f"sanity {label}: rank correlation as layers are randomized: {corr}; final "
                  f"{final['mean']:.2f} [{final['low']:.2f}, {final['high']:.2f}] over {seeds} "
                  f"seeds: {s.get('verdict', '')}")
        else:
            flag = "  FLAGGED: maps barely change" if s.get("flagged") else ""
            print(f"sanity {label}: rank correlation as layers are randomized: {corr}{flag}")


def print_timings(results: dict[str, Any]) -> None:
    """Where the time went, and what the metrics left out would cost."""
    sec = results.get("seconds") or {}
    per_metric: dict[str, float] = {}
    for per in (sec.get("metrics") or {}).values():
        for key, v in per.items():
            per_metric[key] = per_metric.get(key, 0.0) + float(v)
    parts = [f"load {sec.get('load', 0.0):.1f}", f"forward {sec.get('forward', 0.0):.1f}"]
    # maps read from cams/ carry the explain stage's time: not spent here
    methods = results.get("methods") or {}
    cams = sec.get("cams") or {}
    read = [k for k in cams if (methods.get(k) or {}).get("source", "computed") != "computed"]
    computed = sum(float(v) for k, v in cams.items() if k not in read)
    if computed or not read:
        parts.append(f"maps {computed:.1f}")
    if read:
        parts.append(f"maps of {len(read)} method(s) read from cams/")
    parts += [f"{k} {v:.1f}" for k, v in per_metric.items()]
    parts += [f"{k} {sec[k]:.1f}" for k in ("stats", "sanity") if k in sec]
    imp = results.get("imputation") or {}
    extra = (f" (imputed inputs: {imp['solved']} solved, {imp['reused']} reused)"
             if imp.get("solved") or imp.get("reused") else "")
    print(f"time (s): {', '.join(parts)}; total {sec.get('total', 0.0):.1f}{extra}")
    for metric, v in (results.get("projected_seconds") or {}).items():
        print(f"  not run: {metric}, projected {_duration(v)} here (--metrics ... {metric})")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def run(args: argparse.Namespace) -> int:
    from cnnlens.rundir.folder import RunDir

    prepare_trained(args)  # first: it refuses --model with --pretrained
    prepare_pretrained(args)
    results = compute(args, args.run_dir)
    print_results(results, RunDir(args.run_dir).faithfulness_dir)
    return 0
