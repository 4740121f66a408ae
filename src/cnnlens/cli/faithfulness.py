"""``cnnlens faithfulness RUN_DIR``: score CAM methods against a random baseline, with intervals."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cnnlens.errors import CnnlensError


def _split_list(values: Sequence[str] | None) -> list[str] | None:
    """Accept ``a b``, ``a,b`` or a mix of both."""
    if values is None:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out


def register(subparsers: Any) -> None:
    from cnnlens.faithfulness.metrics import BASELINES, METRICS
    from cnnlens.faithfulness.stage import DEFAULT_METHODS

    p: argparse.ArgumentParser = subparsers.add_parser(
        "faithfulness",
        help="measure how faithful the CAMs are (drop/increase, deletion/insertion, sanity)",
        description="Score CAM methods and a random-map baseline on a split of a trained run: "
        "the study's drop/increase rates, Average Drop / Increase in Confidence, deletion and "
        "insertion AUC, with 95%% bootstrap intervals, paired tests and a per-class breakdown, "
        "plus the model-randomization sanity check. Uses RUN_DIR/cams/ when it holds the maps; "
        "writes RUN_DIR/faithfulness/.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a trained cnnlens run folder")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="CAM methods as name[@layer][:score], e.g. gradcam@max_pooling2d_1:prob "
                   f"(default: {' '.join(DEFAULT_METHODS)}); the random baseline is always added")
    p.add_argument("--frac", nargs="+", type=float, default=None, metavar="F",
                   help="kept fraction(s) for the drop/increase rate, in (0, 1] "
                   "(default: 0.9 for hmt, 0.15 and 0.3 for mnist1d)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                   help=f"metrics to compute ({', '.join(METRICS)}; default: all)")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N samples")
    p.add_argument("--steps", type=int, default=20,
                   help="deletion/insertion steps (default: %(default)s)")
    p.add_argument("--baseline", default="zero",
                   help=f"value removed positions take ({', '.join(BASELINES)} or a number; "
                   "default: zero)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random maps and bootstrap")
    p.add_argument("--no-sanity", action="store_true", help="skip the model-randomization check")
    p.add_argument("--sanity-samples", type=int, default=32,
                   help="samples used by the sanity check (default: %(default)s)")
    p.add_argument("--random-cells", nargs="+", type=int, default=None, metavar="N",
                   help="grid of the random baseline maps, one size per input dimension "
                   "(default: the first method's CAM-layer grid)")
    p.add_argument("--recompute", action="store_true",
                   help="compute the maps even when cams/ holds them")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--data-dir", default=None, help="data folder, if it moved since training")
    p.add_argument("--batch-size", type=int, default=None, help="samples per scoring batch")
    p.set_defaults(func=run)


def _baseline(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def _progress() -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, leave=False, file=sys.stderr)
        bar.update(done - bar.n)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return progress, close


def compute(args: argparse.Namespace, run_dir: str) -> dict[str, Any]:
    """Run the stage with the options in ``args`` (missing ones take their defaults)."""
    from cnnlens.device import resolve_device
    from cnnlens.faithfulness.stage import DEFAULT_METHODS, DEFAULT_METRICS, run_faithfulness

    n_boot = getattr(args, "n_boot", 2000)
    if n_boot < 1:
        raise CnnlensError(f"--n-boot must be at least 1, got {n_boot}")
    sanity_samples = getattr(args, "sanity_samples", 32)
    if sanity_samples < 1:
        raise CnnlensError(f"--sanity-samples must be at least 1, got {sanity_samples}")
    progress, close = _progress()
    try:
        return run_faithfulness(
            run_dir,
            methods=_split_list(getattr(args, "methods", None)) or DEFAULT_METHODS,
            fracs=getattr(args, "frac", None),
            metrics=_split_list(getattr(args, "metrics", None)) or DEFAULT_METRICS,
            split=getattr(args, "split", "test"),
            limit=getattr(args, "limit", None),
            data_dir=getattr(args, "data_dir", None),
            device=resolve_device(getattr(args, "device", "auto")),
            batch_size=getattr(args, "batch_size", None),
            steps=getattr(args, "steps", 20),
            baseline=_baseline(str(getattr(args, "baseline", "zero"))),
            n_boot=n_boot,
            seed=getattr(args, "seed", 0),
            sanity=not getattr(args, "no_sanity", False),
            sanity_samples=sanity_samples,
            use_saved=not getattr(args, "recompute", False),
            random_cells=getattr(args, "random_cells", None),
            figures=not getattr(args, "no_figures", False),
            progress=progress,
        )
    finally:
        close()


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
    for label, s in results.get("sanity", {}).items():
        corr = ", ".join(f"{r:.2f}" for r in s["spearman_mean"])
        flag = "  FLAGGED: maps barely change" if s["flagged"] else ""
        print(f"sanity {label}: rank correlation as layers are randomized: {corr}{flag}")
    print(f"total {results['seconds']['total']:.1f} s; results: {out_dir / 'results.json'}")


def run(args: argparse.Namespace) -> int:
    from cnnlens.rundir import RunDir

    results = compute(args, args.run_dir)
    print_results(results, RunDir(args.run_dir).faithfulness_dir)
    return 0


def pipeline_stage(args: argparse.Namespace) -> Callable[[Any], Any]:
    """The stage ``cnnlens run`` calls: skipped when ``faithfulness/results.json`` exists.

    ``run`` has none of this command's options, so defaults apply, except that image tasks
    skip deletion/insertion (dozens of passes over every image on a CPU; run
    ``cnnlens faithfulness --metrics ...`` for them).
    """

    def stage(run: Any) -> Any:
        from cnnlens.data import get_task
        from cnnlens.fileio import read_json

        done = run.faithfulness_dir / "results.json"
        if done.exists():
            print("faithfulness: already done")
            return read_json(done)
        opts = argparse.Namespace(**vars(args))
        if getattr(opts, "metrics", None) is None and get_task(
            run.read_config()["task"]
        ).kind == "image":
            opts.metrics = ["drop_increase", "confidence"]
        results = compute(opts, str(run.path))
        print_results(results, run.faithfulness_dir, tests=False)
        return results

    return stage
