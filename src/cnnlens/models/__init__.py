"""Model registry: every model cnnlens can build, by name.

Tests parametrize over ``MODELS``; the CLI lists its keys when a name is unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnlens.errors import unknown_choice
from cnnlens.models.mnist1d_cnn import build_mnist1d_cnn
from cnnlens.models.vgg7 import build_hmt_vgg7


@dataclass(frozen=True)
class ModelSpec:
    """What a model needs and offers: how to build it, its input shape and CAM layers."""

    name: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]  # (C, *spatial) at the default resolution
    num_classes: int
    cam_layer: str  # the layer the study explains at
    description: str


MODELS: dict[str, ModelSpec] = {
    "mnist1d-cnn": ModelSpec(
        name="mnist1d-cnn",
        build=build_mnist1d_cnn,
        input_shape=(1, 40),
        num_classes=10,
        cam_layer="conv1d_2",
        description="the study's 3-layer Conv1D network for MNIST-1D (13,960 parameters)",
    ),
    "hmt-vgg7": ModelSpec(
        name="hmt-vgg7",
        build=build_hmt_vgg7,
        input_shape=(3, 224, 224),
        num_classes=8,
        cam_layer="conv2d_3",
        description="the study's VGG-7 for HMT histology tiles (66,088 parameters)",
    ),
}


def get_model_spec(name: str) -> ModelSpec:
    """Look up a model by name; an unknown name lists the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise unknown_choice("model", name, MODELS) from None


def build_model(name: str, **kwargs: object) -> nn.Module:
    """Build a freshly initialised model by registry name."""
    return get_model_spec(name).build(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "ModelSpec", "build_model", "count_parameters", "get_model_spec"]
