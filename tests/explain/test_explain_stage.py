"""The explain stage on a hand-built MNIST-1D run folder (real CAM engine, untrained model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlens.explain as engine
from cnnlens.errors import CnnlensError
from cnnlens.explain.stage import default_batch_size, load_cams, read_summary, run_explain
from cnnlens.models import build_model
from cnnlens.rundir.checkpoint import save_checkpoint
from cnnlens.rundir.folder import RunDir
from support import require_path

CLASS_NAMES = [str(i) for i in range(10)]  # MNIST-1D's: the data must match the model


@pytest.fixture(scope="session")
def mnist_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d_cache")


@pytest.fixture
def run_dir(tmp_path: Path, mnist_cache: Path) -> Path:
    path = tmp_path / "run"
    run = RunDir(path)
    path.mkdir()
    run.write_config({"task": "mnist1d", "model": "mnist1d-cnn",
                      "data": {"val_fraction": 0.0, "seed": 0, "cache_dir": str(mnist_cache)}})
    torch.manual_seed(0)
    save_checkpoint(run.checkpoints, "model", build_model("mnist1d-cnn"),
                    {"model": "mnist1d-cnn", "class_names": CLASS_NAMES})
    return path


def _test_inputs(run_dir: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = RunDir(run_dir).load_data(augment=False).test
    x, y = zip(*(ds[i] for i in range(n)), strict=True)
    return torch.stack(list(x)), torch.as_tensor([int(v) for v in y])


def test_writes_self_describing_npz_per_method(run_dir: Path) -> None:
    summary = run_explain(run_dir, methods="gradcam,ablationcam", limit=20, figures=False)
    cams = RunDir(run_dir).cams_dir
    assert sorted(p.name for p in cams.iterdir()) == ["ablationcam.npz", "gradcam.npz",
                                                       "inputs.npz", "summary.json"]
    assert summary["files"]["inputs"] == "inputs.npz"
    with np.load(cams / "inputs.npz") as previews:
        assert previews["indices"].tolist() == list(range(20))
        assert previews["signals"].shape == (20, 1, 40)
    model, _ = RunDir(run_dir).load_model()
    x, y = _test_inputs(run_dir, 20)
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    for method in ("gradcam", "ablationcam"):
        d = load_cams(run_dir, method)
        assert d["maps"].shape == (20, 40) and d["maps"].dtype == np.float32
        assert d["maps"].min() >= 0.0 and d["maps"].max() <= 1.0
        assert d["raw"].shape == (20, 40)  # conv1d_2 keeps the length (same padding)
        np.testing.assert_array_equal(d["indices"], np.arange(20))
        np.testing.assert_array_equal(d["labels"], y.numpy())
        np.testing.assert_array_equal(d["predicted"], pred)
        np.testing.assert_array_equal(d["targets"], pred)
        assert d["scores"].shape == (20,)
        assert (d["layer"], d["method"], d["score"], d["split"]) == (
            "conv1d_2", method, "logit", "test")
        assert d["seconds"] > 0
    on_disk = read_summary(run_dir)
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["methods"] == ["gradcam", "ablationcam"]
    assert on_disk["layers"] == {"gradcam": "conv1d_2", "ablationcam": "conv1d_2"}
    assert on_disk["n"] == 20 and set(on_disk["seconds"]) == {"gradcam", "ablationcam"}
    assert on_disk["class_names"] == CLASS_NAMES
    assert on_disk["accuracy"] == pytest.approx(float((pred == y.numpy()).mean()))


def test_maps_equal_a_direct_engine_call_across_batches(run_dir: Path) -> None:
    run_explain(run_dir, methods=["gradcampp"], limit=23, batch_size=7, figures=False)
    d = load_cams(run_dir, "gradcampp")
    model, _ = RunDir(run_dir).load_model()
    x, _ = _test_inputs(run_dir, 23)
    ref = engine.explain(model, x, layer="conv1d_2", method="gradcampp")
    np.testing.assert_allclose(d["maps"], ref.maps.numpy(), atol=1e-5)
    np.testing.assert_allclose(d["raw"], ref.raw.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d["scores"], ref.scores.numpy(), rtol=1e-5)


def test_prob_score_is_the_predicted_class_probability(run_dir: Path) -> None:
    run_explain(run_dir, methods="gradcam", limit=10, score="prob", figures=False)
    d = load_cams(run_dir, "gradcam")
    assert d["score"] == "prob"
    np.testing.assert_allclose(d["scores"], d["probs"][np.arange(10), d["predicted"]], rtol=1e-5)


def test_per_method_layer_mapping(run_dir: Path) -> None:
    summary = run_explain(run_dir, methods="gradcam,ablationcam", limit=5, figures=False,
                          layer={"gradcam": "conv1d", "eigencam": "conv1d_1"})
    assert summary["layers"] == {"gradcam": "conv1d", "ablationcam": "conv1d_2"}
    assert load_cams(run_dir, "gradcam")["layer"] == "conv1d"
    assert load_cams(run_dir, "ablationcam")["layer"] == "conv1d_2"


def test_unknown_method_lists_valid_ones_and_writes_nothing(run_dir: Path) -> None:
    with pytest.raises(CnnlensError, match="gradcm") as err:
        run_explain(run_dir, methods="gradcam,gradcm", limit=3)
    assert "gradcampp" in str(err.value) and "ablationcam" in str(err.value)
    assert not RunDir(run_dir).cams_dir.exists()


def test_unknown_layer_names_it_and_the_closest_valid_ones(run_dir: Path) -> None:
    with pytest.raises(CnnlensError, match="conv1d_9") as err:
        run_explain(run_dir, methods="gradcam", layer="conv1d_9", limit=3)
    assert "conv1d_2" in str(err.value)
    assert not RunDir(run_dir).cams_dir.exists()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"limit": 0}, "--limit"),
        ({"batch_size": 0}, "--batch-size"),
        ({"score": "softmax"}, "score"),
        ({"split": "val"}, "'val' .*empty"),
        ({"split": "dev"}, "split.*'dev'"),
        ({"methods": ""}, "--methods is empty"),
        ({"layer": {"gradcamm": "conv1d"}}, "gradcamm"),
    ],
)
def test_bad_options_are_named(run_dir: Path, kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(CnnlensError, match=pattern):
        run_explain(run_dir, **{"methods": "gradcam", "figures": False, **kwargs})  # type: ignore[arg-type]
    assert not RunDir(run_dir).cams_dir.exists()


def test_failing_method_leaves_earlier_outputs_untouched(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_explain(run_dir, methods="gradcam", limit=8, figures=False)
    cams = RunDir(run_dir).cams_dir
    before = {p.name: p.read_bytes() for p in cams.iterdir()}
    import cnnlens.explain.stage as stage_module

    real = stage_module.explain_methods

    def flaky(*args: object, **kwargs: object) -> object:
        if "ablationcam" in kwargs["methods"]:  # type: ignore[operator]
            raise RuntimeError("boom")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stage_module, "explain_methods", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        run_explain(run_dir, methods="gradcam,ablationcam", limit=12, figures=False)
    assert {p.name: p.read_bytes() for p in cams.iterdir()} == before


def test_figures_are_written_listed_and_valid_pngs(run_dir: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    summary = run_explain(run_dir, methods="gradcam", limit=6, per_class=1,
                          progress=lambda *a: calls.append(a))
    figs = summary["figures"]
    labels = load_cams(run_dir, "gradcam")["labels"]
    assert [c["index"] for c in figs["classes"]] == sorted(set(labels.tolist()))
    files = [c["file"] for c in figs["classes"]]
    if figs["failures"] is not None:
        files.append(figs["failures"]["file"])
    for name in files:
        with Image.open(RunDir(run_dir).cams_dir / name) as im:
            assert im.format == "PNG" and im.width > 300
    assert ("cams", 6, 6) in calls and ("figures", len(files), len(files)) in calls
    assert all(c["file"] == f"gallery_class_{c['index']:02d}_{c['index']}.png"
               for c in figs["classes"])


def test_data_classes_other_than_the_models_are_refused_naming_both(run_dir: Path) -> None:
    run = RunDir(run_dir)
    model, meta = run.load_model()
    names = [f"digit {i}" for i in range(10)]
    save_checkpoint(run.checkpoints, "model", model, {**meta, "class_names": names})
    with pytest.raises(CnnlensError, match=r"classes differ.*data: 0, 1.*model: digit 0"):
        run_explain(run_dir, methods="gradcam", limit=4, figures=False)
    assert not run.cams_dir.exists()


def test_load_cams_of_a_method_not_run_names_the_file(run_dir: Path) -> None:
    with pytest.raises(CnnlensError, match=r"cams/scorecam\.npz"):
        load_cams(run_dir, "scorecam")


def test_default_batch_size_bounds_input_memory() -> None:
    assert default_batch_size(torch.zeros(1, 40)) >= 1000  # all of MNIST-1D test at once
    assert 50 <= default_batch_size(torch.zeros(3, 224, 224)) <= 200


HMT_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hmt"


def test_hmt_run_gives_image_maps_per_layer_and_overlays(tmp_path: Path) -> None:
    require_path(HMT_DIR / "HMT_test")
    run = RunDir(tmp_path / "hmt")
    run.path.mkdir()
    run.write_config({"task": "hmt", "model": "hmt-vgg7",
                      "data": {"data_dir": str(HMT_DIR), "image_size": 32}})
    torch.manual_seed(0)
    save_checkpoint(run.checkpoints, "model", build_model("hmt-vgg7"), {"model": "hmt-vgg7"})
    summary = run_explain(run.path, methods="gradcam,ablationcam", limit=3, per_class=2,
                          layer={"gradcam": "max_pooling2d_1"})
    assert summary["kind"] == "image" and summary["class_names"][0] == "01_TUMOR"
    grad, abl = load_cams(run.path, "gradcam"), load_cams(run.path, "ablationcam")
    assert grad["maps"].shape == abl["maps"].shape == (3, 32, 32)
    assert grad["raw"].shape == (3, 8, 8) and abl["raw"].shape == (3, 16, 16)
    np.testing.assert_array_equal(grad["labels"], [0, 0, 0])  # HMT_test is sorted by class
    gallery = summary["figures"]["classes"]
    assert [g["file"] for g in gallery] == ["gallery_class_00_01_TUMOR.png"]
    with Image.open(run.cams_dir / gallery[0]["file"]) as im:
        assert im.format == "PNG"
