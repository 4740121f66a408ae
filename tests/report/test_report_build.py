"""The HTML report of a real tiny run: self-contained, escaped, complete, atomic."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from PIL import Image

from cnnlens.errors import CnnlensError
from cnnlens.report import build, build_report, explorer

IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", re.IGNORECASE)
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture()
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the session run, for tests that edit artifacts."""
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("report.html", "tb"))
    return dest


def _section(html: str, sid: str) -> str:
    start = html.index(f'<section id="{sid}">')
    return html[start: html.index("</section>", start)]


def _images(html: str) -> list[Image.Image]:
    out = []
    for src in IMG_SRC.findall(html):
        assert src.startswith(("data:image/png;base64,", "data:image/webp;base64,")), src[:60]
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        img.load()
        out.append(img)
    return out


def _edit_json(path: Path, edit: Any) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


def test_report_is_self_contained(run_copy: Path) -> None:
    path = build_report(run_copy)
    assert path == run_copy / "report.html"
    html = path.read_text(encoding="utf-8")
    lowered = html.lower()
    for needle in ("http://", "https://", 'src="/', "<link", "@import", "url(",
                   "<iframe", "<object"):
        assert needle not in lowered, needle
    # the only scripts: the explorer's data block (never run) and its script, byte for byte
    assert re.findall(r"<script\b[^>]*>", html, re.IGNORECASE) == [
        '<script type="application/json" id="explorer-data">', "<script>"]
    assert f"<script>{explorer.script()}</script>" in html
    cams = json.loads((run_copy / "cams" / "summary.json").read_text())
    n_galleries = len(cams["figures"]["classes"]) + (1 if cams["figures"]["failures"] else 0)
    # learning curves, ROC, confusion, examples; CAM galleries; deletion/insertion, sanity
    images = _images(html)
    assert len(images) == 4 + n_galleries + 2
    assert all(img.format in ("PNG", "WEBP") for img in images)
    assert html.count("<img") == len(images)


def test_report_shows_each_stage(run_copy: Path) -> None:
    html = build_report(run_copy).read_text(encoding="utf-8")
    m = json.loads((run_copy / "eval" / "metrics.json").read_text())
    ev = _section(html, "evaluation")
    acc = f"{100 * m['accuracy']:.2f} %"
    assert f"<strong>{acc}</strong> ({m['correct']} of {m['n']} correct)" in ev
    for row in m["per_class"]:
        assert f"<td class=\"n\">{row['f1']:.3f}</td>" in ev
    cams = _section(html, "cams")
    for method in ("gradcam", "gradcampp", "ablationcam"):
        assert f"<td>{method}</td>" in cams
    assert "<code>conv1d_2</code>" in cams
    faith = _section(html, "faithfulness")
    r = json.loads((run_copy / "faithfulness" / "results.json").read_text())
    s = r["summary"]["gradcam"]["drop@0.15"]
    assert f"{s['mean']:.2f} <span class=\"ci\">[{s['low']:.2f}, {s['high']:.2f}]</span>" in faith
    assert "random (baseline)" in faith and "drop rate (%), frac 0.15 ↓" in faith
    assert "softmax probability of the target class" in faith  # stated choices
    assert "Sanity check" in faith
    assert "Verdict across metrics" in faith and "Kendall&#39;s W" in faith
    assert str(escape(r["verdict"]["text"])) in faith  # the generated paragraph, escaped
    assert "ROAD LeRF − MoRF" in faith
    train = _section(html, "training")
    assert "1 epoch(s) run" in train
    assert "torch version" in _section(html, "run")
    assert "<td>gradcam (60 samples)</td>" in _section(html, "timings")
    for sid in ("data", "training", "evaluation", "cams", "faithfulness", "timings"):
        sec = _section(html, sid)
        assert "not run" not in sec.lower() and "could not be built" not in sec, sid


def test_missing_stages_are_listed_as_not_run(run_copy: Path) -> None:
    for stage in ("eval", "cams", "faithfulness"):
        shutil.rmtree(run_copy / stage)
    html = build_report(run_copy).read_text(encoding="utf-8")
    for sid, command in (("evaluation", "cnnlens evaluate"), ("cams", "cnnlens explain"),
                         ("faithfulness", "cnnlens faithfulness")):
        sec = _section(html, sid)
        assert "Not run" in sec and f"<code>{command} {run_copy}</code>" in sec, sid
    assert "Not run" not in _section(html, "training")
    # the learning-curve figure is drawn by evaluate: named as missing, not a broken <img>
    assert "eval/learning_curves.png</code>: not found" in _section(html, "training")
    assert html.count("<img") == 0


def test_untrained_and_imported_runs(run_copy: Path) -> None:
    (run_copy / "train" / "history.json").unlink()
    html = build_report(run_copy).read_text(encoding="utf-8")
    assert "cnnlens train --resume --out" in _section(html, "training")
    _edit_json(run_copy / "config.json",
               lambda c: c.update(source={"keras_file": "/data/HMT.h5", "sha256": "ab12"}))
    html = build_report(run_copy).read_text(encoding="utf-8")
    assert "imported, not trained by cnnlens" in _section(html, "training")
    assert "Imported from" in html and "/data/HMT.h5" in html


def test_hostile_class_names_are_escaped(run_copy: Path) -> None:
    def rename(m: dict[str, Any]) -> None:
        m["class_names"][0] = HOSTILE
        m["per_class"][0]["class"] = HOSTILE

    _edit_json(run_copy / "eval" / "metrics.json", rename)
    _edit_json(run_copy / "cams" / "summary.json",
               lambda s: s["figures"]["classes"][0].update({"class": HOSTILE}))
    html = build_report(run_copy).read_text(encoding="utf-8")
    assert HOSTILE.lower() not in html.lower()
    assert html.lower().count("<script") == 2  # the explorer's data block and its script
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escaped in _section(html, "evaluation") and escaped in _section(html, "cams")


def test_failed_render_leaves_old_report(run_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = build_report(run_copy).read_bytes()
    real = build._write_chunks

    def half_then_fail(fh: Any, chunks: Any) -> None:
        real(fh, (c for _, c in zip(range(20), chunks, strict=False)))
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "_write_chunks", half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(run_copy)
    assert (run_copy / "report.html").read_bytes() == old
    with pytest.raises(RuntimeError):
        build_report(run_copy, out=run_copy / "new.html")
    assert not (run_copy / "new.html").exists()
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".tmp")]


def test_max_image_px_downscales(run_copy: Path) -> None:
    full = build_report(run_copy, out=run_copy / "full.html", max_image_px=0)
    small = build_report(run_copy, out=run_copy / "small.html", max_image_px=300)
    widths_full = [img.size for img in _images(full.read_text(encoding="utf-8"))]
    widths_small = [img.size for img in _images(small.read_text(encoding="utf-8"))]
    assert max(max(s) for s in widths_full) > 300
    assert all(max(s) <= 300 for s in widths_small)
    assert small.stat().st_size < full.stat().st_size / 2
    for bad in (-1, 10, True, 2.5):
        with pytest.raises(CnnlensError, match="max_image_px"):
            build_report(run_copy, max_image_px=bad)  # type: ignore[arg-type]


def test_broken_artifacts_do_not_sink_the_report(run_copy: Path) -> None:
    (run_copy / "faithfulness" / "results.json").write_text("{not json")
    _edit_json(run_copy / "cams" / "summary.json",
               lambda s: s["figures"]["classes"][0].update({"file": "../../../etc/passwd"}))
    (run_copy / "eval" / "roc_curves.png").write_bytes(b"not a png")
    html = build_report(run_copy).read_text(encoding="utf-8")
    faith = _section(html, "faithfulness")
    assert "could not be built" in faith and "results.json" in faith and "not valid JSON" in faith
    assert "outside the run folder" in _section(html, "cams")
    assert "roc_curves.png" in _section(html, "evaluation") and "unreadable image" in html
    assert "<strong>" in _section(html, "evaluation")  # the rest of the section still renders


def test_partial_faithfulness_results(run_copy: Path) -> None:
    """Only the summary: older or partial results still give the table."""
    path = run_copy / "faithfulness" / "results.json"
    r = json.loads(path.read_text())
    path.write_text(json.dumps({"summary": {"gradcam": {"drop@0.9": r["summary"]["gradcam"]
                                                        ["drop@0.15"]}}}))
    faith = _section(build_report(run_copy).read_text(encoding="utf-8"), "faithfulness")
    assert "could not be built" not in faith
    assert "drop rate (%), frac 0.9" in faith and "<td>gradcam</td>" in faith


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(CnnlensError, match=r"config\.json"):
        build_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
