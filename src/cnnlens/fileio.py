"""Atomic file writes: a reader never sees a half-written file under its final name."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from cnnlens.errors import CnnlensError

TMP_SUFFIX = ".tmp"


def write_error(final: Path, exc: BaseException) -> CnnlensError:
    """One line naming the file that could not be written and why (disk full, read-only...)."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        full = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    else:  # native writers (safetensors, torch's zip) report the OS error in their text
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        codes = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        full = any(f"os error {c})" in reason for c in codes) or any(
            os.strerror(c) in reason for c in codes)
    if full:
        reason += " (disk full or file-size limit)"
    return WriteError(f"{final}: cannot write ({reason}); earlier outputs are intact")


class WriteError(CnnlensError):
    """A file could not be written; nothing half-written was left under its name."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    An ``OSError`` (disk full, file-size limit, read-only folder) becomes a
    :class:`WriteError` naming ``path``; the temporary file is removed either way.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TMP_SUFFIX,
                                   dir=final.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(final, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, final)
    except OSError as exc:
        raise write_error(final, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete ``.name.XXXX.tmp`` files a killed writer left under ``root``.

    Only safe while holding the folder's writer lock (no other writer is mid-file).
    """
    removed: list[Path] = []
    for p in root.rglob(f".*{TMP_SUFFIX}"):
        if p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a binary file handle, then atomically move the file to ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    data = json.dumps(obj, indent=2, sort_keys=False, default=_json_default).encode()
    atomic_write(path, lambda fh: fh.write(data + b"\n"))


def json_round_trip(obj: Any) -> Any:
    """``obj`` as :func:`read_json` would read back what :func:`write_json` wrote (tuples
    become lists, keys strings), without touching a file: for a caller that keeps what it
    just wrote."""
    return json.loads(json.dumps(obj, default=_json_default))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON, turning a missing or corrupt file into a CnnlensError naming it."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise CnnlensError(f"{p}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CnnlensError(f"{p}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise CnnlensError(f"{p}: cannot read ({exc.strerror or exc})") from None


def write_npz(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Save arrays as an uncompressed ``.npz``, atomically."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
