"""``cnnlens report RUN_DIR``: one self-contained HTML file with every stage's results."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from cnnlens.cli.options import add_options
    from cnnlens.report.options import ReportOptions

    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write RUN_DIR/report.html from the run's results",
        description="Write one self-contained HTML report (figures embedded, no network) "
        "from whatever stages of the run are done; missing stages are listed with the "
        "command that produces them.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a cnnlens run folder")
    add_options(p, ReportOptions)  # the stage's own declarations
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlens.cli.options import options_from_args
    from cnnlens.report.options import ReportOptions
    from cnnlens.report.stage import run_stage
    from cnnlens.rundir.folder import RunDir

    path = run_stage(RunDir(args.run_dir), options_from_args(ReportOptions, args))
    print(path, flush=True)
    return 0
