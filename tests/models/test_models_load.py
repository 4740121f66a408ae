"""cnnlens.models.load: a model trained elsewhere, saved in each format a user may have,
loads with the saved model's logits and with hookable layers that see its activations."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import resnet_ref
import torch
from safetensors.torch import save_file
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.load import LoadedModel, load, sha256_file
from support import require, unavailable

BUILDER = f"{Path(resnet_ref.__file__)}:build"
HOOKED = "layer4.1.conv2"  # the last conv of the last block
TOL = 1e-5


@pytest.fixture(scope="module")
def model() -> nn.Module:
    """The reference network with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(0)
    net = resnet_ref.build()
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, model: nn.Module,
          batch: torch.Tensor) -> dict[str, Path]:
    """The model saved the ways training code commonly saves it (the cheap formats)."""
    root = tmp_path_factory.mktemp("trained")
    state = model.state_dict()
    out = {name: root / name for name in (
        "state.pt", "ddp.pth", "lightning.ckpt", "weights.safetensors", "whole.pt",
        "scripted.pt")}
    torch.save(state, out["state.pt"])
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer_state_dict": {"state": {}, "param_groups": []}, "epoch": 3},
               out["ddp.pth"])
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()},
                "hyper_parameters": {"lr": 0.1, "num_classes": 8}, "epoch": 3,
                "global_step": 120}, out["lightning.ckpt"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(out["weights.safetensors"]))
    torch.save(model, out["whole.pt"])
    with warnings.catch_warnings():  # torch.jit is deprecated, but users still have such files
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(out["scripted.pt"]))
    return out


def _need_onnx2torch() -> None:
    """onnx2torch imports torchvision, so it is checked through cnnlens's own importer."""
    require("onnx")
    from cnnlens.models.onnx_import import import_onnx2torch

    try:
        import_onnx2torch()
    except CnnlensError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory, model: nn.Module,
              batch: torch.Tensor) -> Path:
    _need_onnx2torch()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (batch,), str(path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}})
    return path


@pytest.fixture(scope="module")
def pt2_file(tmp_path_factory: pytest.TempPathFactory, model: nn.Module,
             batch: torch.Tensor) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    program = torch.export.export(model, (batch,),
                                  dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    torch.export.save(program, path)
    return path


@pytest.fixture(scope="module")
def pt2_loaded(pt2_file: Path) -> LoadedModel:
    with warnings.catch_warnings():  # torch.export.load's own FutureWarning (pytree)
        warnings.simplefilter("ignore", FutureWarning)
        return load(pt2_file)


@pytest.fixture(scope="module")
def onnx_loaded(onnx_file: Path) -> LoadedModel:
    return load(onnx_file)


def run_hooked(module: nn.Module, layer: str, x: torch.Tensor) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Logits and the output of ``layer``, found by name, captured with a forward hook."""
    seen: list[torch.Tensor] = []
    target = dict(module.named_modules())[layer]
    handle = target.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        with torch.no_grad():
            logits = module(x)
    finally:
        handle.remove()
    assert len(seen) == 1, f"hook on {layer} fired {len(seen)} times"
    return logits, seen[0]


#: source name -> (how to load it from the fixtures, kind, hooked layer, reference layer)
SOURCES: dict[str, tuple[Callable[[Any], LoadedModel], str, str, str]] = {
    "state_dict": (lambda r: load(BUILDER, r("files")["state.pt"]), "builder+weights",
                   HOOKED, HOOKED),
    "ddp_checkpoint": (lambda r: load(BUILDER, r("files")["ddp.pth"]), "builder+weights",
                       HOOKED, HOOKED),
    "lightning": (lambda r: load(BUILDER, r("files")["lightning.ckpt"]), "builder+weights",
                  HOOKED, HOOKED),
    "safetensors": (lambda r: load(BUILDER, r("files")["weights.safetensors"]),
                    "builder+weights", HOOKED, HOOKED),
    "pickled_weights": (lambda r: load(BUILDER, r("files")["whole.pt"], trust_pickle=True),
                        "builder+weights", HOOKED, HOOKED),
    "pickle": (lambda r: load(r("files")["whole.pt"], trust_pickle=True), "pickle",
               HOOKED, HOOKED),
    "pt2": (lambda r: r("pt2_loaded"), "pt2", HOOKED, HOOKED),
    # torch's ONNX export folds each BatchNorm into the conv before it
    "onnx": (lambda r: r("onnx_loaded"), "onnx", "layer4/layer4/1/conv2/Conv",
             "layer4.1.bn2"),
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_loaded_model_matches_the_saved_one(name: str, request: pytest.FixtureRequest,
                                            model: nn.Module, batch: torch.Tensor) -> None:
    how, kind, layer, ref_layer = SOURCES[name]
    loaded = how(request.getfixturevalue)
    assert loaded.kind == kind
    assert not loaded.module.training
    assert all(p.dtype == torch.float32 and p.device.type == "cpu"
               for p in loaded.module.parameters())
    assert loaded.sha256 == sha256_file(Path(loaded.weights or loaded.source))
    logits, acts = run_hooked(loaded.module, layer, batch)
    ref_logits, ref_acts = run_hooked(model, ref_layer, batch)
    assert (logits - ref_logits).abs().max().item() <= TOL
    assert (acts - ref_acts).abs().max().item() <= TOL
    assert loaded.final_activation is None
    assert loaded.num_classes == 8


def test_checkpoint_wrappers_are_unwrapped_and_noted(files: dict[str, Path]) -> None:
    ddp = load(BUILDER, files["ddp.pth"])
    assert any("'model_state_dict'" in n for n in ddp.notes)
    assert any("'module.'" in n for n in ddp.notes)
    lightning = load(BUILDER, files["lightning.ckpt"])
    assert any("'state_dict'" in n and "hyper_parameters" in n for n in lightning.notes)
    assert any("'model.'" in n for n in lightning.notes)
    plain = load(BUILDER, files["state.pt"])
    assert not any("prefix" in n for n in plain.notes)
    assert plain.weights == str(files["state.pt"]) and plain.source == BUILDER


def test_pt2_keeps_module_paths_and_shapes(pt2_loaded: LoadedModel, model: nn.Module) -> None:
    loaded = pt2_loaded
    names = set(dict(loaded.module.named_modules()))
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs <= names
    assert loaded.input_shape == (3, 32, 32)
    assert loaded.converter == f"torch.export {torch.__version__.split('+')[0]}"
    with torch.no_grad():  # exported with a dynamic batch dimension
        assert loaded.module(torch.zeros(3, 3, 32, 32)).shape == (3, 8)


def test_onnx_declares_shapes_and_names_layers_after_nodes(onnx_loaded: LoadedModel) -> None:
    loaded = onnx_loaded
    assert loaded.input_shape == (3, 32, 32)
    assert loaded.converter is not None and loaded.converter.startswith("onnx2torch ")
    assert isinstance(dict(loaded.module.named_modules())["conv1/Conv"], nn.Conv2d)


def test_a_final_softmax_is_detected_and_kept(tmp_path: Path, batch: torch.Tensor) -> None:
    probs = resnet_ref.build_probs()
    weights = tmp_path / "probs.pt"
    torch.save(probs.state_dict(), weights)
    loaded = load(f"{Path(resnet_ref.__file__)}:build_probs", weights)
    assert loaded.final_activation == "softmax"
    assert any("softmax" in n for n in loaded.notes)
    with torch.no_grad():
        assert torch.allclose(loaded.module(batch).sum(1), torch.ones(2))


def test_builder_kwargs_reach_the_builder(tmp_path: Path) -> None:
    weights = tmp_path / "ten.pt"
    torch.save(resnet_ref.build(num_classes=10).state_dict(), weights)
    assert load(BUILDER, weights, builder_kwargs={"num_classes": 10}).num_classes == 10


# --- bad inputs: one CnnlensError naming the file or option ------------------------------


def test_wrong_num_classes_names_the_layer_and_both_shapes(tmp_path: Path) -> None:
    weights = tmp_path / "ten.pt"
    torch.save(resnet_ref.build(num_classes=10).state_dict(), weights)
    with pytest.raises(CnnlensError) as err:
        load(BUILDER, weights)
    msg = str(err.value)
    assert str(weights) in msg and "2 shape mismatch(es)" in msg
    assert "fc.weight: file (10, 64) vs model (8, 64)" in msg
    assert "fc.bias: file (10) vs model (8)" in msg


def test_a_missing_key_is_listed(tmp_path: Path, model: nn.Module) -> None:
    state = dict(model.state_dict())
    del state["layer4.1.conv2.weight"]
    weights = tmp_path / "partial.pt"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()}}, weights)
    with pytest.raises(CnnlensError, match=r"missing layer4\.1\.conv2\.weight \(64, 64, 3, 3\)"):
        load(BUILDER, weights)


def test_many_mismatches_are_truncated(tmp_path: Path) -> None:
    weights = tmp_path / "other.pt"
    torch.save({f"encoder.{i}.weight": torch.zeros(1) for i in range(40)}, weights)
    with pytest.raises(CnnlensError) as err:
        load(BUILDER, weights)
    assert "more" in str(err.value).splitlines()[-1]
    assert len(str(err.value).splitlines()) <= 14


def test_a_pickled_model_is_refused_without_trust(files: dict[str, Path]) -> None:
    with pytest.raises(CnnlensError, match="--trust-pickle") as err:
        load(files["whole.pt"])
    assert "arbitrary code" in str(err.value) and "resnet_ref.ResNet" in str(err.value)
    with pytest.raises(CnnlensError, match="--trust-pickle"):
        load(BUILDER, files["whole.pt"])


def test_torchscript_is_refused_with_the_ways_out(files: dict[str, Path]) -> None:
    for args in ((files["scripted.pt"],), (BUILDER, files["scripted.pt"])):
        with pytest.raises(CnnlensError, match="TorchScript") as err:
            load(*args, trust_pickle=True)
        msg = str(err.value)
        assert str(files["scripted.pt"]) in msg
        assert "state dict" in msg and "ONNX" in msg and ".pt2" in msg


def test_a_builder_without_weights_asks_for_them() -> None:
    with pytest.raises(CnnlensError, match="--weights FILE"):
        load(BUILDER)


def test_weights_alone_ask_for_the_builder(files: dict[str, Path]) -> None:
    for name in ("state.pt", "weights.safetensors"):
        with pytest.raises(CnnlensError, match="--weights") as err:
            load(files[name])
        assert "builder" in str(err.value)


def test_weights_with_a_model_file_are_refused(files: dict[str, Path]) -> None:
    with pytest.raises(CnnlensError, match="needs a builder"):
        load(files["whole.pt"], files["state.pt"])


@pytest.mark.parametrize("make", ["missing", "directory", "unknown", "weights_suffix"])
def test_bad_paths_name_the_path_and_accepted_kinds(make: str, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    if make == "directory":
        path = tmp_path / "saved_model"
        path.mkdir()
    elif make == "unknown":
        path = tmp_path / "model.txt"
        path.write_text("hello")
    elif make == "weights_suffix":
        path = tmp_path / "weights.npz"
        path.write_bytes(b"")
        with pytest.raises(CnnlensError, match=r"--weights .*weights\.npz.*\.safetensors"):
            load(BUILDER, path)
        return
    with pytest.raises(CnnlensError) as err:
        load(path)
    assert str(path) in str(err.value) and ".onnx" in str(err.value)


# --- ONNX specifics -----------------------------------------------------------------------


def _onnx_graph(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any],
                initializers: list[Any] | None = None) -> Any:
    from onnx import helper, save

    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    save(model, str(path))
    return model


def test_onnx_constant_node_weights_are_converted(tmp_path: Path) -> None:
    _need_onnx2torch()
    from onnx import TensorProto, helper, numpy_helper

    from cnnlens.models.onnx_import import import_onnx2torch

    w = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    value = helper.make_tensor_value_info
    model = _onnx_graph(
        tmp_path / "const.onnx",
        [helper.make_node("Constant", [], ["W"], name="weight", value=numpy_helper.from_array(w)),
         helper.make_node("Conv", ["x", "W"], ["y"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Softmax", ["y"], ["p"], name="probs", axis=1)],
        [value("x", TensorProto.FLOAT, [1, 1, 5, 5])],
        [value("p", TensorProto.FLOAT, [1, 2, 5, 5])],
    )
    with pytest.raises(KeyError):  # why the Constant nodes are rewritten
        import_onnx2torch().convert(model)
    loaded = load(tmp_path / "const.onnx")
    x = torch.randn(1, 1, 5, 5)
    probs, conv = run_hooked(loaded.module, "conv", x)
    expected = torch.nn.functional.conv2d(x, torch.from_numpy(w), padding=1)
    assert (conv - expected).abs().max().item() <= TOL
    assert (probs - expected.softmax(1)).abs().max().item() <= TOL
    assert loaded.final_activation == "softmax" and loaded.input_shape == (1, 5, 5)
    assert any("Constant" in n for n in loaded.notes)


def test_onnx_unsupported_operator_names_it_and_its_node(tmp_path: Path) -> None:
    _need_onnx2torch()
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    _onnx_graph(tmp_path / "hardmax.onnx",
                [helper.make_node("Relu", ["x"], ["r"], name="relu"),
                 helper.make_node("Hardmax", ["r"], ["y"], name="pick")],
                [value("x", TensorProto.FLOAT, [1, 4])], [value("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(CnnlensError, match=r"hardmax\.onnx: operator Hardmax .*node pick"):
        load(tmp_path / "hardmax.onnx")


def test_onnx2torch_leaves_no_torchvision_behind() -> None:
    """In a fresh interpreter (other tests install their own stand-ins): importing
    onnx2torch through cnnlens leaves sys.modules without a torchvision it did not have."""
    _need_onnx2torch()
    import subprocess
    import sys

    probe = ("import sys\nfrom cnnlens.models.onnx_import import has_torchvision, "
             "import_onnx2torch\nreal = has_torchvision()\nimport_onnx2torch()\n"
             "print(real, 'torchvision' in sys.modules, 'onnx2torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[2] == "True"
    if out[0] == "False":
        assert out[1] == "False"


# --- Keras HDF5 routing (the converter itself lives in keras_h5) -----------------------------


def _hdf5_stub(path: Path) -> Path:
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    return path


def test_keras_files_go_to_the_keras_converter(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    info = {"input_shape": (4,), "num_classes": 3, "final_activation": "softmax"}
    seen: list[Path] = []

    def fake(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
        seen.append(Path(path))
        return net, info

    monkeypatch.setattr("cnnlens.models.keras_h5.load_keras_module", fake, raising=False)
    path = _hdf5_stub(tmp_path / "model.h5")
    loaded = load(path)
    assert seen == [path] and loaded.kind == "keras-h5" and loaded.module is net
    assert (loaded.input_shape, loaded.num_classes, loaded.final_activation) == (
        (4,), 3, "softmax")
    assert loaded.converter is not None and loaded.converter.startswith("h5py ")


def test_keras_without_converter_or_hdf5_is_explained(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlens.models.keras_h5 as keras_h5

    monkeypatch.delattr(keras_h5, "load_keras_module", raising=False)
    with pytest.raises(CnnlensError, match=r"Keras \.h5 converter"):
        load(_hdf5_stub(tmp_path / "model.h5"))
    zipped = tmp_path / "model.keras"
    zipped.write_bytes(b"PK\x03\x04" + bytes(64))
    with pytest.raises(CnnlensError, match=r"model\.keras: not an HDF5 file"):
        load(zipped)
