"""How image files become the model's input size: ``--image-size H[,W]`` and ``--resize``.

Torch-free (the CLI parses these). ``stretch`` scales each file to exactly H x W (the
study's preprocessing, square tiles); ``shorter-side+center-crop`` scales it, aspect kept,
until it covers H x W and cuts the centre: what ImageNet-style models were trained with.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnlens.errors import CnnlensError, unknown_choice

RESIZE_MODES: tuple[str, ...] = ("stretch", "shorter-side+center-crop")
MAX_SIDE = 4096

ImageSize = int | tuple[int, int]


def image_hw(size: int | Sequence[int], option: str = "--image-size") -> tuple[int, int]:
    """``(H, W)`` of an image size given as one side (square) or two; checked."""
    sides = [size] if isinstance(size, int) else list(size)
    if not 1 <= len(sides) <= 2 or any(isinstance(s, bool) or not isinstance(s, int)
                                       or not 1 <= s <= MAX_SIDE for s in sides):
        raise CnnlensError(f"{option} must be one or two integers in 1..{MAX_SIDE} (H or H,W), "
                           f"got {size!r}")
    return (sides[0], sides[-1])


def parse_image_size(text: str) -> ImageSize:
    """``--image-size`` as typed: ``224`` or ``48,192`` (height, width)."""
    try:
        sides = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        raise CnnlensError(f"--image-size {text!r}: expected H or H,W (integers)") from None
    h, w = image_hw(sides)
    return h if len(sides) == 1 else (h, w)


def canonical_size(size: int | Sequence[int]) -> ImageSize:
    """One int for a square size, else ``(H, W)``: how configs store it (JSON lists too)."""
    h, w = image_hw(size)
    return h if h == w else (h, w)


def check_resize(mode: str) -> str:
    if mode not in RESIZE_MODES:
        raise unknown_choice("--resize", mode, RESIZE_MODES)
    return mode


def crop_box(width: int, height: int, hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """The centred region of a ``width`` x ``height`` image with the target's aspect ratio:
    what is left after scaling the image to cover the target and cutting the centre."""
    target_h, target_w = hw
    scale = max(target_w / width, target_h / height)
    box_w, box_h = target_w / scale, target_h / scale
    left, top = (width - box_w) / 2, (height - box_h) / 2
    return (left, top, left + box_w, top + box_h)


__all__ = ["MAX_SIDE", "RESIZE_MODES", "ImageSize", "canonical_size", "check_resize",
           "crop_box", "image_hw", "parse_image_size"]
