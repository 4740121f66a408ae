"""The model registry: the study's architectures, by name, with Keras layer names."""

from __future__ import annotations

import pytest
import torch

from cnnlens.errors import CnnlensError
from cnnlens.models import MODELS, build_model, count_parameters, get_model_spec
from cnnlens.models.layers import ConvReLU

EXPECTED = {
    "mnist1d-cnn": (13_960, ["conv1d", "conv1d_1", "conv1d_2", "flatten", "dense"]),
    "hmt-vgg7": (
        66_088,
        ["conv2d", "conv2d_1", "max_pooling2d", "conv2d_2", "conv2d_3", "max_pooling2d_1",
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
        if isinstance(m, ConvReLU)
    ]
    try:
        with torch.no_grad():
            model(torch.randn(2, *spec.input_shape))
    finally:
        for h in hooks:
            h.remove()
    assert seen and all(bool((o >= 0).all()) for o in seen.values())
    assert spec.cam_layer in seen  # the study explains at a conv block (post-ReLU)


def test_vgg7_runs_at_other_resolutions() -> None:
    """Global average pooling makes the VGG-7 resolution-agnostic (quick CPU experiments)."""
    model = build_model("hmt-vgg7").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 37, 37)).shape == (1, 8)


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(CnnlensError, match="hmt-vgg7") as exc:
        get_model_spec("hmt-vgg8")
    assert "did you mean" in str(exc.value)
