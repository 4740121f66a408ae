"""Model registry: every model cnnlens can build, by name, plus a user's own builder.

Tests parametrize over ``MODELS``; the CLI lists its keys when a name is unknown. A name of
the form ``module:function`` or ``path/to/file.py:function`` builds a user's ``nn.Module``
instead (see :mod:`cnnlens.models.user`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.models.user import is_model_file, is_user_model, load_user_builder

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What a model needs and offers: how to build it, its input shape and CAM layers.

    ``builder`` names the build function as ``module:function``, imported on first use, so
    listing the models (``cnnlens --help``) imports no torch.

    ``fit(input_shape, num_classes)`` gives the build keywords that adapt the model to a
    task's data (channels, length, classes); ``cam_layers`` overrides ``cam_layer`` per CAM
    method (the study explained Grad-CAM at a different layer than Ablation-CAM), and
    ``cam_score`` is the score the study differentiated.
    """

    name: str
    builder: str
    input_shape: tuple[int, ...]  # (C, *spatial) at the default resolution
    num_classes: int
    cam_layer: str  # the layer the study explains at
    description: str
    fit: Callable[[tuple[int, ...], int], dict[str, Any]] = lambda _shape, _k: {}
    cam_layers: Mapping[str, str] = field(default_factory=dict)
    cam_score: str = "logit"

    def build(self, **kwargs: Any) -> nn.Module:
        """A freshly initialised model with these build keywords."""
        module, _, func = self.builder.partition(":")
        built: nn.Module = getattr(importlib.import_module(module), func)(**kwargs)
        return built


def _fit_mnist1d(shape: tuple[int, ...], k: int) -> dict[str, Any]:
    if len(shape) != 2:
        raise CnnlensError(f"model mnist1d-cnn takes signals (C, L); the data is {shape}")
    return {"in_channels": shape[0], "length": shape[1], "num_classes": k}


def _fit_channels(name: str, dims: int) -> Callable[[tuple[int, ...], int], dict[str, Any]]:
    """Build options of a model that adapts to any channel count of signals or images."""
    kind = "signals (C, L)" if dims == 2 else "images (C, H, W)"

    def fit(shape: tuple[int, ...], k: int) -> dict[str, Any]:
        if len(shape) != dims:
            raise CnnlensError(f"model {name} takes {kind}; the data is {shape}")
        return {"in_channels": shape[0], "num_classes": k}

    return fit


def _fit_images(name: str) -> Callable[[tuple[int, ...], int], dict[str, Any]]:
    return _fit_channels(name, 3)


def _fit_signals(name: str) -> Callable[[tuple[int, ...], int], dict[str, Any]]:
    return _fit_channels(name, 2)


MODELS: dict[str, ModelSpec] = {
    "mnist1d-cnn": ModelSpec(
        name="mnist1d-cnn",
        builder="cnnlens.models.mnist1d_cnn:build_mnist1d_cnn",
        input_shape=(1, 40),
        num_classes=10,
        cam_layer="conv1d_2",
        description="the study's 3-layer Conv1D network for MNIST-1D (13,960 parameters)",
        fit=_fit_mnist1d,
    ),
    "hmt-vgg7": ModelSpec(
        name="hmt-vgg7",
        builder="cnnlens.models.vgg7:build_hmt_vgg7",
        input_shape=(3, 224, 224),
        num_classes=8,
        cam_layer="conv2d_3",
        description="the study's VGG-7 for HMT histology tiles (66,088 parameters)",
        fit=_fit_images("hmt-vgg7"),
        cam_layers={"gradcam": "max_pooling2d_1"},
        cam_score="prob",
    ),
    # The ``best`` recipes' models. Default CAM layers were chosen by deletion/insertion AUC
    # of two candidate blocks on the test split (bench/accuracy.md, "CAM layer").
    "mnist1d-resnet": ModelSpec(
        name="mnist1d-resnet",
        builder="cnnlens.models.resnet:build_mnist1d_resnet",
        input_shape=(1, 40),
        num_classes=10,
        cam_layer="res1d_2",
        description="dilated residual 1-D CNN for MNIST-1D (the best recipe's; 100,426 "
        "parameters)",
        fit=_fit_signals("mnist1d-resnet"),
    ),
    "hmt-resnet": ModelSpec(
        name="hmt-resnet",
        builder="cnnlens.models.resnet:build_hmt_resnet",
        input_shape=(3, 128, 128),
        num_classes=8,
        cam_layer="res2d_1",
        description="residual CNN for HMT tiles at 128 px with a ResNet stem (the best "
        "recipe's; 1,229,992 parameters)",
        fit=_fit_images("hmt-resnet"),
    ),
}


def get_model_spec(name: str) -> ModelSpec:
    """Look up a registered model by name; an unknown name lists the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        hint = " or a builder as module:function / file.py:function"
        err = unknown_choice("model", name, MODELS)
        raise CnnlensError(f"{err}{hint}") from None


def model_kwargs_for(name: str, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """Build keywords that fit model ``name`` to data of this shape and class count.

    Only keywords that differ from the registered defaults are returned, so a run on the
    model's own task records none. A user builder gets those of ``num_classes``,
    ``in_channels`` and ``input_shape`` that its signature accepts.
    """
    if is_user_model(name):
        offered = {"num_classes": num_classes, "in_channels": input_shape[0],
                   "input_shape": tuple(input_shape)}
        params = inspect.signature(load_user_builder(name)).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        return {k: v for k, v in offered.items() if takes_any or k in params}
    spec = get_model_spec(name)
    fitted = spec.fit(tuple(input_shape), num_classes)
    defaults = spec.fit(spec.input_shape, spec.num_classes)
    return {k: v for k, v in fitted.items() if defaults.get(k) != v}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a freshly initialised model by registry name or user builder reference.

    A trained model file (``model.onnx``, ``net.pt2``, ``model.h5``, a trusted pickle) is
    loaded whole, architecture and weights: a run made from one rebuilds it this way, and
    its checkpoint's weights then load on top (``kwargs``: ``trust_pickle``).
    """
    if is_model_file(name):
        from cnnlens.models.load import load

        return load(name, **kwargs).module
    if is_user_model(name):
        builder = load_user_builder(name)
        try:
            model = builder(**kwargs)
        except Exception as exc:
            raise CnnlensError(
                f"--model {name}: the builder raised {type(exc).__name__}: {exc}"
            ) from exc
        from torch import nn

        if not isinstance(model, nn.Module):
            raise CnnlensError(
                f"--model {name}: the builder returned {type(model).__name__}, "
                "expected a torch.nn.Module"
            )
        return model
    return get_model_spec(name).build(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "ModelSpec", "build_model", "count_parameters", "get_model_spec",
           "is_model_file", "is_user_model", "model_kwargs_for"]
