"""Getting image data: checksummed, resumable HTTP download, safe unzip, then the
deterministic split of :mod:`cnnlens.data.folder_split` (re-exported here).

Only the standard library talks HTTP. A download grows ``<dest>.part`` (resumed with an HTTP
Range request) and is moved to ``dest`` only once its SHA-384 matches, so a final name never
holds a partial or wrong file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnlens.data.folder_split import find_class_root, split_dataset
from cnnlens.errors import CnnlensError

ProgressFn = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_done, total_bytes_or_None)`` while downloading."""


@dataclass(frozen=True)
class DataSource:
    """A published archive: where it is, its checksum, and the split layout it becomes."""

    name: str
    url: str
    sha384: str
    filename: str
    test_per_class: int
    citation: str


SOURCES: dict[str, DataSource] = {
    "hmt": DataSource(
        name="hmt",
        url="https://zenodo.org/records/53169/files/"
        "Kather_texture_2016_image_tiles_5000.zip?download=1",
        sha384="7d86abe1d04e68b77c055820c2a4c582a1d25d2983e38ab724eac75affce8b7c"
        "b2cbf5ba68848dcfd9d84005d87d6790",
        filename="Kather_texture_2016_image_tiles_5000.zip",
        test_per_class=62,
        citation="Kather JN et al., Multi-class texture analysis in colorectal cancer "
        "histology, Scientific Reports 6, 27988 (2016); Zenodo 53169, CC BY 4.0",
    ),
}


class _Interrupted(Exception):
    """A transfer that stopped early; the ``.part`` file is kept for resuming."""


def sha384_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-384 of a file."""
    h = hashlib.sha384()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def _check_url(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise CnnlensError(f"--url {url!r}: only http:// and https:// URLs are accepted")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` or ``bytes */TOTAL`` -> (START, TOTAL); None when absent."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _fetch(
    url: str, part: Path, *, chunk_size: int, progress: ProgressFn | None, timeout: float
) -> None:
    """Append the rest of ``url`` to ``part`` (whole file when the server ignores Range)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "cnnlens"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            _, total = _parse_content_range(exc.headers.get("Content-Range"))
            if total == have:
                return  # the .part is already complete
            part.unlink()
            raise _Interrupted("server refused the resume range; starting over") from None
        raise CnnlensError(f"{url}: HTTP error {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CnnlensError(f"{url}: cannot connect ({reason})") from None
    with resp:
        if resp.status == 206:
            start, total = _parse_content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Interrupted(f"server resumed at byte {start}, not {have}; starting over")
            mode = "ab"
        else:  # 200: no Range support (or a fresh start) -> the whole file again
            have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        length = resp.headers.get("Content-Length")
        end = have + int(length) if length and length.isdigit() else total
        done = have
        if progress:
            progress(done, total)
        try:
            fh = open(part, mode)  # noqa: SIM115 - closed below; write errors are reported
        except OSError as exc:
            raise CnnlensError(f"{part}: cannot write the download ({exc})") from None
        with fh:
            while True:
                try:
                    block = resp.read(chunk_size)
                except (http.client.HTTPException, OSError) as exc:
                    raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
                if not block:
                    break
                try:
                    fh.write(block)
                except OSError as exc:
                    raise CnnlensError(f"{part}: cannot write the download ({exc})") from None
                done += len(block)
                if progress:
                    progress(done, total)
    if end is not None and done < end:
        raise _Interrupted(f"connection closed after {done} of {end} bytes")


def download(
    url: str,
    dest: str | Path,
    *,
    sha384: str,
    resume: bool = True,
    chunk_size: int = 1 << 20,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
    retries: int = 3,
) -> Path:
    """Download ``url`` to ``dest`` and verify its SHA-384; return ``dest``.

    An existing ``dest`` with the right checksum is kept (nothing fetched). An interrupted
    transfer is resumed from ``dest.part`` up to ``retries`` times, and on a later call;
    with ``resume=False`` any old ``.part`` is discarded. A checksum mismatch deletes the
    ``.part`` and raises, naming the file and both digests.
    """
    _check_url(url)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    expected = sha384.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{96}", expected):
        raise CnnlensError(f"sha384 {sha384!r}: expected 96 hexadecimal digits")
    if dest.is_dir():
        raise CnnlensError(f"{dest}: is a folder; expected the path of the file to download")
    if dest.exists():
        got = sha384_file(dest)
        if got == expected:
            return dest
        raise CnnlensError(
            f"{dest}: already exists with SHA-384 {got}, expected {expected}; "
            "remove it to download again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not resume and part.exists():
        part.unlink()
    attempt = 0
    while True:
        try:
            _fetch(url, part, chunk_size=chunk_size, progress=progress, timeout=timeout)
            break
        except _Interrupted as exc:
            attempt += 1
            if attempt > retries:
                size = part.stat().st_size if part.exists() else 0
                raise CnnlensError(
                    f"{url}: transfer interrupted ({exc}); {part} holds {size} bytes, "
                    "run the command again to resume"
                ) from None
    got = sha384_file(part)
    if got != expected:
        part.unlink()
        raise CnnlensError(
            f"{dest}: SHA-384 mismatch (expected {expected}, got {got}); the downloaded file "
            f"was deleted. Check --url ({url})"
        )
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- unzip
def _member_is_unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = [p for p in name.split("/") if p]
    if name.startswith("/") or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        return "absolute path"
    if ".." in parts:
        return "'..' in path"
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        return "symbolic link"
    return None


def extract_zip(
    zip_path: str | Path, dest_dir: str | Path, *, max_bytes: int = 8 << 30
) -> list[Path]:
    """Extract a zip into ``dest_dir`` safely; return the top-level entries it created.

    Members with absolute paths, ``..`` or symlinks are refused before anything is written;
    extraction goes to a temporary folder first, so a failure leaves nothing half-extracted.
    Existing top-level entries are never overwritten.
    """
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CnnlensError(f"{zip_path}: not a readable zip file ({exc})") from None
    with zf:
        infos = zf.infolist()
        for info in infos:
            why = _member_is_unsafe(info)
            if why:
                raise CnnlensError(f"{zip_path}: refusing member {info.filename!r} ({why})")
        if sum(i.file_size for i in infos) > max_bytes:
            raise CnnlensError(f"{zip_path}: unpacks to more than {max_bytes} bytes; refused")
        tops = sorted({i.filename.replace("\\", "/").strip("/").split("/")[0] for i in infos})
        tops = [t for t in tops if t]
        for t in tops:
            if (dest_dir / t).exists():
                raise CnnlensError(f"{dest_dir / t}: already exists; remove it to extract again")
        dest_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
        try:
            try:
                zf.extractall(tmp)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise CnnlensError(f"{zip_path}: cannot extract ({exc})") from None
            for t in tops:
                os.replace(tmp / t, dest_dir / t)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [dest_dir / t for t in tops]


def fetch_source(
    source: DataSource,
    to: str | Path,
    *,
    url: str | None = None,
    progress: ProgressFn | None = None,
    split: bool = True,
    seed: int = 0,
    test_per_class: int | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download, verify, extract and (optionally) split a source into ``to``.

    Steps already done (zip present and verified, folder extracted, split written) are
    skipped, so running it again after an interruption finishes the job. Returns the folder
    to pass as ``--data-dir`` (the split) or the extracted class root when ``split=False``.
    """
    to = Path(to)
    archive = download(
        url or source.url, to / source.filename, sha384=source.sha384, progress=progress,
        timeout=timeout,
    )
    extracted = to / Path(source.filename).stem
    if not extracted.exists():
        tmp = Path(tempfile.mkdtemp(prefix=".unzip-", dir=to))
        try:
            tops = extract_zip(archive, tmp)
            inner = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp
            if inner is tmp:
                os.replace(tmp, extracted)
            else:
                os.replace(inner, extracted)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not split:
        return find_class_root(extracted)
    out = to / source.name
    if not (out / "split.json").exists():
        split_dataset(
            extracted, out, seed=seed,
            test_per_class=test_per_class if test_per_class is not None else source.test_per_class,
        )
    return out
