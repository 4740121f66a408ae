"""The report of a 360-class run: summaries and scrollable tables, bounded figures, and
figures too large to embed shown as a note instead of a Pillow traceback."""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlens.evaluate.limits import MANY_CLASSES, TOP_PAIRS
from cnnlens.evaluate.metrics import classification_metrics
from cnnlens.evaluate.stage import write_class_figures
from cnnlens.fileio import write_json
from cnnlens.report import build_report
from cnnlens.report.images import MAX_SOURCE_PIXELS, embed

K, N = 360, 2000
IMG = re.compile(r'<img src="data:image/(?:png|webp);base64,[^"]*" alt="([^"]*)" '
                 r'width="(\d+)" height="(\d+)"')


def _section(html: str, sid: str) -> str:
    start = html.index(f'<section id="{sid}">')
    return html[start: html.index("</section>", start)]


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, format="PNG")
    return buf.getvalue()


def _declared(png: bytes, width: int, height: int) -> bytes:
    """``png`` with its header claiming ``width`` x ``height`` (CRC fixed): a bomb's shape."""
    ihdr = png[12:16] + struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png[8:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


@pytest.fixture(scope="module")
def run_360(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with only a config and the evaluate stage's artifacts, for 360 classes;
    class 7 is always predicted as class 12."""
    run = tmp_path_factory.mktemp("many") / "run"
    rng = np.random.default_rng(1)
    labels = np.arange(N) % K
    labels[-40:] = 7
    pred = np.where(rng.random(N) < 0.8, labels, rng.integers(0, K, N))
    pred[labels == 7] = 12
    logits = rng.normal(size=(N, K))
    logits[np.arange(N), pred] += 6.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = [f"species <{i}>" for i in range(K)]  # markup in names stays text
    metrics = classification_metrics(labels, probs, names)
    metrics.update(split="test", class_names=names)
    write_json(run / "config.json", {"task": "synthetic", "model": "fake"})
    write_class_figures(metrics, names, run / "eval")
    write_json(run / "eval" / "metrics.json", metrics)
    write_json(run / "cams" / "summary.json", {
        "methods": ["gradcam"], "n": 400,
        "figures": {"classes": [{"class": names[7], "file": "gallery_class_07.png", "n": 1,
                                 "indices": [7]}],
                    "failures": None,
                    "classes_omitted": {"count": 330, "shown": 30, "limit": 30,
                                        "rule": "classes with the lowest accuracy on the "
                                                "explained samples"}}})
    return run


def test_report_of_360_classes_summarises_and_stays_bounded(run_360: Path) -> None:
    # explorer_limit=0: this run has a CAM summary but no CAM files for an explorer
    html = build_report(run_360, explorer_limit=0).read_text(encoding="utf-8")
    ev = _section(html, "evaluation")
    assert "could not be built" not in html
    assert f"360 classes: more than {MANY_CLASSES}" in ev
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td class=\"n\">([^<]*)</td>"
                      r"<td class=\"n\">(\d+) of (\d+)</td></tr>", ev)
    assert len(rows) == TOP_PAIRS
    assert rows[0][:3] == ("species &lt;7&gt;", "species &lt;12&gt;", "1.000")
    assert "Worst classes by accuracy" in ev
    assert ev.count('<div class="scroll">') == 1  # the 360-row per-class table scrolls
    assert ev.count("<tr><td>species &lt;") >= K
    figures = IMG.findall(ev)
    assert [alt.split(":")[0].split(" ")[0] for alt, _, _ in figures] == ["ROC", "The",
                                                                         "Per-class"]
    assert all(max(int(w), int(h)) <= 1600 for _, w, h in figures)
    assert "eval/confusion_matrix.png" not in ev  # not drawn, not asked for
    data = _section(html, "data")
    assert "… and 330 more" in data and '<div class="scroll">' in data
    cams = _section(html, "cams")
    assert "330 more classes among the explained samples have no gallery" in cams


def test_oversized_figure_in_a_run_becomes_a_note(run_360: Path, tmp_path: Path) -> None:
    """A run evaluated before the bound left a 24,035 x 21,631 px confusion matrix."""
    bomb = _declared(_png(8, 8), 24035, 21631)
    (run_360 / "eval" / "confusion_matrix.png").write_bytes(bomb)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no Pillow warning escapes either
            html = build_report(run_360, out=tmp_path / "r.html",
                                explorer_limit=0).read_text(encoding="utf-8")
    finally:
        (run_360 / "eval" / "confusion_matrix.png").unlink()
    ev = _section(html, "evaluation")
    assert ("Figure <code>eval/confusion_matrix.png</code>: not shown: the image is "
            "24035 x 21631 px (520 M pixels)") in ev
    assert "Traceback" not in html and "DecompressionBomb" not in html


@pytest.mark.parametrize(("size", "why"), [((60, 60), "too large to embed"),
                                           ((40, 40), "too large to embed")])
def test_pillow_bomb_checks_become_notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         size: tuple[int, int], why: str) -> None:
    """Above Pillow's limit it warns, above twice the limit it raises: both are notes."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    (tmp_path / "f.png").write_bytes(_png(*size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = embed(tmp_path, "f.png", "caption", 1600)
    assert fig.uri is None and fig.problem is not None
    assert fig.problem.startswith(f"not shown: {why}")


def test_source_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    side = int(MAX_SOURCE_PIXELS ** 0.5) + 1
    (tmp_path / "big.png").write_bytes(_declared(_png(4, 4), side, side))
    fig = embed(tmp_path, "big.png", "caption", None)
    assert fig.problem is not None and "over the 40 M pixels a report embeds" in fig.problem
    (tmp_path / "ok.png").write_bytes(_png(4, 4))
    assert embed(tmp_path, "ok.png", "caption", None).uri is not None
