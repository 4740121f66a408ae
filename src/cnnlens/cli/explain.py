"""``cnnlens explain RUN_DIR``: class activation maps for a trained run, with figures."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from cnnlens.errors import CnnlensError
from cnnlens.rundir import RunDir


def parse_layer(text: str | None) -> str | dict[str, str] | None:
    """``NAME`` for every method, or ``method=NAME,method=NAME`` per method."""
    if text is None:
        return None
    if "=" not in text:
        return text.strip()
    out: dict[str, str] = {}
    for part in text.split(","):
        method, sep, layer = part.partition("=")
        if not sep or not method.strip() or not layer.strip():
            raise CnnlensError(
                f"--layer {text!r}: expected NAME or method=NAME[,method=NAME...], got {part!r}"
            )
        out[method.strip()] = layer.strip()
    return out


def register(subparsers: Any) -> None:
    from cnnlens.explain import METHODS
    from cnnlens.explain.stage import DEFAULT_METHODS, SCORES

    p: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="compute CAMs for a trained run and draw them",
        description="Compute class activation maps of the predicted class for a split of a "
        "trained run; writes RUN_DIR/cams/<method>.npz, summary.json and PNG galleries "
        "(per class and for failures).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a trained cnnlens run folder")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated CAM methods, of {', '.join(METHODS)} "
                   "(default: %(default)s)")
    p.add_argument("--layer", default=None,
                   help="layer to explain at, for all methods (NAME) or per method "
                   "(gradcam=max_pooling2d_1,ablationcam=conv2d_3); default: the model's "
                   "CAM layer")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--limit", type=int, default=None, help="explain only the first N samples")
    p.add_argument("--score", choices=SCORES, default="logit",
                   help="score to explain: the class logit or its softmax probability")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--data-dir", default=None, help="data folder, if it moved since training")
    p.add_argument("--batch-size", type=int, default=None, help="samples per CAM batch")
    p.add_argument("--per-class", type=int, default=3, help="samples per class gallery")
    p.add_argument("--no-figures", action="store_true", help="write the .npz files only")
    p.set_defaults(func=run)


def _progress_bars() -> Callable[[str, int, int], None]:
    """A progress callback drawing one tqdm bar per stage (maps, then figures) on stderr."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            unit = "map" if stage == "cams" else "figure"
            bar = bars[stage] = tqdm(total=total, desc=f"explain {stage}", unit=unit,
                                     leave=False, file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def run(args: argparse.Namespace) -> int:
    from cnnlens.device import resolve_device
    from cnnlens.explain.stage import run_explain

    if args.per_class < 1:
        raise CnnlensError(f"--per-class must be at least 1, got {args.per_class}")
    summary = run_explain(
        args.run_dir,
        methods=args.methods,
        layer=parse_layer(args.layer),
        split=args.split,
        limit=args.limit,
        score=args.score,
        device=resolve_device(args.device),
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        figures=not args.no_figures,
        per_class=args.per_class,
        progress=_progress_bars(),
    )
    _print_summary(summary, RunDir(args.run_dir))
    return 0


def _print_summary(summary: dict[str, Any], run: RunDir) -> None:
    cams = run.cams_dir
    print(f"explained {summary['n']} {summary['split']} samples "
          f"(accuracy {summary['accuracy']:.1%}) with {len(summary['methods'])} method(s):")
    for m in summary["methods"]:
        print(f"  {m:<12} layer {summary['layers'][m]:<16} {summary['seconds'][m]:8.2f} s  "
              f"{cams / summary['files'][m]}")
    figs = summary.get("figures") or {}
    n_figs = len(figs.get("classes", [])) + (1 if figs.get("failures") else 0)
    if n_figs:
        print(f"  {n_figs} figures (per class and failures) in {cams}")
    print(f"summary: {cams / 'summary.json'}", flush=True)


def pipeline_stage(args: argparse.Namespace) -> Callable[[RunDir], Any]:
    """The explain stage of ``cnnlens run``: the study's three methods on the test split.

    A run started again skips the stage when ``cams/`` already holds those methods for the
    whole test split.
    """
    from cnnlens.cli._common import info
    from cnnlens.device import resolve_device
    from cnnlens.explain.stage import DEFAULT_METHODS, read_summary, run_explain

    def stage(run: RunDir) -> Any:
        if (run.cams_dir / "summary.json").exists():
            done = read_summary(run.path)
            files = [run.cams_dir / f"{m}.npz" for m in DEFAULT_METHODS]
            if (done.get("methods") == list(DEFAULT_METHODS) and done.get("split") == "test"
                    and not done.get("limit") and all(f.exists() for f in files)):
                info("explain: already done")
                return done
        summary = run_explain(run.path, methods=DEFAULT_METHODS, split="test",
                              device=resolve_device(getattr(args, "device", "auto")),
                              data_dir=getattr(args, "data_dir", None), progress=_progress_bars())
        _print_summary(summary, run)
        return summary

    return stage
