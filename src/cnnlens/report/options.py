"""What the report stage writes: its options, declared once and free of torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlens.optionspec import flag
from cnnlens.report.images import DEFAULT_MAX_IMAGE_PX, check_max_image_px


@dataclass(frozen=True)
class ReportOptions:
    """``cnnlens report`` options: where to write and how large embedded figures may be."""

    out: str | None = field(default=None, metadata=flag(
        "--out", help="HTML file to write (default: RUN_DIR/report.html)"))
    max_image_px: int | None = field(default=DEFAULT_MAX_IMAGE_PX, metadata=flag(
        "--max-image-px", parse="int",
        help="downscale embedded figures larger than this many pixels (0: keep full size; "
        "default %(default)s)"))

    def validate(self) -> None:
        check_max_image_px(self.max_image_px)


__all__ = ["ReportOptions"]
