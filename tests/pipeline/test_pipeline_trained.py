"""A model trained elsewhere, explained without training: ``run(model=FILE | builder,
weights=FILE)`` on the user's image folders.

The model is a narrow ResNet-18 written as in torchvision (tests/models/resnet_ref.py),
trained for a few steps here and saved the ways users save models: a plain state dict, a
DDP-prefixed checkpoint dict, safetensors, ONNX and ``.pt2``. Each must give the in-memory
model's logits (1e-5) and Grad-CAM maps (1e-4), and ``run`` on it writes a complete run
folder without a training stage.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from cnnlens.errors import CnnlensError
from cnnlens.explain import cam
from cnnlens.explain.options import ExplainOptions
from cnnlens.faithfulness.options import FaithfulnessOptions
from cnnlens.models.load import load
from cnnlens.pipeline import run
from cnnlens.rundir import RunDir
from support import REPO, SHARED_DATA, require, require_path
from userdata import make_image_folders, make_signals

RESNET = f"{REPO / 'tests' / 'models' / 'resnet_ref.py'}:build"
SIZE = 64  # layer4 of the ResNet is 2 x 2 here


HMT_CLASSES = ("01_TUMOR", "02_STROMA", "07_ADIPOSE")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few real HMT tiles of three classes: 10 training and 4 test tiles each."""
    hmt = require_path(SHARED_DATA / "hmt")
    root = tmp_path_factory.mktemp("pics") / "pics"
    for split, source, n in (("train", "HMT_train", 10), ("test", "HMT_test", 4)):
        for name in HMT_CLASSES:
            (root / split / name).mkdir(parents=True)
            for tile in sorted((hmt / source / name).iterdir())[:n]:
                shutil.copy(tile, root / split / name / tile.name)
    return root


def _resnet_ref() -> Any:
    """tests/models/resnet_ref.py as a module (the user's own model code)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("resnet_ref_user", RESNET.rpartition(":")[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(folders: Path) -> torch.nn.Module:
    """The user's model, trained for a few steps on the folders' training tiles."""
    from cnnlens.data import DataConfig, load_task

    data = load_task(DataConfig("images", data_dir=str(folders), image_size=SIZE,
                                augment=False))
    x = torch.stack([data.train[i][0] for i in range(len(data.train))])
    y = torch.tensor([int(data.train[i][1]) for i in range(len(data.train))])
    torch.manual_seed(0)
    net: torch.nn.Module = _resnet_ref().build(num_classes=3)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def saved(trained: torch.nn.Module, folders: Path) -> dict[str, dict[str, Any]]:
    """The trained model saved five ways, as ``run`` keywords."""
    out = folders.parent / "saved"
    out.mkdir()
    state = trained.state_dict()
    torch.save(state, out / "plain.pt")
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3},
               out / "ddp.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "w.safetensors"))
    example = torch.zeros(2, 3, SIZE, SIZE)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(trained, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, out / "net.pt2")
    require("onnx")
    torch.onnx.export(trained, (example,), str(out / "net.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return {
        "state dict": {"model": RESNET, "weights": str(out / "plain.pt")},
        "DDP checkpoint": {"model": RESNET, "weights": str(out / "ddp.pth")},
        "safetensors": {"model": RESNET, "weights": str(out / "w.safetensors")},
        "pt2": {"model": str(out / "net.pt2")},
        "onnx": {"model": str(out / "net.onnx")},
    }


SOURCES = ["state dict", "DDP checkpoint", "safetensors", "pt2", "onnx"]


def _layer(source: str, module: torch.nn.Module) -> str:
    """The loaded model's name for the original's ``layer4.1.bn2`` output (ONNX export
    folds each BatchNorm into the conv before it)."""
    if source != "onnx":
        return "layer4.1.bn2"
    names = [n for n, _ in module.named_modules() if n.endswith("layer4/1/conv2/Conv")]
    assert len(names) == 1, names
    return names[0]


@pytest.mark.parametrize("source", SOURCES)
def test_each_saved_form_gives_the_models_logits_and_maps(
        source: str, saved: dict[str, dict[str, Any]], trained: torch.nn.Module) -> None:
    kw = saved[source]
    loaded = load(kw["model"], kw.get("weights"), builder_kwargs={"num_classes": 3}
                  if "weights" in kw else None).module
    x = torch.rand(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float((loaded(x) - trained(x)).abs().max()) <= 1e-5
    ours = cam(loaded, x, layer=_layer(source, loaded), method="gradcam")
    theirs = cam(trained, x, layer="layer4.1.bn2", method="gradcam")
    assert float((ours - theirs).abs().max()) <= 1e-4


@pytest.mark.parametrize("source", ["DDP checkpoint", "onnx", "pt2"])
def test_run_explains_a_trained_model_without_training(
        source: str, saved: dict[str, dict[str, Any]], folders: Path, tmp_path: Path) -> None:
    result = run(task="images", data_dir=str(folders), image_size=SIZE, device="cpu",
                 out=tmp_path / "run", **saved[source],
                 explain=ExplainOptions(methods=("gradcam", "ablationcam"), figures=False),
                 faithfulness=FaithfulnessOptions(sanity=False, n_boot=50, figures=False))
    assert result.stages["train"]["status"] == "skipped"
    assert result.config["recipe"] is None
    for rel in ("checkpoints/model.safetensors", "eval/metrics.json", "cams/gradcam.npz",
                "cams/ablationcam.npz", "faithfulness/results.json", "report.html"):
        assert (result.path / rel).is_file(), rel
    assert not (result.path / "train").exists()
    src = json.loads((result.path / "config.json").read_text())["source"]
    assert len(src["sha256"]) == 64 and src["kind"] in ("builder+weights", "onnx", "pt2")
    assert "imported" in (result.path / "report.html").read_text()
    # the run folder's model is the user's model: same predictions as in memory
    probs = result.evaluation
    assert probs is not None and probs["n"] == 12


def test_a_model_for_another_class_count_is_one_line_naming_both(
        saved: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    pics = make_image_folders(tmp_path / "two", classes=("a", "b"), size=SIZE)
    with pytest.raises(CnnlensError, match=r"outputs 3 class score\(s\).* has 2 classes"):
        run(task="images", data_dir=str(pics), image_size=SIZE, device="cpu",
            out=tmp_path / "run", **saved["onnx"])
    assert not (tmp_path / "run").exists()


def test_inputs_of_another_size_name_both_shapes(saved: dict[str, dict[str, Any]],
                                                 folders: Path, tmp_path: Path) -> None:
    with pytest.raises(CnnlensError, match=r"takes inputs of shape \(3, 64, 64\).*\(3, 32, 32\)"):
        run(task="images", data_dir=str(folders), image_size=32, device="cpu",
            out=tmp_path / "run", **saved["onnx"])


def test_training_options_do_not_apply_to_a_trained_model(
        saved: dict[str, dict[str, Any]], folders: Path, tmp_path: Path) -> None:
    with pytest.raises(CnnlensError, match="--epochs does not apply"):
        run(task="images", data_dir=str(folders), epochs=3, out=tmp_path / "r",
            **saved["state dict"])
    with pytest.raises(CnnlensError, match="--weights needs --model"):
        run(task="images", data_dir=str(folders), weights=saved["state dict"]["weights"],
            out=tmp_path / "r")


def test_normalize_is_the_models_preprocessing_in_every_stage(
        saved: dict[str, dict[str, Any]], trained: torch.nn.Module, folders: Path,
        tmp_path: Path) -> None:
    import numpy as np

    from cnnlens.data import DataConfig, load_task

    result = run(task="images", data_dir=str(folders), image_size=SIZE, device="cpu",
                 out=tmp_path / "run", normalize="0.5,0.25", **saved["onnx"],
                 explain=ExplainOptions(methods=("gradcam",), figures=False),
                 faithfulness=FaithfulnessOptions(sanity=False, n_boot=20, figures=False,
                                                  metrics=("drop_increase",)))
    test = load_task(DataConfig("images", data_dir=str(folders), image_size=SIZE,
                                augment=False)).test
    x = torch.stack([test[i][0] for i in range(len(test))])  # the data stays in [0, 1]
    with torch.no_grad():
        expected = torch.softmax(trained((x - 0.5) / 0.25), dim=1).numpy()
    with np.load(result.path / "eval" / "predictions.npz") as f:
        assert np.allclose(f["probs"], expected, atol=1e-5)
    faith = json.loads((result.path / "faithfulness" / "results.json").read_text())
    assert "before the model's normalization" in faith["choices"]["removal_space"]
    assert json.loads((result.path / "config.json").read_text())["normalize"] == {
        "mean": [0.5], "std": [0.25]}
    signals = make_signals(tmp_path / "s.npz", channels=1)
    with pytest.raises(CnnlensError, match="--normalize has 3 values per statistic; the data"):
        run(task="signals", data_dir=str(signals), out=tmp_path / "r3", normalize="imagenet",
            **saved["onnx"])


TUPLE_MODEL = '''
from torch import nn


class Net(nn.Module):
    """Returns (features, scores), {"features", "logits"} or one binary logit."""

    def __init__(self, num_classes=3, kind="tuple", sigmoid=False):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 1 if kind == "binary" else num_classes)
        self.head = nn.Sigmoid() if sigmoid else nn.Identity()
        self.kind = kind

    def forward(self, x):
        f = self.features(x)
        scores = self.head(self.fc(self.pool(f).flatten(1)))
        if self.kind == "tuple":
            return f, scores
        return {"features": f, "logits": scores} if self.kind == "dict" else scores


def build(num_classes=3):
    return Net(num_classes)


def build_dict(num_classes=3):
    return Net(num_classes, kind="dict")


def build_binary(num_classes=2):
    return Net(kind="binary")


def build_sigmoid(num_classes=2):
    return Net(kind="binary", sigmoid=True)
'''


def _module(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"user_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tuple_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("tuple")
    (root / "net.py").write_text(TUPLE_MODEL)
    module = _module(root / "net.py")
    torch.manual_seed(0)
    torch.save(module.build().state_dict(), root / "w.pt")
    torch.save(module.build_binary().state_dict(), root / "wb.pt")
    return root / "net.py", module


FAST = {"explain": ExplainOptions(methods=("gradcam",), figures=False),
        "faithfulness": FaithfulnessOptions(sanity=False, n_boot=20, figures=False,
                                            metrics=("drop_increase",))}


def test_a_tuple_or_dict_output_needs_output_and_then_runs(
        tuple_model: tuple[Path, Any], folders: Path, tmp_path: Path) -> None:
    net, module = tuple_model
    common = {"task": "images", "data_dir": str(folders), "image_size": SIZE, "device": "cpu",
              "weights": str(net.parent / "w.pt")}
    with pytest.raises(CnnlensError, match=r"returns a tuple: \[0\] a tensor of shape "
                       r"\(1, 8, 64, 64\), \[1\] a tensor of shape \(1, 3\); pass --output"):
        run(model=f"{net}:build", out=tmp_path / "a", **common)
    with pytest.raises(CnnlensError, match="--output 'scores': not in what"):
        run(model=f"{net}:build_dict", out=tmp_path / "b", output="scores", **common)
    with pytest.raises(CnnlensError, match=r"--output 0 of --model .* gives scores of shape "
                       r"\(1, 8, 64, 64\); class scores are \(N, classes\)"):
        run(model=f"{net}:build", out=tmp_path / "c", output="0", **common)
    own = module.build()
    own.load_state_dict(torch.load(net.parent / "w.pt", weights_only=True))
    x = torch.rand(2, 3, SIZE, SIZE)
    for builder, which in (("build", "1"), ("build_dict", "logits")):
        result = run(model=f"{net}:{builder}", out=tmp_path / builder, output=which,
                     **common, **FAST)  # type: ignore[arg-type]
        assert (result.path / "report.html").is_file()
        model, _ = RunDir(result.path).load_model()
        with torch.no_grad():
            assert torch.allclose(model(x), own.eval()(x)[1], atol=1e-6)


@pytest.mark.parametrize("builder", ["build_binary", "build_sigmoid"])
def test_a_single_logit_binary_model_has_two_classes(builder: str,
                                                     tuple_model: tuple[Path, Any],
                                                     tmp_path: Path) -> None:
    import numpy as np

    net, module = tuple_model
    pics = make_image_folders(tmp_path / "two", classes=("neg", "pos"), size=SIZE)
    result = run(task="images", data_dir=str(pics), image_size=SIZE, device="cpu",
                 model=f"{net}:{builder}", weights=str(net.parent / "wb.pt"),
                 out=tmp_path / "r", **FAST)  # type: ignore[arg-type]
    assert "one logit per sample" in result.config["source"]["outputs"]
    with np.load(result.path / "eval" / "predictions.npz") as f:
        assert f["probs"].shape[1] == 2 and np.allclose(f["probs"].sum(1), 1, atol=1e-6)
    model, meta = RunDir(result.path).load_model()
    assert meta["binary"] is True
    assert meta.get("head_removed", {}).get("head") == (
        "sigmoid" if builder == "build_sigmoid" else None)
    own = module.build_binary()  # the same weights without a sigmoid: z itself
    own.load_state_dict(torch.load(net.parent / "wb.pt", weights_only=True))
    x = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        p_pos = torch.sigmoid(own.eval()(x))[:, 0]
        assert torch.allclose(torch.softmax(model(x), 1)[:, 1], p_pos, atol=1e-6)
    with pytest.raises(CnnlensError, match=r"one logit per sample .* has 3 classes"):
        run(task="images", data_dir=str(make_image_folders(tmp_path / "three", size=SIZE)),
            image_size=SIZE, model=f"{net}:{builder}", weights=str(net.parent / "wb.pt"),
            out=tmp_path / "r3")


def test_standardize_and_a_model_without_convolutions(tmp_path: Path) -> None:
    """--standardize z-scores each sample for the model; an MLP has no layer to explain."""
    import numpy as np

    signals = make_signals(tmp_path / "s.npz", channels=2, length=24)
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 24, 3)).eval()
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval()
    for name, net in (("conv", conv), ("mlp", mlp)):
        torch.export.save(torch.export.export(net, (torch.rand(2, 2, 24),),
                                              dynamic_shapes=({0: torch.export.Dim("n")},)),
                          tmp_path / f"{name}.pt2")
    result = run(task="signals", data_dir=str(signals), device="cpu", out=tmp_path / "r",
                 model=str(tmp_path / "conv.pt2"), standardize=True, **FAST)  # type: ignore[arg-type]
    with np.load(signals) as f:
        x = torch.from_numpy(f["x_test"])
    z = (x - x.mean(2, keepdim=True)) / (x.std(2, keepdim=True, unbiased=False) + 1e-8)
    with np.load(result.path / "eval" / "predictions.npz") as f, torch.no_grad():
        assert np.allclose(f["probs"], torch.softmax(conv(z), 1).numpy(), atol=1e-5)
    with pytest.raises(CnnlensError, match="no convolutional layer with spatial output"):
        run(task="signals", data_dir=str(signals), device="cpu", out=tmp_path / "m",
            model=str(tmp_path / "mlp.pt2"), **FAST)  # type: ignore[arg-type]


def test_a_non_square_input_size_runs_every_stage(saved: dict[str, dict[str, Any]],
                                                  folders: Path, tmp_path: Path) -> None:
    import numpy as np

    result = run(task="images", data_dir=str(folders), image_size=(32, 64),
                 resize="shorter-side+center-crop", device="cpu", out=tmp_path / "r",
                 **saved["state dict"], **FAST)  # type: ignore[arg-type]
    with np.load(result.path / "cams" / "gradcam.npz") as f:  # layer4 of a ResNet: 1 x 2
        assert f["raw"].shape[1:] == (1, 2) and tuple(f["input_shape"]) == (32, 64)
    cfg = json.loads((result.path / "config.json").read_text())
    assert cfg["data"]["image_size"] == [32, 64]
    assert cfg["data"]["resize"] == "shorter-side+center-crop"
    assert (result.path / "report.html").is_file()
    again = run(task="images", data_dir=str(folders), image_size=(32, 64),
                resize="shorter-side+center-crop", device="cpu", out=tmp_path / "r",
                **saved["state dict"], **FAST)  # type: ignore[arg-type]
    assert again.stages["explain"]["status"] == "skipped"  # the same run, found again


def test_a_grayscale_model_gets_the_luminance_of_rgb_images(folders: Path,
                                                            tmp_path: Path) -> None:
    import numpy as np

    from cnnlens.data import DataConfig, load_task

    torch.manual_seed(0)
    gray = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(6, 3)).eval()
    require("onnx")
    torch.onnx.export(gray, (torch.rand(1, 1, SIZE, SIZE),), str(tmp_path / "gray.onnx"),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    result = run(task="images", data_dir=str(folders), image_size=SIZE, device="cpu",
                 out=tmp_path / "r", model=str(tmp_path / "gray.onnx"), **FAST)  # type: ignore[arg-type]
    assert result.config["source"]["input"].startswith("RGB as one luminance channel")
    test = load_task(DataConfig("images", data_dir=str(folders), image_size=SIZE,
                                augment=False)).test
    x = torch.stack([test[i][0] for i in range(len(test))])
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)).sum(1, keepdim=True)
    with np.load(result.path / "eval" / "predictions.npz") as f, torch.no_grad():
        assert np.allclose(f["probs"], torch.softmax(gray(luma), 1).numpy(), atol=1e-5)
    with pytest.raises(CnnlensError, match="--grayscale turns RGB images into one channel"):
        run(task="signals", data_dir=str(make_signals(tmp_path / "s.npz")),
            out=tmp_path / "s", model=str(tmp_path / "gray.onnx"), grayscale=True)


def test_class_names_let_the_data_be_a_subset_of_the_models_classes(tmp_path: Path) -> None:
    """A 5-class model explained on folders of 3 of its classes, matched by name."""
    import numpy as np

    names = ["ant", "bee", "cat", "dog", "eel"]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    pics = make_image_folders(tmp_path / "pics", classes=("bee", "dog", "eel"), size=SIZE)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(6, 5)).eval()
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, SIZE, SIZE),),
                                          dynamic_shapes=({0: torch.export.Dim("n")},)),
                      tmp_path / "five.pt2")
    common = {"task": "images", "data_dir": str(pics), "image_size": SIZE, "device": "cpu",
              "model": str(tmp_path / "five.pt2")}
    with pytest.raises(CnnlensError, match=r"outputs 5 class score\(s\) per sample; the data "
                       r".* has 3 classes"):
        run(out=tmp_path / "no-names", **common)  # type: ignore[arg-type]
    result = run(out=tmp_path / "r", class_names=str(tmp_path / "names.txt"), **common,
                 **FAST)  # type: ignore[arg-type]
    with np.load(result.path / "eval" / "predictions.npz") as f:
        assert sorted(set(f["labels"].tolist())) == [1, 3, 4]  # bee, dog, eel by name
        assert f["probs"].shape[1] == 5
    assert result.evaluation is not None and result.evaluation["n"] == 12
    assert (result.path / "report.html").is_file()
    (tmp_path / "pics" / "test" / "fox").mkdir()
    with pytest.raises(CnnlensError, match=r"fox: unexpected class folder; expected classes: "
                       r"ant, bee, cat, dog, eel \(the model's --class-names\)"):
        run(out=tmp_path / "fox", class_names=str(tmp_path / "names.txt"),
            **common)  # type: ignore[arg-type]


def test_a_signal_model_written_with_conv2d_over_l_by_1(tmp_path: Path) -> None:
    """Audio-style models take (N, C, L, 1): the samples are reshaped to the model's declared
    input and the maps come back along the signal's own axis."""
    import numpy as np

    from cnnlens.models.contract import apply_reshape

    signals = make_signals(tmp_path / "s.npz", channels=1, length=24)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 6, (5, 1), padding=(2, 0)), torch.nn.ReLU(),
                              torch.nn.Conv2d(6, 6, (3, 1), padding=(1, 0)), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(6, 3)).eval()
    require("onnx")
    torch.onnx.export(net, (torch.rand(1, 1, 24, 1),), str(tmp_path / "audio.onnx"),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    result = run(task="signals", data_dir=str(signals), device="cpu", out=tmp_path / "r",
                 model=str(tmp_path / "audio.onnx"),
                 explain=ExplainOptions(methods=("gradcam", "ablationcam"), figures=False),
                 faithfulness=FaithfulnessOptions(sanity=False, n_boot=20, figures=False))
    assert "reshaped to (1, 24, 1)" in result.config["source"]["input"]
    with np.load(signals) as f:
        x = torch.from_numpy(f["x_test"])  # (N, 1, 24)
    assert tuple(x.shape[1:]) == (1, 24)
    for method in ("gradcam", "ablationcam"):
        with np.load(result.path / "cams" / f"{method}.npz") as f:
            raw = f["raw"]
        assert raw.shape[1:] == (24,)  # along the signal, not (24, 1)
        ours = cam(apply_reshape(copy_of(net), (1, 24, 1)), x, layer="3", method=method,
                   normalize=False)
        theirs = cam(net, x[..., None], layer="3", method=method, normalize=False)[..., 0]
        assert torch.allclose(ours, theirs, atol=1e-5)
    with np.load(result.path / "eval" / "predictions.npz") as f, torch.no_grad():
        assert np.allclose(f["probs"], torch.softmax(net(x[..., None]), 1).numpy(), atol=1e-5)
    assert (result.path / "faithfulness" / "results.json").is_file()


def copy_of(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)


def test_a_model_for_other_input_channels_names_both_shapes(folders: Path,
                                                            tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 3, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten()).eval()
    require("onnx")
    torch.onnx.export(net, (torch.rand(1, 4, SIZE, SIZE),), str(tmp_path / "rgba.onnx"),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    with pytest.raises(CnnlensError, match=r"takes inputs of shape \(4, 64, 64\) \(C, \*spatial\)"
                       r"; the data .* gives \(3, 64, 64\)"):
        run(task="images", data_dir=str(folders), image_size=SIZE, out=tmp_path / "r",
            model=str(tmp_path / "rgba.onnx"))
    assert not (tmp_path / "r").exists()
