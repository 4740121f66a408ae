"""``cnnlens report RUN_DIR``: one self-contained HTML file with every stage's results."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from cnnlens.report.images import DEFAULT_MAX_IMAGE_PX

    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write RUN_DIR/report.html from the run's results",
        description="Write one self-contained HTML report (figures embedded, no network) "
        "from whatever stages of the run are done; missing stages are listed with the "
        "command that produces them.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a cnnlens run folder")
    p.add_argument("--out", default=None, help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument("--max-image-px", type=int, default=DEFAULT_MAX_IMAGE_PX,
                   help="downscale embedded figures larger than this many pixels "
                   "(0: keep full size; default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlens.report.stage import ReportOptions, run_stage
    from cnnlens.rundir.folder import RunDir

    path = run_stage(RunDir(args.run_dir), ReportOptions(out=args.out,
                                                         max_image_px=args.max_image_px))
    print(path, flush=True)
    return 0
