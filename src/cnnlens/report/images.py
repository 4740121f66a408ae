"""Figures as ``data:`` URIs, so the report is one file that needs no network or folder."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from cnnlens.errors import CnnlensError

#: Embedded figures wider or taller than this are downscaled: 2-D CAM galleries are 1-3 MB
#: PNGs each, and a report that takes a minute to open is not read.
DEFAULT_MAX_IMAGE_PX = 1600


@dataclass(frozen=True)
class Figure:
    """One figure of the report: where it came from and, if it could be read, its data URI."""

    file: str  # relative to the run folder, shown as the figure's source
    caption: str
    uri: str | None = None
    width: int = 0
    height: int = 0
    problem: str | None = None  # why it is not shown (missing or unreadable)


def check_max_image_px(max_image_px: int | None) -> int | None:
    """``None`` or 0 keeps figures at full size; otherwise a positive pixel count."""
    if max_image_px is None or max_image_px == 0:
        return None
    if isinstance(max_image_px, bool) or not isinstance(max_image_px, int) or max_image_px < 64:
        raise CnnlensError(
            f"max_image_px={max_image_px!r} is invalid; accepted: 0 (full size) or an "
            "integer >= 64"
        )
    return max_image_px


#: Quality of lossy WebP for photo-like figures (tiles, CAM overlays): at 80 the overlays look
#: the same at report size and an HMT gallery shrinks ~10x, keeping reports under 10 MB.
WEBP_QUALITY = 80


def png_data_uri(path: Path, max_px: int | None, *, lossy: bool = False) -> tuple[str, int, int]:
    """Read a PNG, downscale it to fit ``max_px`` if needed; return (URI, width, height).

    Files that already fit are embedded byte for byte (re-encoding would only cost time),
    unless ``lossy``: then a WebP re-encoding is used when it is smaller.
    """
    from PIL import Image, UnidentifiedImageError

    data = path.read_bytes()
    mime = "image/png"
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise CnnlensError(f"{path}: not a PNG file ({img.format})")
            width, height = img.size
            small: Image.Image | None = None
            if max_px is not None and max(width, height) > max_px:
                scale = max_px / max(width, height)
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                small = img.convert("RGBA" if "A" in img.getbands() else "RGB").resize(
                    size, Image.Resampling.LANCZOS
                )
                buf = io.BytesIO()
                small.save(buf, format="PNG")
                data, (width, height) = buf.getvalue(), size
            if lossy:
                src = small if small is not None else img.convert("RGB")
                buf = io.BytesIO()
                src.convert("RGB").save(buf, format="WEBP", quality=WEBP_QUALITY, method=4)
                if buf.tell() < len(data):
                    data, mime = buf.getvalue(), "image/webp"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CnnlensError(f"{path}: unreadable image ({exc})") from None
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii"), width, height


def embed(run_path: Path, rel: str, caption: str, max_px: int | None, *,
          lossy: bool = False) -> Figure:
    """A :class:`Figure` for ``run_path / rel``; a missing or broken file becomes a note."""
    path = run_path / rel
    if not path.resolve().is_relative_to(run_path.resolve()):
        return Figure(file=rel, caption=caption, problem="outside the run folder; not embedded")
    if not path.is_file():
        return Figure(file=rel, caption=caption, problem="not found")
    try:
        uri, w, h = png_data_uri(path, max_px, lossy=lossy)
    except CnnlensError as exc:
        return Figure(file=rel, caption=caption, problem=str(exc))
    return Figure(file=rel, caption=caption, uri=uri, width=w, height=h)
