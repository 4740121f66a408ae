"""The report stage: ``report.html`` from whatever stages of the run are done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnlens.report.build import build_report
from cnnlens.report.images import DEFAULT_MAX_IMAGE_PX, check_max_image_px
from cnnlens.rundir.folder import RunDir


@dataclass(frozen=True)
class ReportOptions:
    """``cnnlens report`` options: where to write and how large embedded figures may be."""

    out: str | None = None
    max_image_px: int | None = DEFAULT_MAX_IMAGE_PX

    def validate(self) -> None:
        check_max_image_px(self.max_image_px)


def is_done(run: RunDir, options: ReportOptions | None = None) -> bool:
    """Never: the report is rebuilt every time (a second or two) so it shows every stage."""
    return False


def run_stage(run: RunDir, options: ReportOptions) -> Path:
    """Write the report (atomically) and return its path."""
    options.validate()
    with run.lock():
        return build_report(run.path, out=options.out, max_image_px=options.max_image_px)


__all__ = ["ReportOptions", "is_done", "run_stage"]
