"""What the report stage writes: its options, declared once and free of torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlens.constraints import NON_NEGATIVE_INT, check
from cnnlens.optionspec import flag
from cnnlens.report.images import DEFAULT_MAX_IMAGE_PX, check_max_image_px

#: Samples the explorer shows at most: 2000 tiles with three maps each make a page of ~20 MB.
DEFAULT_EXPLORER_LIMIT = 2000


@dataclass(frozen=True)
class ReportOptions:
    """``cnnlens report`` options: where to write and how large embedded figures may be."""

    out: str | None = field(default=None, metadata=flag(
        "--out", help="HTML file to write (default: RUN_DIR/report.html)"))
    max_image_px: int | None = field(default=DEFAULT_MAX_IMAGE_PX, metadata=flag(
        "--max-image-px", parse="int",
        help="downscale embedded figures larger than this many pixels (0: keep full size; "
        "default %(default)s)"))
    explorer_limit: int = field(default=DEFAULT_EXPLORER_LIMIT, metadata=flag(
        "--explorer-limit", parse="non_negative_int",
        help="samples the interactive explorer shows at most, the first explained ones "
        "(0: leave the explorer out; default %(default)s)"))

    def validate(self) -> None:
        check_max_image_px(self.max_image_px)
        check(self.explorer_limit, "--explorer-limit", NON_NEGATIVE_INT)


__all__ = ["DEFAULT_EXPLORER_LIMIT", "ReportOptions"]
