"""A deterministic train/test split of a ``<class>/<files>`` folder into a new folder.

A hash of (seed, class, file name) orders each class, so the same files go to test on every
numpy/Python version; the split is built beside the target and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlens.errors import CnnlensError
from cnnlens.fileio import write_json

if TYPE_CHECKING:  # image_files imports torch: only when a folder is split
    from cnnlens.data.image_files import FolderScan


def find_class_root(src: str | Path) -> Path:
    """``src`` if it holds class folders, else its single sub-folder (as zips often nest)."""
    src = Path(src)
    if not src.is_dir():
        raise CnnlensError(f"{src}: not a folder; expected {src}/<class>/<image files>")
    subdirs = [p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1 and not any(p.is_file() for p in subdirs[0].iterdir()):
        return subdirs[0]
    return src


def _place(src: Path, dst: Path, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system or no hard links: copy instead
    shutil.copy2(src, dst)


def _split_rank(seed: int, class_name: str, file_name: str) -> str:
    # A hash instead of an RNG permutation: the same split on every numpy/Python version.
    return hashlib.sha256(f"{seed}\0{class_name}\0{file_name}".encode()).hexdigest()


def split_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    test_per_class: int = 62,
    seed: int = 0,
    link: bool = True,
    train_name: str = "HMT_train",
    test_name: str = "HMT_test",
) -> dict[str, Any]:
    """Split ``<src>/<class>/<files>`` into ``<dst>/{train_name,test_name}/<class>/``.

    Deterministic: within each class, files are ordered by a SHA-256 of (seed, class, file
    name) and the first ``test_per_class`` go to test. Files are hard-linked (copied when
    linking fails). ``dst`` must not exist or be empty; the split is built in a temporary
    folder and renamed into place, with a ``split.json`` manifest. Returns the manifest.
    """
    if test_per_class < 1:
        raise CnnlensError(f"--test-per-class must be >= 1, got {test_per_class}")
    root = find_class_root(src)
    from cnnlens.data.image_files import scan_split  # torch: only when a folder is split

    scan = scan_split(root)
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise CnnlensError(f"{dst}: already exists and is not empty; choose a new --out folder")
    by_class = _files_by_class(scan, test_per_class)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    manifest: dict[str, Any] = {
        "source": str(root), "seed": seed, "test_per_class": test_per_class,
        "method": "per class, sort by sha256(seed, class, file name), first N to test",
        "skipped_non_image": scan.skipped, "train": {}, "test": {},
    }
    try:
        for c, files in by_class.items():
            train, test = _split_class(files, seed, c, test_per_class)
            for split, names in ((train_name, train), (test_name, test)):
                (tmp / split / c).mkdir(parents=True)
                for n in names:
                    _place(root / c / n, tmp / split / c / n, link)
            manifest["train"][c], manifest["test"][c] = train, test
        write_json(tmp / "split.json", manifest)
        if dst.exists():
            dst.rmdir()
        os.replace(tmp, dst)
    except OSError as exc:
        raise CnnlensError(f"{dst}: cannot write the split ({exc})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _files_by_class(scan: FolderScan, test_per_class: int) -> dict[str, list[Path]]:
    """The scanned files grouped by class; each class must keep some for training."""
    by_class: dict[str, list[Path]] = {c: [] for c in scan.class_names}
    for f, y in zip(scan.files, scan.labels.tolist(), strict=True):
        by_class[scan.class_names[y]].append(f)
    for c, files in by_class.items():
        if len(files) <= test_per_class:
            raise CnnlensError(
                f"{scan.root / c}: {len(files)} images, need more than --test-per-class "
                f"{test_per_class}"
            )
    return by_class


def _split_class(files: list[Path], seed: int, class_name: str, test_per_class: int
                 ) -> tuple[list[str], list[str]]:
    """(train, test) file names of one class, each sorted: the first ``test_per_class`` by
    their seeded hash go to test."""
    rank = {p: _split_rank(seed, class_name, p.name) for p in files}
    ranked = sorted(files, key=rank.__getitem__)
    test = sorted(p.name for p in ranked[:test_per_class])
    train = sorted(p.name for p in ranked[test_per_class:])
    return train, test


__all__ = ["find_class_root", "split_dataset"]
