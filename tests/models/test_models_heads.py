"""A final softmax is removed only when that provably leaves the model's logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlens.explain import cam
from cnnlens.models.heads import logits_model, output_kind, remove_head
from cnnlens.models.load import load
from support import require

SHAPE = (3, 12, 12)


def _net(head: nn.Module | None) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)]
    return nn.Sequential(*layers, *([head] if head is not None else [])).eval()


class FunctionalSoftmax(nn.Module):
    """Softmax applied inside forward: there is no layer to remove."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _net(None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.body(x), dim=1)


X = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(("head", "kind"), [(nn.Softmax(dim=1), "softmax"),
                                            (nn.LogSoftmax(dim=1), "log_softmax")])
def test_a_final_softmax_layer_is_removed_and_its_logits_kept(head: nn.Module,
                                                               kind: str) -> None:
    model = _net(head)
    logits, removed, note = logits_model(model, SHAPE)
    assert removed == kind and kind in note
    assert isinstance(logits[-1], nn.Identity) and isinstance(model[-1], type(head))  # a copy
    with torch.no_grad():
        assert torch.allclose(logits(X), _net(None)(X), atol=1e-6)
    # Ablation-CAM of a saturated probability is what the removal avoids: on the logits
    # the maps carry signal
    maps = cam(logits, X, layer="1", method="ablationcam", normalize=False)
    assert float(maps.abs().sum()) > 0


def test_a_model_that_outputs_logits_is_left_alone() -> None:
    model = _net(None)
    same, removed, note = logits_model(model, SHAPE)
    assert same is model and removed is None and "logits" in note


def test_a_softmax_without_a_layer_to_remove_is_kept_and_said() -> None:
    model = FunctionalSoftmax().eval()
    same, removed, note = logits_model(model, SHAPE)
    assert same is model and removed is None
    assert "no final layer could be removed" in note
    assert remove_head(model, "softmax", SHAPE) is None


def test_output_kind_reads_rows() -> None:
    z = torch.randn(4, 3)
    assert output_kind(z) is None
    assert output_kind(torch.softmax(z, 1)) == "softmax"
    assert output_kind(torch.log_softmax(z, 1)) == "log_softmax"
    assert output_kind(torch.sigmoid(z)) is None  # independent scores, not a distribution


def test_onnx_and_pt2_softmax_heads_are_removed(tmp_path: Path) -> None:
    model = _net(nn.Softmax(dim=1))
    torch.export.save(torch.export.export(model, (X[:2],)), tmp_path / "m.pt2")
    require("onnx")
    torch.onnx.export(model, (X[:1],), str(tmp_path / "m.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    for name in ("m.pt2", "m.onnx"):
        loaded = load(tmp_path / name).module
        logits, removed, _ = logits_model(loaded, SHAPE)
        assert removed == "softmax", name
        with torch.no_grad():
            assert torch.allclose(logits(X[:2]), _net(None)(X[:2]), atol=1e-5), name
