"""Figures as ``data:`` URIs, so the report is one file that needs no network or folder."""

from __future__ import annotations

import base64
import io
import struct
import warnings
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


class TooLargeError(CnnlensError):
    """A figure refused for its pixel count; its message is the note the report shows."""


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


#: Figures with more pixels than this are not decoded at all (a 4000 x 4000 PNG, the most
#: evaluate and explain write, has 16 M): decoding a 24,000-pixel confusion matrix takes
#: gigabytes, and Pillow refuses such files as decompression bombs with a raw traceback.
MAX_SOURCE_PIXELS = 40_000_000

#: Quality of lossy WebP for photo-like figures (tiles, CAM overlays): at 80 the overlays look
#: the same at report size and an HMT gallery shrinks ~10x, keeping reports under 10 MB.
WEBP_QUALITY = 80


def png_data_uri(path: Path, max_px: int | None, *, lossy: bool = False) -> tuple[str, int, int]:
    """Read a PNG, downscale it to fit ``max_px`` if needed; return (URI, width, height).

    Files that already fit are embedded byte for byte (re-encoding would only cost time),
    unless ``lossy``: then a WebP re-encoding is used when it is smaller.
    """
    from PIL import Image, UnidentifiedImageError

    mime = "image/png"
    try:
        with path.open("rb") as fh:
            _check_png_size(path, fh.read(24))
        data = path.read_bytes()
        with warnings.catch_warnings():
            # Pillow warns (and above twice its limit raises) on huge images: both become
            # the figure's note, never a traceback or a stray warning
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            uri, width, height = _encode(path, data, mime, max_px, lossy=lossy)
    except TooLargeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLargeError(f"not shown: too large to embed ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CnnlensError(f"{path}: unreadable image ({exc})") from None
    return uri, width, height


def _check_png_size(path: Path, head: bytes) -> None:
    """Refuse a PNG whose header (``head``: its first 24 bytes) declares more than
    ``MAX_SOURCE_PIXELS``, before reading or decoding the rest.

    Files that are not PNGs (or truncated headers) are left to Pillow to report.
    """
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return
    width, height = struct.unpack(">II", head[16:24])
    if width * height > MAX_SOURCE_PIXELS:
        raise TooLargeError(
            f"not shown: the image is {width} x {height} px ({width * height / 1e6:.0f} M "
            f"pixels), over the {MAX_SOURCE_PIXELS / 1e6:.0f} M pixels a report embeds; "
            f"open {path.name} directly"
        )


def _encode(path: Path, data: bytes, mime: str, max_px: int | None, *,
            lossy: bool) -> tuple[str, int, int]:
    """The data URI of ``data``, downscaled to ``max_px`` and possibly WebP (see caller)."""
    from PIL import Image

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
