"""One validation before the forward pass; a layer given as a module; the automatic layer;
device out-of-memory halves the chunk and the work goes on."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.explain import default_layer, explain, explain_methods
from cnnlens.explain import engine as engine_mod
from cnnlens.explain.checks import check_batch_size, check_targets
from cnnlens.models import build_model


@pytest.fixture()
def model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("mnist1d-cnn")


def _x(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 1, 40, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize(("x", "needle"), [
    (torch.randn(40), r"x has shape \(40,\)"),
    (torch.randn(2, 1, 40, dtype=torch.float64)[:0], r"no samples"),
    (torch.randint(0, 3, (2, 1, 40)), r"floating point"),
    ([[0.0] * 40], r"must be a torch tensor"),
])
def test_bad_inputs_are_refused_before_the_model_runs(model: nn.Module, x: object,
                                                      needle: str) -> None:
    with pytest.raises(CnnlensError, match=needle):
        explain(model, x, layer="conv1d_2")  # type: ignore[arg-type]


def test_nan_and_inf_name_the_samples(model: nn.Module) -> None:
    x = _x(8)
    x[2, 0, 5] = float("nan")
    x[7, 0, 0] = float("inf")
    with pytest.raises(CnnlensError, match=r"sample\(s\) 2, 7"):
        explain(model, x, layer="conv1d_2")


def test_a_wrong_channel_count_is_one_line_naming_the_shape(model: nn.Module) -> None:
    with pytest.raises(CnnlensError, match=r"cannot run on inputs of shape \(2, 3, 40\)"):
        explain(model, torch.randn(2, 3, 40), layer="conv1d_2")


def test_float64_inputs_are_cast_to_the_model(model: nn.Module) -> None:
    x = _x()
    a = explain(model, x, layer="conv1d_2").maps
    b = explain(model, x.double(), layer="conv1d_2").maps
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("targets", ["3", b"3", True, 2.0, [1.5] * 6])
def test_targets_that_are_not_integers_are_refused(targets: object) -> None:
    with pytest.raises(CnnlensError, match="targets"):
        check_targets(targets, 6)


@pytest.mark.parametrize("bs", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_integer(bs: object) -> None:
    with pytest.raises(CnnlensError, match="batch_size"):
        check_batch_size(bs)


def test_a_layer_may_be_given_as_the_module(model: nn.Module) -> None:
    x = _x()
    by_name = explain(model, x, layer="conv1d_2", method="gradcampp")
    by_module = explain(model, x, layer=model.conv1d_2, method="gradcampp")
    assert by_module.layer == "conv1d_2"
    torch.testing.assert_close(by_name.maps, by_module.maps)
    with pytest.raises(CnnlensError, match="not a submodule"):
        explain(model, x, layer=nn.Conv1d(1, 2, 3))


def test_methods_at_one_layer_share_passes_and_match_single_calls(model: nn.Module) -> None:
    x = _x()
    together = explain_methods(model, x, layer="conv1d_2",
                               methods=["gradcam", "ablationcam", "layercam"])
    for name, res in together.items():
        torch.testing.assert_close(res.maps, explain(model, x, layer="conv1d_2",
                                                     method=name).maps)


def test_default_layer_is_the_last_conv_like_block() -> None:
    assert default_layer(build_model("mnist1d-cnn"), torch.randn(1, 1, 40)) == "conv1d_2"
    assert default_layer(build_model("hmt-vgg7"), torch.randn(1, 3, 32, 32)) == "conv2d_3"
    resnetish = nn.Sequential(OrderedDict(
        stem=nn.Conv2d(3, 4, 3, padding=1),
        layer1=nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
        layer2=nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 2)))
    assert default_layer(resnetish, torch.randn(1, 3, 8, 8)) == "layer2"
    with pytest.raises(CnnlensError, match="no convolutional layer"):
        default_layer(nn.Sequential(nn.Flatten(), nn.Linear(40, 2)), torch.randn(1, 1, 40))


class FakeOOM(RuntimeError):
    pass


def test_out_of_memory_halves_the_chunk_and_the_work_goes_on(
    model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _x(16)
    expected = explain(model, x, layer="conv1d_2", method="gradcam", batch_size=16).maps
    real = engine_mod.Engine.capture
    sizes: list[int] = []

    def tight_memory(self: engine_mod.Engine, xc: torch.Tensor, *a: object,
                     **k: object) -> object:
        sizes.append(xc.shape[0])
        if xc.shape[0] > 4:
            raise FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, xc, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_mod.Engine, "capture", tight_memory)
    got = explain(model, x, layer="conv1d_2", method="gradcam", batch_size=16).maps
    torch.testing.assert_close(got, expected)
    assert sizes[:3] == [16, 8, 4] and max(sizes[3:]) <= 4 and sum(
        s for s in sizes if s <= 4) == 16


def test_out_of_memory_at_one_sample_is_raised(model: nn.Module,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(self: engine_mod.Engine, *a: object, **k: object) -> object:
        raise FakeOOM("CUDA out of memory")

    monkeypatch.setattr(engine_mod.Engine, "capture", no_memory)
    with pytest.raises(FakeOOM):
        explain(model, _x(2), layer="conv1d_2")
