"""Loose inputs without labels: image files, folders of them, and ``.npy``/``.npz`` signals.

``cnnlens explain --inputs`` explains whatever files a user has, so this module turns paths
into samples with the same preprocessing as the folder tasks: images go through
:func:`cnnlens.data.image_files.load_tile` and
:func:`~cnnlens.data.image_files.to_tensor` (8-bit RGB, Pillow bilinear to a square size,
``x / 255``), so a tile gives the same tensor here as in an ``images`` run. Signals are
read with ``allow_pickle=False``. Every unreadable file is collected first, so one error
can name all of them (or ``skip_bad`` drops and lists them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnlens.data.image_files import (
    DEFAULT_MAX_PIXELS,
    BadImageError,
    image_extensions,
    load_tile,
    to_tensor,
)
from cnnlens.errors import CnnlensError

SIGNAL_EXTENSIONS = (".npy", ".npz")


@dataclass(frozen=True)
class Sample:
    """One input to explain: its display name, where it came from and its tensor."""

    name: str  # the path as the user would type it; ``file.npz:key[i]`` inside arrays
    path: Path
    kind: str  # "image" | "signal"
    x: torch.Tensor  # (C, *spatial) float32


@dataclass
class InputScan:
    """What the paths hold: files to read, in order, and entries skipped (hidden, other)."""

    files: list[tuple[Path, str]]  # (file, display name)
    skipped: list[str] = field(default_factory=list)


@dataclass
class LooseInputs:
    """Decoded samples, the files left out with ``skip_bad`` and why, and scan leftovers."""

    samples: list[Sample]
    bad: list[tuple[str, str]]  # (file, reason)
    skipped: list[str]


def input_kind(path: Path) -> str | None:
    """``"image"``, ``"signal"`` or None (not an input type), by suffix."""
    suffix = path.suffix.lower()
    if suffix in SIGNAL_EXTENSIONS:
        return "signal"
    if suffix in image_extensions():
        return "image"
    return None


def scan_inputs(paths: Sequence[str | os.PathLike[str]]) -> InputScan:
    """Expand ``paths``: files as given, folders recursively in sorted order.

    Inside folders, hidden entries (``.name``) and files of other types are skipped and
    listed; a file named explicitly is always read (an unknown type is then a bad file).
    A path that does not exist, or nothing to read at all, is an error.
    """
    if not paths:
        raise CnnlensError("--inputs is empty; give image files, folders or .npy/.npz signals")
    scan = InputScan(files=[])
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            _walk(path, str(given), scan)
        elif path.exists():
            scan.files.append((path, str(given)))
        else:
            raise CnnlensError(f"--inputs {given}: no such file or folder")
    if not scan.files:
        accepted = ", ".join(sorted({*image_extensions(), *SIGNAL_EXTENSIONS}))
        raise CnnlensError(f"--inputs {' '.join(map(str, paths))}: no input files found "
                           f"(accepted: {accepted})")
    return scan


def _walk(folder: Path, shown: str, scan: InputScan) -> None:
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            entry = Path(root) / name
            display = str(Path(shown) / rel / name)
            if name.startswith(".") or input_kind(entry) is None:
                scan.skipped.append(display)
            else:
                scan.files.append((entry, display))


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a text file (one per line) or a JSON list of strings."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CnnlensError(f"--class-names {p}: cannot read ({exc})") from None
    if p.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CnnlensError(f"--class-names {p}: not valid JSON ({exc})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CnnlensError(f"--class-names {p}: expected a JSON list of strings")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise CnnlensError(f"--class-names {p}: holds no class names")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise CnnlensError(f"--class-names {p}: class {dup!r} is listed twice")
    return names


# --------------------------------------------------------------------------- reading
def read_inputs(
    scan: InputScan,
    *,
    image_size: int,
    channels: int | None = None,
    skip_bad: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_threads: int | None = None,
) -> LooseInputs:
    """Decode every scanned file into samples, in scan order.

    ``channels``: the model's input channels, which decides whether a 2-D signal array is one
    ``(C, L)`` signal or ``(N, L)`` one-channel signals. Unreadable files raise one error
    naming each of them, unless ``skip_bad``.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) \
            or not 1 <= image_size <= 4096:
        raise CnnlensError(f"--image-size must be an integer in 1..4096, got {image_size!r}")

    def work(item: tuple[Path, str]) -> list[Sample] | str:
        path, name = item
        try:
            if input_kind(path) == "signal":
                return _signals(path, name, channels)
            if input_kind(path) is None:
                raise CnnlensError(f"{path}: not an image or .npy/.npz signal file")
            tile = load_tile(path, image_size, max_pixels=max_pixels)
            return [Sample(name, path, "image", to_tensor(tile))]
        except (BadImageError, CnnlensError) as exc:
            return str(exc)

    threads = num_threads or min(8, os.cpu_count() or 1)
    if threads <= 1 or len(scan.files) < 2:
        results = [work(f) for f in scan.files]
    else:  # Pillow releases the GIL while decoding and resizing
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(work, scan.files, chunksize=16))
    samples: list[Sample] = []
    bad: list[tuple[str, str]] = []
    for (path, _), res in zip(scan.files, results, strict=True):
        if isinstance(res, str):
            bad.append((str(path), res))
        else:
            samples.extend(res)
    if bad and not skip_bad:
        raise bad_inputs_error(bad)
    if not samples:
        raise CnnlensError(f"no readable inputs: all {len(bad)} file(s) were unreadable")
    return LooseInputs(samples, bad, list(scan.skipped))


def bad_inputs_error(bad: Sequence[tuple[str, str]]) -> CnnlensError:
    """One error naming every unreadable file (reasons repeat the name; shown once)."""
    parts = [reason if reason.startswith(path) else f"{path}: {reason}" for path, reason in bad]
    return CnnlensError(f"{len(bad)} unreadable input file(s): {'; '.join(parts)}; pass "
                        "--skip-bad to skip and list them")


def _signals(path: Path, name: str, channels: int | None) -> list[Sample]:
    """The signals of one ``.npy`` (one array) or ``.npz`` (each array), as ``(C, L)``."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = {"": loaded}
        else:
            with loaded as data:
                arrays = {key: data[key] for key in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CnnlensError(f"{path}: holds object arrays, which need pickle and are "
                               "refused; save numbers only") from None
        raise CnnlensError(f"{path}: not a readable .npy/.npz file ({exc})") from None
    except Exception as exc:  # numpy raises many types on corrupt files; all name the file
        raise CnnlensError(f"{path}: not a readable .npy/.npz file "
                           f"({type(exc).__name__}: {exc})") from None
    if not arrays:
        raise CnnlensError(f"{path}: holds no arrays")
    out: list[Sample] = []
    for key, a in arrays.items():
        label = f"{name}:{key}" if key else name
        batch = _as_signal_batch(a, label, channels)
        many = batch.shape[0] > 1 or a.ndim == 3
        for i in range(batch.shape[0]):
            out.append(Sample(f"{label}[{i}]" if many else label, path, "signal",
                              torch.from_numpy(np.ascontiguousarray(batch[i]))))
    return out


def _as_signal_batch(a: np.ndarray, label: str, channels: int | None) -> np.ndarray:
    """``(L,)``, ``(C, L)``, ``(N, L)`` or ``(N, C, L)`` as ``(N, C, L)`` float32.

    A 2-D array is ``(C, L)`` when its first size is the model's channel count (or that
    count is unknown), else ``(N, L)`` signals of a one-channel model.
    """
    if a.dtype.kind not in "fiu":
        raise CnnlensError(f"{label}: dtype {a.dtype}; expected real numbers")
    if a.ndim == 1:
        a = a[None, None, :]
    elif a.ndim == 2:
        if channels is None or a.shape[0] == channels:
            a = a[None]
        elif channels == 1:
            a = a[:, None, :]
        else:
            raise CnnlensError(f"{label}: shape {a.shape} is neither ({channels}, L) for this "
                               f"{channels}-channel model nor (N, L) of one-channel signals")
    elif a.ndim != 3:
        raise CnnlensError(f"{label}: shape {a.shape}; expected (L,), (C, L), (N, L) or "
                           "(N, C, L)")
    if 0 in a.shape:
        raise CnnlensError(f"{label}: shape {a.shape} holds no signal")
    if not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a).reshape(a.shape[0], -1).all(axis=1))[0])
        raise CnnlensError(f"{label}: signal {bad} holds NaN or infinite values")
    return a.astype(np.float32)


__all__ = ["SIGNAL_EXTENSIONS", "InputScan", "LooseInputs", "Sample", "bad_inputs_error",
           "input_kind", "read_class_names", "read_inputs", "scan_inputs"]
