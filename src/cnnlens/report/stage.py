"""The report stage: ``report.html`` from whatever stages of the run are done."""

from __future__ import annotations

from pathlib import Path

from cnnlens.report.build import build_report
from cnnlens.report.options import ReportOptions
from cnnlens.rundir.folder import RunDir


def is_done(run: RunDir, options: ReportOptions | None = None) -> bool:
    """Never: the report is rebuilt every time (a second or two) so it shows every stage."""
    return False


def run_stage(run: RunDir, options: ReportOptions) -> Path:
    """Write the report (atomically) and return its path."""
    options.validate()
    with run.lock():
        return build_report(run.path, out=options.out, max_image_px=options.max_image_px,
                            explorer_limit=options.explorer_limit)


__all__ = ["ReportOptions", "is_done", "run_stage"]
