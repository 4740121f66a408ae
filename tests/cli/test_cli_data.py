"""``cnnlens data download | split | info`` through the CLI frame."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlens.cli import main
from cnnlens.data import download as dl

CLASSES = ["01_X", "02_Y"]


def _tif(seed: int) -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format="TIFF")
    return buf.getvalue()


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for ci, c in enumerate(CLASSES):
            for i in range(4):
                zf.writestr(f"Kather_texture_2016_image_tiles_5000/{c}/t{i}.tif", _tif(ci * 9 + i))
    return buf.getvalue()


@pytest.fixture
def zip_server() -> Iterator[tuple[str, bytes]]:
    payload = _zip_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/tiles.zip", payload
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _layout(root: Path, n: int = 5) -> Path:
    for ci, c in enumerate(CLASSES):
        (root / c).mkdir(parents=True)
        for i in range(n):
            (root / c / f"t{i}.tif").write_bytes(_tif(ci * 50 + i))
    return root


def test_download_split_and_info(
    zip_server: tuple[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, payload = zip_server
    fake = dl.DataSource(name="hmt", url=url, sha384=hashlib.sha384(payload).hexdigest(),
                         filename="Kather_texture_2016_image_tiles_5000.zip", test_per_class=62,
                         citation="Kather 2016")
    monkeypatch.setitem(dl.SOURCES, "hmt", fake)
    rc = main(["data", "download", "hmt", "--to", str(tmp_path / "d"), "--test-per-class", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"--data-dir {tmp_path / 'd' / 'hmt'}" in out and "cite" in out
    assert len(list((tmp_path / "d" / "hmt" / "HMT_test" / "01_X").iterdir())) == 1
    assert main(["data", "info", str(tmp_path / "d" / "hmt")]) == 0
    out = capsys.readouterr().out
    assert "HMT_train: 6 images in 2 classes" in out and "01_X: 3" in out
    assert "HMT_test: 2 images in 2 classes" in out


def test_download_with_wrong_checksum_fails_in_one_line(
    zip_server: tuple[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = zip_server
    fake = dl.DataSource(name="hmt", url="http://unused.invalid/", sha384="1" * 96,
                         filename="x.zip", test_per_class=1, citation="c")
    monkeypatch.setitem(dl.SOURCES, "hmt", fake)
    rc = main(["data", "download", "hmt", "--to", str(tmp_path / "d"), "--url", url])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "x.zip: SHA-384 mismatch" in err[0] and "1" * 96 in err[0]
    assert not (tmp_path / "d" / "x.zip").exists()


def test_unknown_source_and_bad_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "download", "hmz", "--to", str(tmp_path)]) == 2
    assert "unknown data set 'hmz' (did you mean hmt?)" in capsys.readouterr().err
    assert main(["data", "download", "hmt", "--to", str(tmp_path), "--url", "ftp://x/y"]) == 2
    assert "only http:// and https://" in capsys.readouterr().err


def test_split_command_is_deterministic_and_refuses_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _layout(tmp_path / "orig")
    args = ["--test-per-class", "2", "--seed", "3"]
    assert main(["data", "split", str(src), "--out", str(tmp_path / "a"), *args]) == 0
    assert "6 train, 4 test" in capsys.readouterr().out
    assert main(["data", "split", str(src), "--out", str(tmp_path / "b"), *args, "--copy"]) == 0
    for c in CLASSES:
        a = sorted(p.name for p in (tmp_path / "a" / "HMT_test" / c).iterdir())
        b = sorted(p.name for p in (tmp_path / "b" / "HMT_test" / c).iterdir())
        assert a == b
    capsys.readouterr()
    assert main(["data", "split", str(src), "--out", str(tmp_path / "a"), *args]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and str(tmp_path / "a") in err


def test_info_check_lists_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _layout(tmp_path / "orig", n=2)
    (root / "02_Y" / "bad.png").write_bytes(b"\x89PNG not really")
    (root / "02_Y" / "notes.txt").write_text("x")
    assert main(["data", "info", str(root), "--check", "--image-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "5 images in 2 classes" in out and "skipped 1 hidden or non-image" in out
    assert "bad.png" in out and "1 unreadable files" in out
    assert main(["data"]) == 2
