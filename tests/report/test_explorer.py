"""The explorer's data: quantised maps, disagreement, per-sample values aligned by index, and
the page it goes into (script admitted by its hash, data that cannot close its tag)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from cnnlens.report.build import build_report
from cnnlens.report.explorer import (
    coarsened,
    disagreement,
    metric_series,
    quantised_maps,
    quantised_signals,
    resize_linear,
    script,
)

DATA = re.compile(r'<script type="application/json" id="explorer-data">(.*?)</script>', re.S)


def _payload(html: str) -> dict:
    m = DATA.search(html)
    assert m is not None
    return json.loads(m.group(1))


def test_maps_are_scaled_per_sample_to_one_byte() -> None:
    raw = np.array([[[-2.0, 0.0], [1.0, 2.0]], [[5.0, 5.0], [5.0, 5.0]]], np.float32)
    q = quantised_maps(raw)
    assert q.dtype == np.uint8 and q.shape == (2, 4)
    assert q[0].tolist() == [0, 128, 191, 255]  # (x + 2) / 4 * 255, rounded
    assert q[1].tolist() == [0, 0, 0, 0]  # a constant map carries no ranking


def test_signals_keep_their_range_to_read_values_back() -> None:
    x = np.array([[[0.0, 1.0, 3.0], [-1.0, 2.0, 0.0]]], np.float32)
    q, lo, hi = quantised_signals(x)
    assert (lo[0], hi[0]) == (-1.0, 3.0)
    back = lo[0] + q[0].astype(np.float64) / 255 * (hi[0] - lo[0])
    assert np.abs(back - x.reshape(-1)).max() <= (hi[0] - lo[0]) / 510 + 1e-12


@pytest.mark.parametrize("src, dst", [((1, 7), (19,)), ((2, 3, 5), (12, 9)), ((1, 4, 4), (4, 4))])
def test_resize_is_the_engines_linear_upsampling(src: tuple[int, ...],
                                                 dst: tuple[int, ...]) -> None:
    maps = np.random.default_rng(0).random(src)
    mode = "linear" if len(dst) == 1 else "bilinear"
    ref = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], size=dst, mode=mode,
                                          align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(resize_linear(maps, dst), ref, rtol=1e-12, atol=1e-12)


def test_fine_maps_travel_as_block_means_and_coarse_ones_as_they_are() -> None:
    maps = np.arange(2 * 112 * 7, dtype=np.float64).reshape(2, 112, 7)
    small = coarsened(maps, 64)
    assert small.shape == (2, 56, 7)
    np.testing.assert_allclose(small, maps.reshape(2, 56, 2, 7).mean(axis=2))
    odd = coarsened(np.arange(5.0).reshape(1, 5), 2)  # factor 3, last block padded by its edge
    np.testing.assert_allclose(odd, [[1.0, 11 / 3]])
    assert np.array_equal(coarsened(maps, 112), maps)


def test_disagreement_is_one_minus_the_mean_spearman_correlation() -> None:
    rng = np.random.default_rng(1)
    a, b, c = (rng.random((5, 3, 4)) for _ in range(3))
    got = disagreement({"a": a, "b": b, "c": c})
    assert got is not None
    for i in range(5):
        rhos = [spearmanr(p[i].ravel(), q[i].ravel())[0] for p, q in ((a, b), (a, c), (b, c))]
        assert got[i] == pytest.approx(1 - np.mean(rhos), abs=1e-12)
    same = disagreement({"a": a, "b": 3 * a + 1})
    assert same is not None and np.allclose(same, 0.0)
    flipped = disagreement({"a": a, "b": -a})
    assert flipped is not None and np.allclose(flipped, 2.0)


def test_disagreement_of_a_constant_map_is_undefined_and_of_one_method_absent() -> None:
    a = np.random.default_rng(2).random((2, 6))
    b = a.copy()
    b[1] = 0.5
    got = disagreement({"a": a, "b": b})
    assert got is not None and got[0] == pytest.approx(0.0) and np.isnan(got[1])
    assert disagreement({"a": a}) is None


def test_disagreement_compares_maps_of_different_layers_at_the_finer_resolution() -> None:
    fine = np.random.default_rng(3).random((2, 8, 8))
    coarse = fine.reshape(2, 4, 2, 4, 2).mean(axis=(2, 4))
    got = disagreement({"fine": fine, "coarse": coarse})
    assert got is not None and got.shape == (2,) and np.all(got < 1.0)


def test_per_sample_values_are_aligned_by_sample_index() -> None:
    results = {"metric_keys": ["drop@0.5", "deletion_auc"],
               "per_sample": {"indices": [0, 1, 2],
                              "values": {"gradcam": {"drop@0.5": [0.25, None, 1.0],
                                                     "deletion_auc": [0.1, 0.2, 0.3]},
                                         "random": {"drop@0.5": [0.9, 0.9, 0.9]}}}}
    series = metric_series(results, ["gradcam", "eigencam"], np.array([2, 0, 7, 1]))
    assert [s["key"] for s in series] == ["drop@0.5", "deletion_auc"]
    drop = series[0]
    assert drop["values"] == {"gradcam": [1.0, 0.25, None, None]}  # 7 was not scored
    assert drop["scale"] == 100.0 and drop["higher"] is False and "drop rate" in drop["label"]
    assert series[1]["values"]["gradcam"] == [0.3, 0.1, None, 0.2]


def test_report_embeds_the_explorer_and_admits_its_script_by_hash(tiny_run: Path) -> None:
    html = build_report(tiny_run).read_text()
    digest = base64.b64encode(hashlib.sha256(script().encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp is not None
    assert f"script-src 'sha256-{digest}'" in csp.group(1)
    assert "unsafe-inline" not in csp.group(1).split("script-src")[1].split(";")[0]
    assert f"<script>{script()}</script>" in html  # byte for byte what the hash covers
    d = _payload(html)
    cams = np.load(tiny_run / "cams" / "gradcam.npz")
    assert d["index"] == cams["indices"].tolist() and len(d["index"]) == 60
    assert d["label"] == cams["labels"].tolist() and d["pred"] == cams["predicted"].tolist()
    assert d["kind"] == "signal" and d["signals"]["length"] == 40
    results = json.loads((tiny_run / "faithfulness" / "results.json").read_text())
    values = results["per_sample"]["values"]
    drop = next(s for s in d["metrics"] if s["key"].startswith("drop@"))
    n = len(results["per_sample"]["indices"])  # faithfulness scored the first 40 only
    assert drop["values"]["gradcam"][:n] == values["gradcam"][drop["key"]]
    assert drop["values"]["gradcam"][n:] == [None] * (60 - n)
    q = zlib.decompress(base64.b64decode(d["maps"]["gradcam"]["deflate"]))
    assert d["maps"]["gradcam"]["shape"] == d["maps"]["gradcam"]["cells"] == [40]
    np.testing.assert_array_equal(np.frombuffer(q, np.uint8).reshape(60, 40),
                                  quantised_maps(cams["raw"][:60].reshape(60, -1)))


def test_explorer_limit_keeps_the_first_samples_and_zero_leaves_it_out(
        tiny_run: Path, tmp_path: Path) -> None:
    out = build_report(tiny_run, out=tmp_path / "five.html", explorer_limit=5).read_text()
    d = _payload(out)
    assert len(d["index"]) == 5 and d["total"] == 60
    assert "The first 5 of 60 explained samples" in out
    none = build_report(tiny_run, out=tmp_path / "none.html", explorer_limit=0).read_text()
    assert DATA.search(none) is None and "<script>" not in none and "script-src" not in none


def test_hostile_names_cannot_end_the_data_block(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    summary = json.loads((run / "cams" / "summary.json").read_text())
    summary["class_names"][0] = "</script><script>alert(1)</script>"
    (run / "cams" / "summary.json").write_text(json.dumps(summary))
    html = build_report(run).read_text()
    block = DATA.search(html)
    assert block is not None and "</" not in block.group(1)
    assert _payload(html)["classes"][0] == "</script><script>alert(1)</script>"


def test_a_run_explained_before_previews_existed_says_what_to_do(
        tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "cams" / "inputs.npz").unlink()
    html = build_report(run).read_text()
    assert "inputs.npz: not found; run `cnnlens explain" in html
    assert "<script>" not in html  # the other sections stand; no script without its data
