"""The self-contained HTML report of a run: every stage's results in one offline file."""

from cnnlens.report.build import SECTIONS, build_report, collect
from cnnlens.report.images import DEFAULT_MAX_IMAGE_PX

__all__ = ["DEFAULT_MAX_IMAGE_PX", "SECTIONS", "build_report", "collect"]
