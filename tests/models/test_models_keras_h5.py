"""Keras HDF5 import: layout conversions against a numpy channels-last reference, the
architecture checks, the run folder, and the study's accuracies on the shared data; the
general import (any supported CNN) against outputs of real Keras (``keras_files/``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from cnnlens.errors import CnnlensError
from cnnlens.models.keras_graph import KerasGraph
from cnnlens.models.keras_h5 import load_keras_h5, load_keras_module
from cnnlens.models.layers import ConvReLU
from cnnlens.pipeline.keras_run import import_keras
from cnnlens.rundir.folder import RunDir
from support import require_path

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
#: Written by real Keras (see make_keras_files.py there), with Keras' outputs for fixed inputs.
KERAS_FILES = Path(__file__).resolve().parent / "keras_files"
HMT_PER_CLASS = [0.855, 0.758, 0.774, 0.855, 0.661, 0.823, 0.952, 1.0]


# -- a tiny Keras HDF5 writer (the layout Keras 2.4 model.save writes) ---------------------
def conv(name: str, dims: int, filters: int, k: int, **over: Any) -> dict[str, Any]:
    cfg = {"name": name, "filters": filters, "kernel_size": [k] * dims, "strides": [1] * dims,
           "padding": "same", "data_format": "channels_last", "dilation_rate": [1] * dims,
           "groups": 1, "activation": "relu", "use_bias": True, **over}
    return {"class_name": f"Conv{dims}D", "config": cfg}


def pool(name: str, dims: int) -> dict[str, Any]:
    return {"class_name": f"MaxPooling{dims}D",
            "config": {"name": name, "pool_size": [2] * dims, "padding": "valid",
                       "strides": [2] * dims, "data_format": "channels_last"}}


def simple(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "config": {"name": name, **cfg}}


def dense(name: str, units: int, activation: str = "softmax") -> dict[str, Any]:
    return simple("Dense", name, units=units, activation=activation, use_bias=True)


def write_keras_h5(
    path: Path,
    layers: list[dict[str, Any]],
    weights: dict[str, tuple[np.ndarray, np.ndarray]],
    input_shape: list[int | None],
    class_name: str = "Sequential",
) -> Path:
    entries = [{"class_name": "InputLayer",
                "config": {"batch_input_shape": [None, *input_shape], "name": "input"}}, *layers]
    config = {"class_name": class_name, "config": {"name": "sequential", "layers": entries}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.4.0"
        f.attrs["backend"] = "tensorflow"
        mw = f.create_group("model_weights")
        names = [e["config"]["name"] for e in layers]
        mw.attrs["layer_names"] = np.array([n.encode() for n in names])
        for n in names:
            g = mw.create_group(n)
            if n in weights:
                k, b = weights[n]
                names_b = [f"{n}/{v}:0".encode() for v in ("kernel", "bias")]
                g.attrs["weight_names"] = np.array(names_b)
                g[f"{n}/kernel:0"] = k
                g[f"{n}/bias:0"] = b
            else:
                g.attrs["weight_names"] = np.array([], dtype=np.float64)
    return path


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(0, 0.3, shape).astype(np.float32)


# -- a numpy channels-last reference of what Keras computes ----------------------------------
def np_conv_same(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TF ``same`` padding, stride 1: ``(k-1)//2`` before, the rest after, per spatial axis."""
    spatial = k.shape[:-2]
    pads = [(0, 0)] + [((s - 1) // 2, s - 1 - (s - 1) // 2) for s in spatial] + [(0, 0)]
    xp = np.pad(x, pads)
    out = np.zeros((*x.shape[:-1], k.shape[-1]))
    for off in np.ndindex(*spatial):
        sl = (slice(o, o + n) for o, n in zip(off, x.shape[1:-1], strict=True))
        window = xp[(slice(None), *sl)]
        out += window @ k[off]
    return out + b


def np_maxpool2(x: np.ndarray) -> np.ndarray:
    n, *sp, c = x.shape
    sp2 = [s // 2 for s in sp]
    x = x[(slice(None), *(slice(0, 2 * s) for s in sp2))]
    if len(sp) == 1:
        return x.reshape(n, sp2[0], 2, c).max(2)
    return x.reshape(n, sp2[0], 2, sp2[1], 2, c).max((2, 4))


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def logits_probs(model: torch.nn.Module, x_channels_last: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.moveaxis(x_channels_last, -1, 1).astype(np.float32))
    with torch.no_grad():
        return torch.softmax(model(x), 1).double().numpy()


@pytest.fixture
def mnist_like(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    w = {
        "conv1d": (rand(rng, 5, 1, 25), rand(rng, 25)),
        "conv1d_1": (rand(rng, 3, 25, 25), rand(rng, 25)),
        "conv1d_2": (rand(rng, 3, 25, 25), rand(rng, 25)),
        "dense": (rand(rng, 1000, 10), rand(rng, 10)),
    }
    layers = [conv("conv1d", 1, 25, 5), conv("conv1d_1", 1, 25, 3), conv("conv1d_2", 1, 25, 3),
              simple("Flatten", "flatten"), dense("dense", 10)]
    return write_keras_h5(tmp_path / "m.h5", layers, w, [40, 1]), w


def vgg_layers(**conv3_over: Any) -> list[dict[str, Any]]:
    return [conv("conv2d", 2, 32, 3), conv("conv2d_1", 2, 32, 3), pool("max_pooling2d", 2),
            conv("conv2d_2", 2, 64, 3), conv("conv2d_3", 2, 64, 3, **conv3_over),
            pool("max_pooling2d_1", 2),
            simple("GlobalAveragePooling2D", "global_average_pooling2d"), dense("dense", 8)]


def vgg_weights(seed: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "conv2d": (rand(rng, 3, 3, 3, 32), rand(rng, 32)),
        "conv2d_1": (rand(rng, 3, 3, 32, 32), rand(rng, 32)),
        "conv2d_2": (rand(rng, 3, 3, 32, 64), rand(rng, 64)),
        "conv2d_3": (rand(rng, 3, 3, 64, 64), rand(rng, 64)),
        "dense": (rand(rng, 64, 8), rand(rng, 8)),
    }


# -- numerical equivalence ---------------------------------------------------------------------
def test_conv1d_flatten_dense_matches_keras_reference(mnist_like: Any) -> None:
    path, w = mnist_like
    model, info = load_keras_h5(path, model_name="mnist1d-cnn")
    x = np.random.default_rng(2).normal(size=(6, 40, 1))
    h = relu(np_conv_same(x, *w["conv1d"]))
    h = relu(np_conv_same(h, *w["conv1d_1"]))
    h = relu(np_conv_same(h, *w["conv1d_2"]))
    ref = softmax(h.reshape(6, -1) @ w["dense"][0] + w["dense"][1])  # channels-last flatten
    np.testing.assert_allclose(logits_probs(model, x), ref, atol=1e-5)
    assert info["dropped_activation"] == "softmax" and info["output"] == "logits"
    assert not model.training


def test_vgg_with_odd_pooling_sizes_matches_keras_reference(tmp_path: Path) -> None:
    """15 px -> pool 7 -> pool 3: Keras ``valid`` pooling floors odd sizes, as torch does."""
    w = vgg_weights()
    path = write_keras_h5(tmp_path / "v.h5", vgg_layers(), w, [None, None, 3])
    model, _ = load_keras_h5(path, model_name="hmt-vgg7")
    x = np.random.default_rng(3).uniform(size=(3, 15, 15, 3))
    h = relu(np_conv_same(x, *w["conv2d"]))
    h = np_maxpool2(relu(np_conv_same(h, *w["conv2d_1"])))
    h = relu(np_conv_same(h, *w["conv2d_2"]))
    h = np_maxpool2(relu(np_conv_same(h, *w["conv2d_3"])))
    assert h.shape == (3, 3, 3, 64)
    ref = softmax(h.mean((1, 2)) @ w["dense"][0] + w["dense"][1])
    np.testing.assert_allclose(logits_probs(model, x), ref, atol=1e-5)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_torch_same_padding_equals_keras_for_odd_and_even_kernels(k: int) -> None:
    """The import relies on torch ``padding='same'`` putting the extra pad after, like TF."""
    rng = np.random.default_rng(k)
    x, kern, b = rng.normal(size=(2, 9, 3)), rng.normal(size=(k, 3, 4)), rng.normal(size=4)
    conv_t = torch.nn.Conv1d(3, 4, k, padding="same").double()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: even kernels copy the input
        conv_t.weight.copy_(torch.from_numpy(kern.transpose(2, 1, 0)))
        conv_t.bias.copy_(torch.from_numpy(b))
        out = conv_t(torch.from_numpy(x).transpose(1, 2)).transpose(1, 2).numpy()
    np.testing.assert_allclose(out, np_conv_same(x, kern, b), atol=1e-10)


def test_standalone_activation_layers_fold_into_the_layer_before(tmp_path: Path) -> None:
    w = vgg_weights()
    layers = vgg_layers(activation="linear")
    layers.insert(5, simple("ReLU", "re_lu"))
    layers[-1] = dense("dense", 8, activation="linear")
    layers.append(simple("Activation", "activation", activation="softmax"))
    folded, _ = load_keras_h5(write_keras_h5(tmp_path / "a.h5", layers, w, [None, None, 3]),
                              model_name="hmt-vgg7")
    fused, _ = load_keras_h5(write_keras_h5(tmp_path / "b.h5", vgg_layers(), w, [None, None, 3]),
                             model_name="hmt-vgg7")
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), fused(x))


# -- architecture checks -------------------------------------------------------------------------
def _expect_error(path: Path, model: str, *fragments: str) -> str:
    with pytest.raises(CnnlensError) as exc:
        load_keras_h5(path, model_name=model)
    msg = str(exc.value)
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_unsupported_layer_is_named_with_the_supported_list(tmp_path: Path) -> None:
    layers = [*vgg_layers()[:2], simple("LSTM", "lstm", units=4), *vgg_layers()[2:]]
    path = write_keras_h5(tmp_path / "l.h5", layers, vgg_weights(), [224, 224, 3])
    _expect_error(path, "hmt-vgg7", str(path), "layer 'lstm' (LSTM) is not supported",
                  "Conv1D", "GlobalAveragePooling2D", "Dense")


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"padding": "valid"}, "padding 'valid'; accepted: 'same'"),
        ({"strides": [2, 2]}, "strides (2, 2)"),
        ({"dilation_rate": [2, 2]}, "dilation_rate (2, 2)"),
        ({"activation": "tanh"}, "activation 'tanh'"),
        ({"activation": "linear"}, "activation 'linear'; accepted: 'relu'"),
        ({"kernel_size": [5, 5]}, "kernel_size (5, 5)"),
        ({"data_format": "channels_first"}, "data_format 'channels_first'"),
    ],
)
def test_conv_options_the_model_lacks_are_refused_naming_the_layer(
    tmp_path: Path, over: dict[str, Any], fragment: str
) -> None:
    path = write_keras_h5(tmp_path / "c.h5", vgg_layers(**over), vgg_weights(), [224, 224, 3])
    _expect_error(path, "hmt-vgg7", "conv2d_3", fragment)


def test_wrong_names_counts_channels_and_input_are_refused(tmp_path: Path) -> None:
    w = vgg_weights()
    renamed = vgg_layers()
    renamed[0]["config"]["name"] = "conv2d_9"
    w9 = {("conv2d_9" if k == "conv2d" else k): v for k, v in w.items()}
    path = write_keras_h5(tmp_path / "n.h5", renamed, w9, [224, 224, 3])
    _expect_error(path, "hmt-vgg7", "'conv2d_9' (Conv2D)", "expects 'conv2d' (Conv2D)")

    path = write_keras_h5(tmp_path / "s.h5", vgg_layers()[:-1], w, [224, 224, 3])
    _expect_error(path, "hmt-vgg7", "has 7 layers", "hmt-vgg7 has 8")

    path = write_keras_h5(tmp_path / "i.h5", vgg_layers(), w, [224, 224, 1])
    _expect_error(path, "hmt-vgg7", "input shape [224, 224, 1]", "[224, 224, 3]")

    w_bad = dict(w, conv2d_2=(np.zeros((3, 3, 16, 64), np.float32), w["conv2d_2"][1]))
    path = write_keras_h5(tmp_path / "k.h5", vgg_layers(), w_bad, [224, 224, 3])
    _expect_error(path, "hmt-vgg7", "layer 'conv2d_2' (Conv2D) kernel has shape [64, 16, 3, 3]")

    layers = vgg_layers()
    layers[-1] = dense("dense", 8, activation="relu")
    path = write_keras_h5(tmp_path / "d.h5", layers, w, [224, 224, 3])
    _expect_error(path, "hmt-vgg7", "layer 'dense' (Dense) has activation 'relu'")


def test_an_hmt_file_for_the_mnist1d_model_is_refused(tmp_path: Path) -> None:
    path = write_keras_h5(tmp_path / "h.h5", vgg_layers(), vgg_weights(), [224, 224, 3])
    _expect_error(path, "mnist1d-cnn", "has 8 layers", "mnist1d-cnn has 5")


def test_bad_files_are_errors_naming_the_path(tmp_path: Path, mnist_like: Any) -> None:
    _expect_error(tmp_path / "missing.h5", "mnist1d-cnn", "missing.h5", "not found")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    _expect_error(text, "mnist1d-cnn", str(text), "not a readable Keras HDF5 file")
    good, _ = mnist_like
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _expect_error(cut, "mnist1d-cnn", str(cut))
    functional = write_keras_h5(tmp_path / "f.h5", vgg_layers(), vgg_weights(), [224, 224, 3],
                                class_name="Functional")
    _expect_error(functional, "hmt-vgg7", "'Functional'", "only Keras Sequential")
    weights_only = tmp_path / "w.h5"
    with h5py.File(weights_only, "w") as f:
        f.create_group("conv2d")
    _expect_error(weights_only, "hmt-vgg7", "no 'model_config'", "save_weights")
    _expect_error(good, "nope", "unknown model 'nope'")


def test_missing_weights_name_the_layer(tmp_path: Path) -> None:
    w = vgg_weights()
    del w["conv2d_1"]
    path = write_keras_h5(tmp_path / "m.h5", vgg_layers(), w, [224, 224, 3])
    _expect_error(path, "hmt-vgg7", "layer 'conv2d_1' (Conv2D) has no kernel weights")


# -- run folder ----------------------------------------------------------------------------------
def test_import_writes_a_run_folder_that_loads_the_same_model(
    tmp_path: Path, mnist_like: Any
) -> None:
    path, _ = mnist_like
    out = import_keras(path, task="mnist1d", out_dir=tmp_path / "run")
    run = RunDir(out)
    cfg = run.read_config()
    assert cfg["task"] == "mnist1d" and cfg["model"] == "mnist1d-cnn" and cfg["recipe"] is None
    assert cfg["data"]["image_size"] == 224 and "task" not in cfg["data"]
    assert cfg["source"]["keras_file"] == str(path.resolve())
    assert len(cfg["source"]["sha256"]) == 64
    loaded, meta = run.load_model()
    assert meta["class_names"] == [str(i) for i in range(10)] and meta["epoch"] is None
    assert meta["imported_from"]["dropped_activation"] == "softmax"
    direct, _ = load_keras_h5(path, model_name="mnist1d-cnn")
    x = torch.randn(4, 1, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), direct(x))
    assert run.data_config().task == "mnist1d"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_import_refuses_a_non_empty_folder_unless_overwrite(
    tmp_path: Path, mnist_like: Any
) -> None:
    path, _ = mnist_like
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CnnlensError, match="not empty; pass --overwrite"):
        import_keras(path, task="mnist1d", out_dir=out)
    assert (out / "keep.txt").read_text() == "mine"
    import_keras(path, task="mnist1d", out_dir=out, overwrite=True)
    assert not (out / "keep.txt").exists() and RunDir(out).is_trained()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert RunDir(import_keras(path, task="mnist1d", out_dir=empty)).is_trained()


def test_a_failed_import_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = write_keras_h5(tmp_path / "bad.h5", vgg_layers(padding="valid"), vgg_weights(),
                         [224, 224, 3])
    out = tmp_path / "runs" / "r"
    with pytest.raises(CnnlensError, match="padding"):
        import_keras(bad, task="hmt", out_dir=out)
    assert not out.exists()
    # an old run stays untouched when the overwrite fails
    good = write_keras_h5(tmp_path / "good.h5", vgg_layers(), vgg_weights(), [224, 224, 3])
    import_keras(good, task="hmt", out_dir=out)
    before = (out / "checkpoints" / "model.safetensors").read_bytes()
    with pytest.raises(CnnlensError):
        import_keras(bad, task="hmt", out_dir=out, overwrite=True)
    assert (out / "checkpoints" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["r"]


# -- acceptance on the shared data ----------------------------------------------------------------
def _shared(*parts: str) -> Path:
    return require_path(SHARED.joinpath(*parts))


def _registry_state(general: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The general module's weights under registry names (its Dense keeps the softmax)."""
    return {k.replace(".linear.", "."): v for k, v in general.state_dict().items()}


@pytest.mark.parametrize(("file", "model_name", "shape"),
                         [("HMT.h5", "hmt-vgg7", (2, 3, 224, 224)),
                          ("MNIST1D.h5", "mnist1d-cnn", (64, 1, 40))])
def test_course_files_agree_through_the_general_and_registry_imports(
    file: str, model_name: str, shape: tuple[int, ...]
) -> None:
    general, info = load_keras_module(_shared("keras", file))
    registry, _ = load_keras_h5(_shared("keras", file), model_name=model_name)
    assert info["layers"] == [n for n, _ in registry.named_children()]
    assert info["input_shape"] == shape[1:] and info["keras_version"] == "2.4.0"
    assert info["final_activation"] == "softmax" and info["num_classes"] == (
        8 if file == "HMT.h5" else 10)
    reg_state = registry.state_dict()
    for key, value in _registry_state(general).items():
        torch.testing.assert_close(value, reg_state[key], atol=0, rtol=0)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(general(x), torch.softmax(registry(x), 1), atol=1e-5, rtol=0)


def test_mnist1d_h5_scores_877_of_1000_through_both_imports() -> None:
    from cnnlens.data import DataConfig, load_task

    model, _ = load_keras_h5(_shared("keras", "MNIST1D.h5"), model_name="mnist1d-cnn")
    general, _ = load_keras_module(_shared("keras", "MNIST1D.h5"))
    test = load_task(DataConfig("mnist1d")).test  # the session cache (tests/conftest.py)
    x, y = test.tensors  # type: ignore[attr-defined]
    with torch.inference_mode():
        pred = model(x).argmax(1)
        assert torch.equal(general(x).argmax(1), pred)
    assert int((pred == y).sum()) == 877 and len(y) == 1000


@pytest.mark.slow
def test_hmt_h5_scores_414_of_496_with_the_study_per_class_accuracy() -> None:
    """One pass of the 496 tiles through the general import; the registry import holds the
    same weights (checked) and gives the same probabilities on the first batch."""
    from cnnlens.data import DataConfig, load_task

    keras_file = _shared("keras", "HMT.h5")
    data = load_task(DataConfig("hmt", data_dir=str(_shared("hmt")), augment=False))
    assert len(data.test) == 496
    general, _ = load_keras_module(keras_file)
    registry, _ = load_keras_h5(keras_file, model_name="hmt-vgg7")
    reg_state = registry.state_dict()
    assert all(torch.equal(v, reg_state[k]) for k, v in _registry_state(general).items())
    general = general.to(memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(data.test, batch_size=32)
    preds, labels = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the one heavy forward of this suite: 496 tiles at 224 px
    try:
        with torch.inference_mode():
            for x, y in loader:
                probs = general(x.contiguous(memory_format=torch.channels_last))
                if not preds:
                    torch.testing.assert_close(probs, torch.softmax(registry(x), 1),
                                               atol=1e-5, rtol=0)
                preds.append(probs.argmax(1))
                labels.append(y)
    finally:
        torch.set_num_threads(threads)
    pred, y = torch.cat(preds), torch.cat(labels)
    assert int((pred == y).sum()) == 414
    per_class = [round(float((pred[y == c] == c).float().mean()), 3) for c in range(8)]
    assert per_class == HMT_PER_CLASS
    assert data.class_names[0] == "01_TUMOR"


def test_loading_leaves_the_callers_torch_rng_alone(mnist_like: Any) -> None:
    path, _ = mnist_like
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_keras_h5(path, model_name="mnist1d-cnn")
    torch.testing.assert_close(torch.rand(3), expected)


# -- the general import: any supported Keras CNN ---------------------------------------------
@pytest.mark.parametrize("layout", ["keras2", "keras3"])
@pytest.mark.parametrize("name", ["sequential_2d", "functional_2d", "sequential_1d",
                                  "functional_1d"])
def test_general_import_reproduces_real_keras_outputs(name: str, layout: str) -> None:
    """Strided/even/dilated/causal convs, same pooling, batch norm, dropout, residual Add,
    Concatenate, ZeroPadding, Reshape, global pooling, Flatten into Dense and into Concatenate,
    a shared layer, the other merges: each file as Keras 2 writes it and as Keras 3 does."""
    ref = np.load(KERAS_FILES / f"{name}.npz")
    model, info = load_keras_module(KERAS_FILES / f"{name}.{layout}.h5")
    x = torch.from_numpy(np.moveaxis(ref["x"], -1, 1).copy())  # Keras takes channels last
    with torch.no_grad():
        out = model(x)
    np.testing.assert_allclose(out.numpy(), ref["y"], atol=1e-5, rtol=0)
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    assert info["input_shape"] == tuple(x.shape[1:]) and info["num_classes"] == ref["y"].shape[1]
    assert info["final_activation"] == {"sequential_1d": "sigmoid", "functional_1d": None}.get(
        name, "softmax")
    assert info["layers"] == [n for n, _ in model.named_children()]
    assert info["keras_version"].startswith(layout[-1])
    assert isinstance(model, KerasGraph) == name.startswith("functional")


def test_a_named_layer_is_hooked_after_its_fused_activation(tmp_path: Path) -> None:
    model, info = load_keras_module(KERAS_FILES / "functional_2d.keras2.h5")
    assert {"add", "concatenate", "zero_padding2d", "global_average_pooling2d"} <= set(
        info["layers"])
    seen: dict[str, torch.Tensor] = {}
    for name in ("conv2d_1", "conv2d_3"):  # relu: after the ReLU; sigmoid: after the sigmoid
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out))
    with torch.no_grad():
        model(torch.randn(2, 3, 17, 15))
    assert seen["conv2d_1"].min() >= 0 and seen["conv2d_1"].shape == (2, 8, 9, 7)
    assert seen["conv2d_3"].min() >= 0 and seen["conv2d_3"].max() <= 1
    path = write_keras_h5(tmp_path / "v.h5", vgg_layers(), vgg_weights(), [None, None, 3])
    vgg, info = load_keras_module(path)
    assert isinstance(vgg.get_submodule("conv2d_3"), ConvReLU)  # the registry models' block
    assert info["input_shape"] == (3, None, None)


def np_pool_same(x: np.ndarray, pool: int, stride: int, op: Any) -> np.ndarray:
    """TF pooling with ``same`` padding (channels last): pads never enter a window."""
    spatial = x.shape[1:-1]
    starts = []
    for n in spatial:
        out = -(-n // stride)
        before = max((out - 1) * stride + pool - n, 0) // 2
        starts.append([i * stride - before for i in range(out)])
    res = np.zeros((x.shape[0], *(len(s) for s in starts), x.shape[-1]))
    for idx in np.ndindex(*(len(s) for s in starts)):
        sl = tuple(slice(max(st[i], 0), st[i] + pool) for st, i in zip(starts, idx, strict=True))
        window = x[(slice(None), *sl)].reshape(x.shape[0], -1, x.shape[-1])
        res[(slice(None), *idx)] = op(window, axis=1)
    return res


@pytest.mark.parametrize(("dims", "size"), [(1, [8, 2]), (2, [7, 6, 2])])
def test_same_pooling_pads_asymmetrically_as_tensorflow(
    tmp_path: Path, dims: int, size: list[int]
) -> None:
    """pool 3 stride 2: 7 -> pads (1, 1), 6 and 8 -> (0, 1); average pools skip the pads."""
    layers = [simple(f"{kind}Pooling{dims}D", f"{kind.lower()}_pool", pool_size=[3] * dims,
                     strides=[2] * dims, padding="same", data_format="channels_last")
              for kind in ("Average", "Max")]
    x = np.random.default_rng(4).normal(size=(2, *size)).astype(np.float32)
    for layer, op in zip(layers, (np.mean, np.max), strict=True):
        model, _ = load_keras_module(write_keras_h5(tmp_path / "p.h5", [layer], {}, size))
        with torch.no_grad():
            out = model(torch.from_numpy(np.moveaxis(x, -1, 1).copy())).numpy()
        np.testing.assert_allclose(np.moveaxis(out, 1, -1), np_pool_same(x, 3, 2, op), atol=1e-6)


def _general_error(path: Path, *fragments: str) -> None:
    with pytest.raises(CnnlensError) as exc:
        load_keras_module(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, msg


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"data_format": "channels_first"}, "data_format='channels_first'"),
        ({"groups": 2}, "groups=2"),
        ({"activation": "hard_sigmoid"}, "activation 'hard_sigmoid', which is not supported"),
        ({"padding": "full"}, "padding='full'"),
    ],
)
def test_general_import_names_the_layer_and_unsupported_option(
    tmp_path: Path, over: dict[str, Any], fragment: str
) -> None:
    path = write_keras_h5(tmp_path / "c.h5", vgg_layers(**over), vgg_weights(), [32, 32, 3])
    _general_error(path, "layer 'conv2d_3' (Conv2D)", fragment)


def test_general_import_refuses_unsupported_layers_and_non_models(tmp_path: Path) -> None:
    layers = [*vgg_layers()[:2], simple("LSTM", "lstm", units=4), *vgg_layers()[2:]]
    path = write_keras_h5(tmp_path / "l.h5", layers, vgg_weights(), [32, 32, 3])
    _general_error(path, "layer 'lstm' (LSTM) is not supported; supported: InputLayer, Conv1D")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    _general_error(text, "not a readable Keras HDF5 file")
    weights_only = tmp_path / "w.h5"
    with h5py.File(weights_only, "w") as f:
        f.create_group("conv2d")
    _general_error(weights_only, "not a Keras model file")
    _general_error(tmp_path / "missing.h5", "file not found")
    w_bad = dict(vgg_weights(), conv2d_2=(np.zeros((3, 3, 16, 64), np.float32),
                                          vgg_weights()["conv2d_2"][1]))
    path = write_keras_h5(tmp_path / "k.h5", vgg_layers(), w_bad, [32, 32, 3])
    _general_error(path, "layer 'conv2d_2' (Conv2D) kernel has shape [3, 3, 16, 64]; "
                   "expected [3, 3, 32, 64]")


def test_general_import_leaves_the_callers_torch_rng_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_keras_module(KERAS_FILES / "sequential_2d.keras2.h5")
    torch.testing.assert_close(torch.rand(3), expected)
