"""The faithfulness stage on a hand-built MNIST-1D run folder (random weights, few samples)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness.stage import parse_method, run_faithfulness
from cnnlens.models import build_model
from cnnlens.rundir.checkpoint import save_checkpoint
from cnnlens.rundir.folder import RunDir

FAST = {"n_boot": 100, "sanity_samples": 6, "steps": 4, "sanity_seeds": 2}


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config({"task": "mnist1d", "model": "mnist1d-cnn", "data": {}})
    save_checkpoint(run.checkpoints, "model", build_model("mnist1d-cnn"),
                    {"model": "mnist1d-cnn", "class_names": [str(i) for i in range(10)]})
    return run.path


def test_parse_method() -> None:
    s = parse_method("gradcam@max_pooling2d_1:prob")
    assert (s.method, s.layer, s.score, s.label) == ("gradcam", "max_pooling2d_1", "prob",
                                                     "gradcam@max_pooling2d_1:prob")
    assert parse_method("ablationcam").layer is None
    with pytest.raises(CnnlensError, match="score"):
        parse_method("gradcam:probability")
    with pytest.raises(CnnlensError, match="random"):
        parse_method("random")


def test_stage_writes_every_output(run_dir: Path) -> None:
    res = run_faithfulness(run_dir, methods=["gradcam", "ablationcam"], limit=30, **FAST)
    out = RunDir(run_dir).faithfulness_dir
    for name in ("results.json", "results.csv", "per_sample.npz", "curves.png", "sanity.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["n"] == 30 and saved["fracs"] == [0.15, 0.3]  # the task's study fracs
    assert list(saved["summary"]) == ["gradcam", "ablationcam", "random"]
    assert saved["metric_keys"] == ["drop@0.15", "increase@0.15", "drop@0.3", "increase@0.3",
                                    "avg_drop", "inc_conf", "deletion_auc", "insertion_auc",
                                    "road_morf", "road_lerf", "road_gap"]
    for fam in ("drop_increase", "confidence", "deletion", "insertion"):
        assert "softmax probability" in saved["choices"][fam]["score"]
    assert saved["choices"]["deletion"]["baseline"] == "zero"
    s = saved["summary"]["gradcam"]["drop@0.15"]
    assert s["low"] <= s["mean"] <= s["high"] and s["n"] == 30
    # 11 outputs x (2 vs random + 1 between methods)
    assert len(saved["tests"]) == 33 and {"p_value", "p_value_holm", "verdict"} <= set(
        saved["tests"][0])
    assert set(saved["sanity"]) == {"gradcam", "ablationcam"}
    assert saved["sanity"]["gradcam"]["layers"][0] == "dense"
    assert saved["sanity"]["gradcam"]["seeds"] == [0, 1]
    assert saved["sanity"]["gradcam"]["verdict"] in ("flagged", "passes", "inconclusive")
    v = saved["verdict"]
    assert v["metrics"] == saved["metric_keys"] and "Kendall's W" in v["text"]
    assert [r["method"] for r in v["rankings"]["road_gap"]].count("random") == 1
    assert "noisy linear imputation" in saved["choices"]["road"]["imputation"]
    assert saved["projected_seconds"] == {}  # every metric family ran
    assert saved["methods"]["gradcam"]["layer"] == "conv1d_2"
    assert saved["methods"]["gradcam"]["source"] == "computed"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["method"] for r in rows} == {"gradcam", "ablationcam", "random"}
    assert any(r["scope"].startswith("class:") for r in rows)
    with np.load(out / "per_sample.npz", allow_pickle=False) as f:
        series = list(f["series"])
        assert f["values"].shape == (len(series), 30)
        drop = f["values"][series.index("gradcam|drop@0.15")]
    assert drop.mean() * 100 == pytest.approx(s["mean"])
    assert res["summary"] == saved["summary"]


def test_stage_uses_saved_cams_and_matches_the_metric(run_dir: Path) -> None:
    run = RunDir(run_dir)
    n = 20
    x = torch.stack([run.load_data().test[i][0] for i in range(n)])
    model, _ = run.load_model()
    pred = model(x).argmax(1).numpy()
    maps = np.random.default_rng(0).random((n, 40)).astype(np.float32)
    run.cams_dir.mkdir(parents=True)
    np.savez(run.cams_dir / "gradcam.npz",
             maps=maps, raw=maps[:, :10], indices=np.arange(n), targets=pred, predicted=pred,
             labels=pred, layer=np.asarray("conv1d_2"), method=np.asarray("gradcam"),
             score=np.asarray("logit"), split=np.asarray("test"), seconds=np.asarray(1.0))
    res = run_faithfulness(run_dir, methods=["gradcam"], fracs=[0.5], metrics=["drop_increase"],
                           limit=n, sanity=False, figures=False, n_boot=50)
    assert res["methods"]["gradcam"]["source"] == "cams/gradcam.npz"
    direct = M.drop_increase(model, x, torch.from_numpy(maps), frac=0.5)
    assert res["summary"]["gradcam"]["drop@0.5"]["mean"] == pytest.approx(
        direct.values["drop"].mean() * 100)
    # a different layer than the saved maps' forces a recompute
    other = run_faithfulness(run_dir, methods=["gradcam@conv1d_1"], fracs=[0.5],
                             metrics=["drop_increase"], limit=n, sanity=False, figures=False,
                             n_boot=50)
    assert other["methods"]["gradcam@conv1d_1"]["source"] == "computed"
    assert other["methods"]["gradcam@conv1d_1"]["layer"] == "conv1d_1"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fracs": [0.0]}, "frac"),
        ({"fracs": [1.5]}, "frac"),
        ({"metrics": ["drop"]}, "metric"),
        ({"steps": 41, "metrics": ["deletion"]}, "steps"),
        ({"methods": ["gradcam@nolayer"]}, "layer"),
        ({"methods": ["nocam"]}, "method"),
        ({"limit": 0}, "limit"),
        ({"random_cells": [0]}, "random-cells"),
        ({"random_cells": [4, 4]}, "random-cells"),
    ],
)
def test_stage_errors_name_the_parameter_and_write_nothing(
    run_dir: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(CnnlensError, match=match):
        run_faithfulness(run_dir, **{"limit": 5, "sanity": False, **kwargs})  # type: ignore[arg-type]
    assert not RunDir(run_dir).faithfulness_dir.exists()


def test_random_baseline_grid_is_stated(run_dir: Path) -> None:
    res = run_faithfulness(run_dir, methods=["gradcam"], fracs=[0.5], metrics=["drop_increase"],
                           limit=10, random_cells=[5], sanity=False, figures=False, n_boot=20)
    assert res["methods"]["random"]["cells"] == [5]
    assert "5 grid" in res["choices"]["random_baseline"]
    assert 0.0 <= res["kept_fraction"]["random"]["0.5"] <= 0.5


def test_road_baseline_and_projections(run_dir: Path) -> None:
    seen: list[tuple[int, int]] = []
    res = run_faithfulness(run_dir, methods=["gradcam"], fracs=[0.9], limit=12,
                           metrics=["drop_increase", "road"], baseline="road",
                           percentages=[10, 50], sanity=False, figures=False, n_boot=50,
                           progress=lambda what, done, total: seen.append((done, total))
                           if what == "metrics" else None)
    # progress counts passes: per map (gradcam, random) 1 for Table I + 2 × 2 for ROAD, and
    # ROAD reports each of its passes as it goes
    assert [d for d, _ in seen] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert {t for _, t in seen} == {10}
    assert "noisy linear imputation" in res["choices"]["drop_increase"]["masking"]
    # Table I at frac 0.9 removes what ROAD LeRF 10 % removes: solved once, scored once
    assert res["imputation"]["reused"] >= 12
    assert set(res["projected_seconds"]) == {"confidence", "deletion", "insertion"}
    assert all(v > 0 for v in res["projected_seconds"].values())
    assert res["request"]["percentages"] == [10.0, 50.0]
    with pytest.raises(CnnlensError, match="percentages"):
        run_faithfulness(run_dir, percentages=[0], limit=5, sanity=False)
    with pytest.raises(CnnlensError, match="sanity-draw"):
        run_faithfulness(run_dir, sanity_draw="uniform", limit=5)


def test_bf16_scores_road_in_bf16_and_says_so(run_dir: Path) -> None:
    """bf16 autocast moves the probabilities a little (bf16 keeps 8 significant bits), never
    the order of magnitude; the maps and targets stay the fp32 ones, and the results say
    which precision scored them. ``auto`` keeps signals in fp32."""
    kw = {"methods": ["gradcam"], "fracs": [0.9], "limit": 12, "metrics": ["road"],
          "baseline": "road", "percentages": [10, 50], "sanity": False, "figures": False,
          "n_boot": 20}
    fp32 = run_faithfulness(run_dir, **kw)  # type: ignore[arg-type]
    bf16 = run_faithfulness(run_dir, precision="bf16", **kw)  # type: ignore[arg-type]
    auto = run_faithfulness(run_dir, precision="auto", **kw)  # type: ignore[arg-type]
    assert "bf16" in bf16["choices"]["road"]["precision"]
    assert "precision" not in fp32["choices"]["road"]
    assert "precision" not in auto["choices"]["road"]
    assert bf16["request"]["precision"] == "bf16"
    values = {name: res["per_sample"]["values"]["gradcam"]
              for name, res in (("fp32", fp32), ("bf16", bf16), ("auto", auto))}
    for key in ("road_morf", "road_lerf"):
        a, b = np.asarray(values["fp32"][key]), np.asarray(values["bf16"][key])
        assert np.abs(a - b).max() <= 0.05
        assert not np.array_equal(a, b)  # the passes did run in bf16
        assert values["auto"][key] == values["fp32"][key]
