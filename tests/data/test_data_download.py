"""Download (local HTTP server on 127.0.0.1), safe unzip and deterministic split."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlens.data import DataConfig
from cnnlens.data.download import (
    DataSource,
    download,
    extract_zip,
    fetch_source,
    find_class_root,
    split_dataset,
)
from cnnlens.data.hmt import load_hmt_task
from cnnlens.errors import CnnlensError


@dataclass
class Behaviour:
    """What the test server does: its payload, Range support and early hang-ups."""

    payload: bytes = b""
    ranges: bool = True
    drop_after: int | None = None  # close the connection after this many body bytes ...
    drops_left: int = 0  # ... on this many requests
    status: int = 200
    requests: list[str | None] = field(default_factory=list)  # Range header of each request


def _handler(b: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            b.requests.append(rng)
            if b.status != 200:
                self.send_error(b.status)
                return
            start = 0
            if rng and b.ranges:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(b.payload):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(b.payload)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(b.payload) - 1}/{len(b.payload)}"
                )
            else:
                self.send_response(200)
            body = b.payload[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if b.drops_left > 0 and b.drop_after is not None:
                b.drops_left -= 1
                self.wfile.write(body[: b.drop_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/data.zip", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _sha(data: bytes) -> str:
    return hashlib.sha384(data).hexdigest()


def _payload(n: int = 300_000) -> bytes:
    return np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_download_success_reports_progress(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.payload = _payload()
    seen: list[tuple[int, int | None]] = []
    dest = download(url, tmp_path / "f.zip", sha384=_sha(b.payload), chunk_size=65536,
                    progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == b.payload
    assert not (tmp_path / "f.zip.part").exists()
    assert seen[-1] == (len(b.payload), len(b.payload)) and len(seen) > 2
    # a verified file is not fetched again
    download(url, dest, sha384=_sha(b.payload))
    assert len(b.requests) == 1


def test_wrong_checksum_leaves_no_file(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.payload = _payload()
    wrong = "0" * 96
    with pytest.raises(CnnlensError) as err:
        download(url, tmp_path / "f.zip", sha384=wrong)
    msg = str(err.value)
    assert "f.zip" in msg and wrong in msg and _sha(b.payload) in msg and "mismatch" in msg
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes_with_range(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, b = server
    b.payload, b.drop_after, b.drops_left = _payload(), 100_000, 1
    dest = tmp_path / "f.zip"
    with pytest.raises(CnnlensError, match=r"interrupted.*f\.zip\.part holds 100000 bytes"):
        download(url, dest, sha384=_sha(b.payload), retries=0)
    assert not dest.exists() and (tmp_path / "f.zip.part").stat().st_size == 100_000
    download(url, dest, sha384=_sha(b.payload))  # a later call resumes
    assert dest.read_bytes() == b.payload
    assert b.requests == [None, "bytes=100000-"]


def test_retries_resume_within_one_call(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.payload, b.drop_after, b.drops_left = _payload(), 50_000, 2
    dest = download(url, tmp_path / "f.zip", sha384=_sha(b.payload), retries=2)
    assert dest.read_bytes() == b.payload
    assert b.requests == [None, "bytes=50000-", "bytes=100000-"]


def test_server_without_range_support_restarts_cleanly(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, b = server
    b.payload, b.ranges, b.drop_after, b.drops_left = _payload(), False, 120_000, 1
    dest = download(url, tmp_path / "f.zip", sha384=_sha(b.payload), retries=1)
    assert dest.read_bytes() == b.payload  # not the first 120000 bytes twice
    assert b.requests == [None, "bytes=120000-"]


def test_complete_part_file_is_finished_on_416(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, b = server
    b.payload = _payload(1000)
    (tmp_path / "f.zip.part").write_bytes(b.payload)
    download(url, tmp_path / "f.zip", sha384=_sha(b.payload))
    assert (tmp_path / "f.zip").read_bytes() == b.payload


def test_http_errors_and_bad_arguments(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.status = 404
    with pytest.raises(CnnlensError, match=r"127\.0\.0\.1.*HTTP error 404"):
        download(url, tmp_path / "f", sha384="a" * 96)
    with pytest.raises(CnnlensError, match="only http"):
        download("file:///etc/passwd", tmp_path / "f", sha384="a" * 96)
    with pytest.raises(CnnlensError, match="96 hexadecimal"):
        download(url, tmp_path / "f", sha384="abc")
    with pytest.raises(CnnlensError, match="is a folder"):
        download(url, tmp_path, sha384="a" * 96)
    (tmp_path / "g").write_bytes(b"old")
    with pytest.raises(CnnlensError, match=r"g: already exists with SHA-384"):
        download(url, tmp_path / "g", sha384="a" * 96)
    assert (tmp_path / "g").read_bytes() == b"old"


def test_unreachable_server_is_one_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    with pytest.raises(CnnlensError, match="cannot connect"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "f", sha384="a" * 96, timeout=5)


# --------------------------------------------------------------------------- unzip
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_zip_and_refuse_unsafe_members(tmp_path: Path) -> None:
    ok = tmp_path / "ok.zip"
    ok.write_bytes(_zip({"top/a/x.txt": b"1", "top/b.txt": b"2"}))
    assert extract_zip(ok, tmp_path / "out") == [tmp_path / "out" / "top"]
    assert (tmp_path / "out" / "top" / "a" / "x.txt").read_bytes() == b"1"
    with pytest.raises(CnnlensError, match="already exists"):
        extract_zip(ok, tmp_path / "out")
    for name, why in (("../evil.txt", r"'\.\.'"), ("/abs.txt", "absolute"),
                      ("top/../../e.txt", r"'\.\.'")):
        bad = tmp_path / "bad.zip"
        bad.write_bytes(_zip({"fine.txt": b"x", name: b"y"}))
        with pytest.raises(CnnlensError, match=rf"bad\.zip.*{why}"):
            extract_zip(bad, tmp_path / "out2")
        assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
    assert not (tmp_path / "evil.txt").exists()
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(CnnlensError, match=r"junk\.zip: not a readable zip"):
        extract_zip(tmp_path / "junk.zip", tmp_path / "out3")


# --------------------------------------------------------------------------- split
CLASSES = ["01_A", "02_B", "03_C"]


def _tif_bytes(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    return buf.getvalue()


def _original_layout(root: Path, per_class: int = 7) -> Path:
    for ci, c in enumerate(CLASSES):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"tile_{i:02d}.tif").write_bytes(_tif_bytes(ci * 100 + i))
    (root / "01_A" / "Thumbs.db").write_bytes(b"x")
    return root


def test_split_is_deterministic_and_complete(tmp_path: Path) -> None:
    src = _original_layout(tmp_path / "orig")
    m1 = split_dataset(src, tmp_path / "s1", test_per_class=2, seed=5)
    m2 = split_dataset(src, tmp_path / "s2", test_per_class=2, seed=5)
    m3 = split_dataset(src, tmp_path / "s3", test_per_class=2, seed=6)
    assert m1["test"] == m2["test"] and m1["train"] == m2["train"]
    assert m1["test"] != m3["test"]
    for c in CLASSES:
        test = sorted(p.name for p in (tmp_path / "s1" / "HMT_test" / c).iterdir())
        train = sorted(p.name for p in (tmp_path / "s1" / "HMT_train" / c).iterdir())
        assert test == m1["test"][c] and len(test) == 2 and len(train) == 5
        assert set(test).isdisjoint(train)
        assert sorted(test + train) == sorted(p.name for p in (src / c).glob("*.tif"))
    assert (tmp_path / "s1" / "split.json").exists()
    assert m1["skipped_non_image"] == ["01_A/Thumbs.db"]
    f = tmp_path / "s1" / "HMT_test" / "01_A" / m1["test"]["01_A"][0]
    assert f.read_bytes() == (src / "01_A" / f.name).read_bytes()


def test_split_refuses_non_empty_out_and_too_few_images(tmp_path: Path) -> None:
    src = _original_layout(tmp_path / "orig", per_class=3)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(CnnlensError, match=r"busy: already exists and is not empty"):
        split_dataset(src, tmp_path / "busy", test_per_class=1, seed=0)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]
    with pytest.raises(CnnlensError, match=r"01_A: 3 images, need more than --test-per-class 3"):
        split_dataset(src, tmp_path / "new", test_per_class=3, seed=0)
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new")]
    (tmp_path / "empty").mkdir()
    split_dataset(src, tmp_path / "empty", test_per_class=1, seed=0, link=False)
    assert (tmp_path / "empty" / "HMT_train" / "02_B").is_dir()


def test_find_class_root_descends_into_a_single_wrapper(tmp_path: Path) -> None:
    src = _original_layout(tmp_path / "wrap" / "Kather_texture_2016_image_tiles_5000")
    assert find_class_root(tmp_path / "wrap") == src
    assert find_class_root(src) == src


def test_fetch_source_end_to_end(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    """Download a tiny zip shaped like the Zenodo file, split it and load it as HMT."""
    members = {
        f"tiles/{c}/t{i}.tif": _tif_bytes(ci * 10 + i)
        for ci, c in enumerate(CLASSES) for i in range(4)
    }
    url, b = server
    b.payload, b.drop_after, b.drops_left = _zip(members), 500, 1
    source = DataSource(name="tiny", url=url, sha384=_sha(b.payload), filename="tiles.zip",
                        test_per_class=1, citation="test")
    out = fetch_source(source, tmp_path / "dl", seed=0)
    assert out == tmp_path / "dl" / "tiny"
    assert b.requests[1] == "bytes=500-"
    again = fetch_source(source, tmp_path / "dl", seed=0)  # everything done: no new request
    assert again == out and len(b.requests) == 2
    task = load_hmt_task(DataConfig(task="hmt", data_dir=str(out), image_size=8))
    assert task.class_names == CLASSES
    assert (len(task.train), len(task.test)) == (9, 3)
    assert sorted(os.listdir(tmp_path / "dl")) == ["tiles", "tiles.zip", "tiny"]
