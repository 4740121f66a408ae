"""Image-folder datasets: ``<root>/<class>/<files>`` in any raster format Pillow reads.

Every tile is decoded, converted to 8-bit RGB and resized with Pillow bilinear exactly once
(the study's preprocessing; an imported Keras model only reproduces its accuracy with it;
:mod:`cnnlens.data.image_files`), and kept in a uint8 cache so later epochs never decode
again; a corrupt or oversize file is an error naming it (or skipped and listed with
``skip_bad``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnlens.data.augment import augment_batch, augment_image, sample_params
from cnnlens.data.augmentations import AugmentConfig
from cnnlens.data.image_files import (
    DEFAULT_MAX_PIXELS,
    BadImageError,
    bad_files_error,
    load_tile,
    scan_split,
    to_tensor,
)
from cnnlens.data.resize import ImageSize, image_hw
from cnnlens.errors import CnnlensError
from cnnlens.fileio import atomic_path, write_json

# Bump when decoding or resizing changes, so on-disk caches of the old pixels are not reused.
_CACHE_VERSION = 1


# --------------------------------------------------------------------------- caching
class TileStore:
    """Decoded, resized uint8 tiles of a file list, decoded at most once each.

    Lazy by default (decode on first access); :meth:`fill` decodes everything with a thread
    pool (Pillow releases the GIL while decoding and resizing). With ``cache_file`` a full
    fill is saved as ``.npy`` and later memory-mapped, which also shares it across
    DataLoader worker processes.
    """

    def __init__(self, files: Sequence[Path], size: ImageSize, *, max_pixels: int,
                 resize: str = "stretch") -> None:
        self.files = list(files)
        self.size = size
        self.hw = image_hw(size)
        self.resize = resize
        self.max_pixels = max_pixels
        self._array: np.ndarray | None = None
        self._filled = np.zeros(len(self.files), dtype=bool)
        self.bad: dict[int, str] = {}

    def _ensure_array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.empty((len(self.files), *self.hw, 3), dtype=np.uint8)
        return self._array

    def get(self, i: int) -> np.ndarray:
        """Tile ``i``; decodes it on first use (a bad file raises BadImageError)."""
        if i in self.bad:
            raise BadImageError(self.bad[i])
        arr = self._ensure_array()
        if not self._filled[i]:
            arr[i] = load_tile(self.files[i], self.hw, max_pixels=self.max_pixels,
                               resize=self.resize)
            self._filled[i] = True
        return arr[i]

    @property
    def complete(self) -> bool:
        return int(self._filled.sum()) + len(self.bad) == len(self.files)

    def fill(self, num_threads: int | None = None) -> dict[int, str]:
        """Decode every tile not yet decoded; return ``{index: error message}`` of bad files."""
        arr = self._ensure_array()
        todo = [i for i in range(len(self.files)) if not self._filled[i] and i not in self.bad]

        def work(i: int) -> tuple[int, str | None]:
            try:
                arr[i] = load_tile(self.files[i], self.hw, max_pixels=self.max_pixels,
                                   resize=self.resize)
            except BadImageError as exc:
                return i, str(exc)
            return i, None

        threads = num_threads or min(8, os.cpu_count() or 1)
        if threads <= 1 or len(todo) < 2:
            results = [work(i) for i in todo]
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                results = list(pool.map(work, todo, chunksize=16))
        for i, err in results:
            if err is None:
                self._filled[i] = True
            else:
                self.bad[i] = err
        return dict(self.bad)

    # -- on-disk cache -----------------------------------------------------------
    def cache_key(self) -> str:
        """Hash of everything the pixels depend on: files (path, size, mtime), size, version."""
        # a square stretch keys as before, so existing caches stay valid
        size = self.hw[0] if self.hw[0] == self.hw[1] else f"{self.hw[0]}x{self.hw[1]}"
        mode = "" if self.resize == "stretch" else f":{self.resize}"
        h = hashlib.sha256(f"v{_CACHE_VERSION}:{size}:{self.max_pixels}{mode}".encode())
        for p in self.files:
            st = p.stat()
            h.update(f"\n{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:24]

    def load_cache(self, cache_dir: Path) -> bool:
        """Memory-map a matching cache; return False (and change nothing) when there is none."""
        key = self.cache_key()
        npy, meta = cache_dir / f"tiles_{key}.npy", cache_dir / f"tiles_{key}.json"
        if not (npy.exists() and meta.exists()):
            return False
        try:
            info = json.loads(meta.read_text())
            arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return False  # a corrupt cache is rebuilt and replaced atomically
        if arr.shape != (len(self.files), *self.hw, 3) or arr.dtype != np.uint8:
            return False
        self._array = arr
        self.bad = {int(k): str(v) for k, v in info.get("bad", {}).items()}
        self._filled[:] = True
        for i in self.bad:
            self._filled[i] = False
        return True

    def save_cache(self, cache_dir: Path) -> None:
        """Write the fully decoded tiles (npy first, then the JSON that validates it)."""
        if self._array is None or not self.complete:
            raise RuntimeError("save_cache needs a complete fill()")
        key = self.cache_key()
        arr = self._array
        try:
            with atomic_path(cache_dir / f"tiles_{key}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            write_json(
                cache_dir / f"tiles_{key}.json",
                {"files": len(self.files), "size": list(self.hw), "resize": self.resize,
                 "bad": {str(k): v for k, v in self.bad.items()}},
            )
        except OSError as exc:
            raise CnnlensError(f"{cache_dir}: cannot write the image cache ({exc})") from None


# --------------------------------------------------------------------------- dataset
class ImageFolderDataset(Dataset[tuple[torch.Tensor, int]]):
    """``<root>/<class>/<files>`` as ``(x (3, size, size) float32 in [0, 1], label)`` pairs.

    ``augment`` turns on the seeded train-time augmentation; its random parameters derive
    from ``(seed, epoch, file index)`` so a resumed run sees the same images: call
    :meth:`set_epoch` once per epoch. :meth:`subset` gives views that share the decoded tiles
    (e.g. train and validation carved from one folder, only train augmented).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        size: ImageSize = 224,
        resize: str = "stretch",
        class_names: Sequence[str] | None = None,
        subset: bool = False,
        skip_bad: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        preload: bool = False,
        num_threads: int | None = None,
    ) -> None:
        image_hw(size, "image_size")
        self.scan = scan_split(root, class_names, subset=subset)
        self.root = self.scan.root
        self.class_names = list(self.scan.class_names)
        self.size = size
        self.skip_bad = skip_bad
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._store = TileStore(self.scan.files, size, max_pixels=max_pixels, resize=resize)
        cache = Path(cache_dir) / "images" if cache_dir is not None else None
        if cache is not None and self._store.load_cache(cache):
            pass
        elif skip_bad or preload or cache is not None:
            self._store.fill(num_threads)
            if cache is not None:
                self._store.save_cache(cache)
        bad = self._store.bad
        if bad and not skip_bad:
            raise bad_files_error(bad)
        self._indices = np.asarray(
            [i for i in range(len(self.scan.files)) if i not in bad], dtype=np.int64
        )

    # -- views ---------------------------------------------------------------------
    def subset(
        self, indices: Sequence[int] | np.ndarray, *, augment: AugmentConfig | None = None
    ) -> ImageFolderDataset:
        """A view of positions ``indices`` of this dataset sharing its decoded tiles."""
        view = copy.copy(self)
        view._indices = self._indices[np.asarray(indices, dtype=np.int64)]
        view.augment = augment
        view.epoch = 0
        return view

    def without_augmentation(self) -> ImageFolderDataset:
        """The same items with no train-time augmentation (for evaluation)."""
        if self.augment is None:
            return self
        return self.subset(np.arange(len(self)), augment=None)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (call it at the start of every epoch)."""
        if epoch < 0:
            raise CnnlensError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def unreadable(self, num_threads: int | None = None) -> list[str]:
        """Decode every tile of this view now; the error of each file that cannot be read."""
        bad = self._store.fill(num_threads)
        return [bad[i] for i in self._indices.tolist() if i in bad]

    def preload(self, num_threads: int | None = None) -> None:
        """Decode every tile now (before forking DataLoader workers, so they share it)."""
        bad = self._store.fill(num_threads)
        hit = [i for i in self._indices.tolist() if i in bad]
        if hit:
            raise bad_files_error({i: bad[i] for i in hit})

    # -- data ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        i = int(self._indices[k])
        x = to_tensor(self._store.get(i))
        if self.augment is not None:
            x = augment_image(x, sample_params(self.augment, self.seed, self.epoch, i))
        return x, int(self.scan.labels[i])

    def get_batch(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Items at ``positions`` as one batch, augmented in a single ``grid_sample``.

        The training loop uses this instead of per-item ``__getitem__``: one batched warp is
        several times cheaper than 32 small ones, and the draws are the same (same params).
        """
        idx = self._indices[np.asarray(positions, dtype=np.int64)]
        tiles = torch.from_numpy(np.stack([self._store.get(int(i)) for i in idx]))
        # (N, H, W, 3) viewed as (N, 3, H, W): channels-last memory, the layout convolutions
        # run fastest in on CPU, at no copy; the values equal to_tensor's.
        x = tiles.permute(0, 3, 1, 2).float().div_(255.0)
        if self.augment is not None:
            params = [sample_params(self.augment, self.seed, self.epoch, int(i)) for i in idx]
            x = augment_batch(x, params)
        return x, torch.as_tensor(self.scan.labels[idx], dtype=torch.long)

    @property
    def targets(self) -> np.ndarray:
        """Labels of this view, in order."""
        return self.scan.labels[self._indices]

    @property
    def files(self) -> list[Path]:
        """Files of this view, in order."""
        return [self.scan.files[i] for i in self._indices.tolist()]

    @property
    def skipped_bad(self) -> list[dict[str, str]]:
        """Files dropped with ``skip_bad``: path and the reason."""
        bad = self._store.bad
        return [{"path": str(self.scan.files[i]), "error": bad[i]} for i in sorted(bad)]

    def info(self) -> dict[str, Any]:
        """Counts for a data summary: files per class, skipped entries, skipped bad files."""
        labels = self.targets
        return {
            "root": str(self.root),
            "files_per_class": {
                c: int((labels == j).sum()) for j, c in enumerate(self.class_names)
            },
            "skipped_non_image": len(self.scan.skipped),
            "skipped_non_image_paths": self.scan.skipped[:50],
            "skipped": self.skipped_bad,
        }


#: Task builders that moved to :mod:`cnnlens.data.image_task` (which imports this module, so
#: they are looked up on first use here rather than imported at the top).
_TASK_NAMES = ("describe_image_folders", "load_image_folder_task", "scan_class_names")


def __getattr__(name: str) -> Any:
    if name in _TASK_NAMES:
        from cnnlens.data import image_task

        return getattr(image_task, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
