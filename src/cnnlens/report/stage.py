"""The report stage: ``report.html`` from whatever stages of the run are done."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnlens.report.build import build_report
from cnnlens.report.options import ReportOptions
from cnnlens.rundir.folder import RunDir


def is_done(run: RunDir, options: ReportOptions | None = None) -> bool:
    """Never: the report is rebuilt every time (a second or two) so it shows every stage."""
    return False


def run_stage(run: RunDir, options: ReportOptions,
              config: Mapping[str, Any] | None = None) -> Path:
    """Write the report (atomically) and return its path (``config``: the run's config when
    the caller holds it, else ``config.json`` is read)."""
    options.validate()
    with run.lock():
        return build_report(run.path, out=options.out, max_image_px=options.max_image_px,
                            explorer_limit=options.explorer_limit, config=config)


__all__ = ["ReportOptions", "is_done", "run_stage"]
