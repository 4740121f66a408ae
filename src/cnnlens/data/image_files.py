"""Image files: which ones count, how each decodes to 8-bit RGB and is resized, how a
``<root>/<class>/<files>`` folder is listed. Every bad file has defined behaviour: hidden
entries and non-image files are skipped and counted, an empty class folder is an error, a
corrupt or oversize file is an error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlens.data.resize import ImageSize, check_resize, crop_box, image_hw
from cnnlens.errors import CnnlensError

# Common raster formats; Pillow also registers odd ones (.h5, .ps, .mpeg) that are not tiles.
_RASTER_EXTENSIONS = (
    ".tif", ".tiff", ".png", ".webp", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".jpx", ".qoi", ".avif", ".sgi",
    ".pcx",
)

DEFAULT_MAX_PIXELS = 4096 * 4096


def image_extensions() -> frozenset[str]:
    """Lower-case file suffixes treated as images (common raster formats this Pillow opens)."""
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return frozenset(ext for ext in _RASTER_EXTENSIONS if ext in readable)


class BadImageError(CnnlensError):
    """A file that cannot be used as an image tile (corrupt, truncated, oversize, odd mode)."""


def bad_files_error(bad: dict[int, str], *, listed: int = 5) -> BadImageError:
    """One error naming every bad file (the first ``listed`` with their reasons)."""
    msgs = [bad[i] for i in sorted(bad)]
    text = "; ".join(msgs[:listed])
    more = f"; and {len(msgs) - listed} more" if len(msgs) > listed else ""
    return BadImageError(
        f"{len(msgs)} unreadable image file(s): {text}{more}; pass --skip-bad to skip and "
        "list them"
    )


# --------------------------------------------------------------------------- scanning
@dataclass
class FolderScan:
    """What a split folder holds: image files with labels, and what was skipped and why."""

    root: Path
    class_names: list[str]
    files: list[Path]
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)  # relative paths of ignored entries

    def counts(self) -> dict[str, int]:
        """Number of image files per class name."""
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.class_names)}


def scan_split(root: str | Path, class_names: Sequence[str] | None = None, *,
               subset: bool = False) -> FolderScan:
    """List ``<root>/<class>/<image files>`` in sorted order.

    Hidden entries (``.name``), loose files beside the class folders, sub-folders inside a
    class and files whose suffix is not an image format are skipped and listed. With
    ``class_names`` (e.g. the training split's), the folder must hold exactly those classes;
    with ``subset`` (a trained model's ``--class-names``) some of them, each labelled by its
    position in ``class_names``.
    """
    root = Path(root)
    exts = image_extensions()
    if not root.is_dir():
        raise CnnlensError(f"{root}: not a folder; expected {root}/<class>/<image files>")
    skipped: list[str] = []
    found: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            skipped.append(entry.name)
        else:
            found.append(entry.name)
    names = _split_classes(root, found, class_names, subset=subset)
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        folder = root / name
        if subset and not folder.is_dir():  # a class of the model that this data lacks
            continue
        images = _class_images(folder, name, exts, skipped)
        files += images
        labels += [label] * len(images)
    return FolderScan(root, names, files, np.asarray(labels, dtype=np.int64), skipped)


def _split_classes(root: Path, found: list[str], class_names: Sequence[str] | None, *,
                   subset: bool) -> list[str]:
    """The split's classes: the folders ``found``, or ``class_names`` checked against them."""
    if class_names is None:
        if not found:
            raise CnnlensError(
                f"{root}: no class folders; expected {root}/<class>/<image files>"
            )
        return found
    names = list(class_names)
    missing = [c for c in names if c not in found]
    extra = [c for c in found if c not in names]
    if missing and not subset:
        raise CnnlensError(
            f"{root / missing[0]}: class folder missing; expected classes: {', '.join(names)}"
        )
    if extra:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise CnnlensError(
            f"{root / extra[0]}: unexpected class folder; expected classes: {shown}"
            + (" (the model's --class-names)" if subset else "")
        )
    if subset and len(missing) == len(names):
        raise CnnlensError(f"{root}: no class folder is one of the model's --class-names "
                           f"({shown if extra else ', '.join(names[:20])})")
    return names


def _class_images(folder: Path, name: str, exts: frozenset[str], skipped: list[str]
                  ) -> list[Path]:
    """One class folder's image files in sorted order; every other entry goes to ``skipped``
    (relative to the split). A class without images is an error."""
    files: list[Path] = []
    for entry in sorted(folder.iterdir()):
        rel = f"{name}/{entry.name}"
        if entry.name.startswith(".") or not entry.is_file():
            skipped.append(rel)
        elif entry.suffix.lower() in exts:
            files.append(entry)
        else:
            skipped.append(rel)
    if not files:
        raise CnnlensError(
            f"{folder}: class folder has no image files (accepted: {', '.join(sorted(exts))})"
        )
    return files


# --------------------------------------------------------------------------- decoding
def _to_rgb_uint8(img: Image.Image, path: Path) -> np.ndarray:
    """Convert any supported mode to ``(H, W, 3)`` uint8 RGB, each mode by a stated rule.

    RGB as is; L/1 replicated; alpha modes composited over black (transparent = absent, the
    same zero the faithfulness masks use); 16-bit modes scaled by 1/257 (not clipped);
    other colour spaces (CMYK, YCbCr, LAB, HSV) through Pillow's conversion.
    """
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("L", "1"):
        g = np.asarray(img.convert("L"), dtype=np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise BadImageError(
                f"{path}: 32-bit integer pixels outside 0..65535 are not supported "
                "(accepted: 8-bit or 16-bit grayscale/RGB, RGBA, palette)"
            )
        g = ((a + 128) // 257).astype(np.uint8)  # 65535 -> 255, rounded, never clipped
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "P", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        out = rgba[:, :, :3] * (rgba[:, :, 3:] / 255.0)
        return np.rint(out).astype(np.uint8)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    raise BadImageError(
        f"{path}: unsupported image mode {mode!r} (accepted: RGB, RGBA, L, LA, 1, P, I;16, "
        "I, CMYK, YCbCr, LAB, HSV)"
    )


def decode_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one file to ``(H, W, 3)`` uint8 RGB; any failure is a BadImageError naming it."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise BadImageError(
                    f"{path}: image is {w}x{h} = {w * h} pixels, over the limit of "
                    f"{max_pixels} (accepted: tiles up to {max_pixels} pixels)"
                )
            img.load()  # decode now so a truncated file fails here, not later
            return _to_rgb_uint8(img, path)
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"{path}: refused as oversize ({exc})") from None
    except Exception as exc:  # Pillow raises many types on corrupt files; all name the file
        raise BadImageError(
            f"{path}: cannot decode image ({type(exc).__name__}: {exc})"
        ) from None


def load_tile(path: str | Path, size: ImageSize, *, max_pixels: int = DEFAULT_MAX_PIXELS,
              resize: str = "stretch") -> np.ndarray:
    """The study's preprocessing up to scaling: 8-bit RGB, Pillow bilinear to ``size``
    (``H`` or ``(H, W)``); ``resize="shorter-side+center-crop"`` keeps the aspect ratio and
    cuts the centre (:mod:`cnnlens.data.resize`)."""
    h, w = image_hw(size)
    img = Image.fromarray(decode_image(path, max_pixels=max_pixels))
    box = crop_box(img.width, img.height, (h, w)) if check_resize(resize) != "stretch" else None
    out = img.resize((w, h), Image.Resampling.BILINEAR, box=box)
    return np.asarray(out, dtype=np.uint8)


def to_tensor(tile: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [0, 1] (x / 255, as Keras did)."""
    chw = np.ascontiguousarray(np.asarray(tile).transpose(2, 0, 1), dtype=np.float32)
    chw /= np.float32(255.0)  # numpy: no intra-op thread pool for a tiny op
    return torch.from_numpy(chw)
