"""The model registry: the study's architectures, by name, with Keras layer names."""

from __future__ import annotations

import pytest
import torch

from cnnlens.errors import CnnlensError
from cnnlens.models import MODELS, build_model, count_parameters, get_model_spec
from cnnlens.models.layers import ConvReLU, ResidualBlock

EXPECTED = {
    "mnist1d-cnn": (13_960, ["conv1d", "conv1d_1", "conv1d_2", "flatten", "dense"]),
    "hmt-vgg7": (
        66_088,
        ["conv2d", "conv2d_1", "max_pooling2d", "conv2d_2", "conv2d_3", "max_pooling2d_1",
         "global_average_pooling2d", "dense"],
    ),
    "mnist1d-resnet": (
        100_426,
        ["stem", "res1d", "res1d_1", "res1d_2", "res1d_3", "global_average_pooling1d", "dense"],
    ),
    "hmt-resnet": (
        1_229_992,
        ["stem", "max_pooling2d", "res2d", "res2d_1", "res2d_2", "res2d_3",
         "global_average_pooling2d", "dense"],
    ),
}


def test_every_registered_model_is_described_here() -> None:
    assert set(MODELS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_count_and_layer_names(name: str) -> None:
    model = build_model(name)
    params, layers = EXPECTED[name]
    assert count_parameters(model) == params
    assert [n for n, _ in model.named_children()] == layers
    assert MODELS[name].cam_layer in layers


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_gives_logits_for_each_class(name: str) -> None:
    spec = get_model_spec(name)
    model = build_model(name).eval()
    x = torch.rand(2, *spec.input_shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, spec.num_classes)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # logits, not probabilities


@pytest.mark.parametrize("name", sorted(MODELS))
def test_conv_layers_output_post_relu_values(name: str) -> None:
    spec = get_model_spec(name)
    model = build_model(name).eval()
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, o, n=n: seen.__setitem__(n, o))
        for n, m in model.named_children()
        if isinstance(m, ConvReLU | ResidualBlock)
    ]
    try:
        with torch.no_grad():
            model(torch.randn(2, *spec.input_shape))
    finally:
        for h in hooks:
            h.remove()
    assert seen and all(bool((o >= 0).all()) for o in seen.values())
    assert spec.cam_layer in seen  # CAMs explain a conv block's post-ReLU output


def test_vgg7_runs_at_other_resolutions() -> None:
    """Global average pooling makes the VGG-7 resolution-agnostic (quick CPU experiments)."""
    model = build_model("hmt-vgg7").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 37, 37)).shape == (1, 8)


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(CnnlensError, match="hmt-vgg7") as exc:
        get_model_spec("hmt-vgg8")
    assert "did you mean" in str(exc.value)


def test_mnist1d_resnet_keeps_full_length_to_its_cam_layer() -> None:
    """No downsampling: a CAM at the last block is as fine as the signal."""
    model = build_model("mnist1d-resnet").eval()
    out = {}
    layer = getattr(model, MODELS["mnist1d-resnet"].cam_layer)
    h = layer.register_forward_hook(lambda _m, _i, o: out.setdefault("x", o))
    try:
        with torch.no_grad():
            model(torch.randn(2, 1, 40))
    finally:
        h.remove()
    assert out["x"].shape == (2, 64, 40)


def test_residual_blocks_start_as_identity_plus_shortcut() -> None:
    """Zero-initialised last BN scale: a fresh block passes ReLU(shortcut(x)) through."""
    block = ResidualBlock(1, 8, 8).eval()
    x = torch.randn(2, 8, 10)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))


def test_hmt_resnet_grids_at_128_px() -> None:
    model = build_model("hmt-resnet").eval()
    sizes = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: sizes.__setitem__(n, o.shape[-1]))
             for n, m in model.named_children() if n.startswith("res2d")]
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, 128, 128))
    finally:
        for h in hooks:
            h.remove()
    assert sizes == {"res2d": 32, "res2d_1": 16, "res2d_2": 8, "res2d_3": 4}
