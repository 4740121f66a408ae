"""Engine safety: layer and target checks, model state, hooks, in-place ReLU, memory."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.explain import METHODS, cam, candidate_layers, explain, resolve_layer
from cnnlens.models import build_model

GRADIENT_METHODS = sorted(n for n, m in METHODS.items() if m.uses_gradients)


@pytest.fixture()
def mnist_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("mnist1d-cnn")


def _x(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 1, 40, generator=torch.Generator().manual_seed(1))


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_unknown_layer_suggests_closest(mnist_model: nn.Module) -> None:
    with pytest.raises(CnnlensError, match=r"unknown layer 'conv1d_22'.*did you mean.*conv1d_2"):
        cam(mnist_model, _x(), layer="conv1d_22")
    assert resolve_layer(mnist_model, "conv1d_2.conv") is mnist_model.conv1d_2.conv


@pytest.mark.parametrize("layer", ["flatten", "dense"])
def test_layer_without_spatial_dimension_is_an_error(mnist_model: nn.Module, layer: str) -> None:
    with pytest.raises(CnnlensError, match=rf"layer '{layer}'.*no spatial dimension"):
        cam(mnist_model, _x(), layer=layer)
    assert _hook_count(mnist_model) == 0


class _WithUnused(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.unused = nn.Conv1d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def test_layer_off_the_forward_path_is_an_error(mnist_model: nn.Module) -> None:
    model = _WithUnused(mnist_model)
    with pytest.raises(CnnlensError, match=r"layer 'unused' is not on the model's forward path"):
        cam(model, _x(), layer="unused")
    assert _hook_count(model) == 0


def test_candidate_layers_lists_spatial_layers(mnist_model: nn.Module) -> None:
    names = candidate_layers(mnist_model, _x())
    assert names[-1] == "conv1d_2"
    assert "flatten" not in names and "dense" not in names
    assert {"conv1d", "conv1d_1.conv"} <= set(names)
    assert _hook_count(mnist_model) == 0


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([1, 2, 3], r"targets has 3 entries but the batch has 4"),
        ([0, 1, -1, 2], r"targets must be >= 0"),
        ([0, 1, 10, 2], r"targets must be < 10"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), r"integer class indices"),
    ],
)
def test_bad_targets_are_errors(mnist_model: nn.Module, targets: object, message: str) -> None:
    with pytest.raises(CnnlensError, match=message):
        cam(mnist_model, _x(), layer="conv1d_2", targets=targets)  # type: ignore[arg-type]
    assert _hook_count(mnist_model) == 0


def test_targets_default_to_prediction_and_are_honoured(mnist_model: nn.Module) -> None:
    x = _x()
    res = explain(mnist_model, x, layer="conv1d_2")
    assert res.targets.tolist() == mnist_model(x).argmax(1).tolist()
    forced = explain(mnist_model, x, layer="conv1d_2", targets=[3, 3, 3, 3])
    assert forced.targets.tolist() == [3] * 4
    torch.testing.assert_close(forced.scores, mnist_model(x)[:, 3].detach())
    assert explain(mnist_model, x, layer="conv1d_2", targets=3).targets.tolist() == [3] * 4


def test_bad_options_are_errors(mnist_model: nn.Module) -> None:
    with pytest.raises(CnnlensError, match=r"unknown CAM method 'gradcamm'.*gradcam"):
        cam(mnist_model, _x(), layer="conv1d_2", method="gradcamm")
    with pytest.raises(CnnlensError, match=r"unknown score 'softmax'"):
        cam(mnist_model, _x(), layer="conv1d_2", score="softmax")
    with pytest.raises(CnnlensError, match=r"x has shape \(1, 40\); accepted: \(N, C, L\)"):
        cam(mnist_model, torch.randn(1, 40), layer="conv1d_2")
    # the hint fits the shape it describes: a batch of signals is not one signal
    with pytest.raises(CnnlensError, match=r"8 signals of length 40: x\[:, None\] makes them "
                       r"\(8, 1, 40\)"):
        cam(mnist_model, torch.randn(8, 40), layer="conv1d_2")
    with pytest.raises(CnnlensError, match=r"one signal of length 40: x\[None, None\] makes "
                       r"it \(1, 1, 40\)"):
        cam(mnist_model, torch.randn(40), layer="conv1d_2")


def _bn_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(METHODS))
def test_model_state_is_left_as_found(name: str) -> None:
    model = _bn_model()
    model.train()
    model[1].eval()  # a mixed state must come back exactly
    model[0].weight.requires_grad_(False)
    model[3].weight.grad = torch.full_like(model[3].weight, 7.0)
    before_bn = model[4].running_mean.clone()
    x = torch.randn(2, 3, 8, 8)
    explain(model, x, layer="3", method=name)
    assert [m.training for m in model.modules()] == [m is not model[1] for m in model.modules()]
    assert model[0].weight.requires_grad is False
    assert all(p.requires_grad for p in model.parameters() if p is not model[0].weight)
    assert torch.equal(model[3].weight.grad, torch.full_like(model[3].weight, 7.0))
    assert all(p.grad is None for p in model.parameters() if p is not model[3].weight)
    torch.testing.assert_close(model[4].running_mean, before_bn)  # eval mode: stats untouched
    assert _hook_count(model) == 0


def test_state_and_hooks_restored_after_an_exception() -> None:
    model = _bn_model().train()
    with pytest.raises(CnnlensError):
        explain(model, torch.randn(2, 3, 8, 8), layer="3", targets=[0, 9])
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert _hook_count(model) == 0


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_batchnorm_and_inplace_relu_after_the_layer(name: str) -> None:
    """Target the conv itself, followed by BatchNorm and an in-place ReLU."""
    model = _bn_model().eval()
    x = torch.randn(3, 3, 8, 8)
    res = explain(model, x, layer="3", method=name, normalize=False)
    safe = _bn_model().eval()
    for m in safe.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    ref = explain(safe, x, layer="3", method=name, normalize=False)
    torch.testing.assert_close(res.raw, ref.raw)
    assert res.raw.abs().sum() > 0


def test_inplace_relu_does_not_corrupt_captured_activations() -> None:
    """Activations are pre-ReLU at layer '3': negative values must survive for Eigen/Ablation."""
    model = _bn_model().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        a = model[:4](x)
    assert (a < 0).any()
    res = explain(model, x, layer="3", method="eigencam", normalize=False, upsample=False)
    safe = _bn_model().eval()
    for m in safe.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    ref = explain(safe, x, layer="3", method="eigencam", normalize=False, upsample=False)
    torch.testing.assert_close(res.raw, ref.raw)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_constant_maps_are_zero_not_nan(name: str) -> None:
    model = build_model("mnist1d-cnn")
    x = torch.zeros(2, 1, 40)  # zero biases: every activation is 0
    res = explain(model, x, layer="conv1d_2", method=name)
    assert torch.equal(res.maps, torch.zeros(2, 40))


def test_inside_no_grad_and_inference_mode(mnist_model: nn.Module) -> None:
    x = _x()
    ref = cam(mnist_model, x, layer="conv1d_2")
    with torch.no_grad():
        torch.testing.assert_close(cam(mnist_model, x, layer="conv1d_2"), ref)
    with torch.inference_mode():
        xi = x.clone()
    torch.testing.assert_close(cam(mnist_model, xi, layer="conv1d_2"), ref)


def test_no_growth_over_many_calls(mnist_model: nn.Module) -> None:
    x = _x(8)
    for name in METHODS:  # warm-up: lazy imports, caches
        cam(mnist_model, x, layer="conv1d_2", method=name)
    gc.collect()
    before = sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())
    for i in range(200):
        cam(mnist_model, x, layer="conv1d_2", method=sorted(METHODS)[i % len(METHODS)])
    gc.collect()
    after = sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())
    assert after - before <= 5
    assert _hook_count(mnist_model) == 0


def _inplace_net(inplace: bool) -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=inplace),
        nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(METHODS))
def test_inplace_relu_directly_on_the_layer_output(name: str) -> None:
    """The layer's own output is modified in place: maps must equal the out-of-place net's."""
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    model = _inplace_net(True)
    res = explain(model, x, layer="2", method=name, normalize=False)
    ref = explain(_inplace_net(False), x, layer="2", method=name, normalize=False)
    torch.testing.assert_close(res.raw, ref.raw)
    assert res.raw.abs().sum() > 0
    assert _hook_count(model) == 0
