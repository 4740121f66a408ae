"""``cnnlens faithfulness RUN_DIR``: score CAM methods against a random baseline, with intervals."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlens.cli._common import (
    Bars,
    add_pretrained_option,
    number_or_name,
    positive_int,
    prepare_pretrained,
    skip_bad_data,
    split_list,
)


def register(subparsers: Any) -> None:
    from cnnlens.faithfulness.metrics import BASELINES, METRICS
    from cnnlens.faithfulness.stage import DEFAULT_METHODS, IMAGE_METRICS

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
    add_pretrained_option(p)
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="CAM methods as name[@layer][:score], e.g. gradcam@max_pooling2d_1:prob "
                   f"(default: {' '.join(DEFAULT_METHODS)}); the random baseline is always added")
    p.add_argument("--frac", nargs="+", type=float, default=None, metavar="F",
                   help="kept fraction(s) for the drop/increase rate, in (0, 1] "
                   "(default: 0.9 for hmt, 0.15 and 0.3 for mnist1d)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                   help=f"metrics to compute ({', '.join(METRICS)}; default: all for signals, "
                   f"{' '.join(IMAGE_METRICS)} for images, where deletion/insertion take "
                   "dozens of passes over every image)")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="score only the first N samples")
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
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images, listing them")
    p.add_argument("--data-dir", "--data", dest="data_dir", default=None,
                   help="data folder (or .npz), if it moved since training")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="samples per scoring batch")
    p.set_defaults(func=run)


def compute(args: argparse.Namespace, run_dir: str) -> dict[str, Any]:
    """Run the stage with the options in ``args``."""
    from cnnlens.device import resolve_device
    from cnnlens.faithfulness.stage import run_faithfulness

    bars = Bars()
    data = skip_bad_data(args)
    try:
        return run_faithfulness(
            run_dir,
            methods=split_list(args.methods),
            fracs=args.frac,
            metrics=split_list(args.metrics),
            split=args.split,
            limit=args.limit,
            data_dir=args.data_dir,
            device=resolve_device(args.device),
            batch_size=args.batch_size,
            steps=args.steps,
            baseline=number_or_name(str(args.baseline)),
            n_boot=args.n_boot,
            seed=args.seed,
            sanity=not args.no_sanity,
            sanity_samples=args.sanity_samples,
            use_saved=not args.recompute,
            random_cells=args.random_cells,
            figures=not args.no_figures,
            progress=bars,
            data=data,
        )
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
    for label, s in results.get("sanity", {}).items():
        corr = ", ".join(f"{r:.2f}" for r in s["spearman_mean"])
        flag = "  FLAGGED: maps barely change" if s["flagged"] else ""
        print(f"sanity {label}: rank correlation as layers are randomized: {corr}{flag}")
    print(f"total {results['seconds']['total']:.1f} s; results: {out_dir / 'results.json'}")


def run(args: argparse.Namespace) -> int:
    from cnnlens.pipeline.folder import RunDir

    prepare_pretrained(args)
    results = compute(args, args.run_dir)
    print_results(results, RunDir(args.run_dir).faithfulness_dir)
    return 0
