"""The cascading model-randomization check flags maps that ignore the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cnnlens.faithfulness.sanity import (
    cascading_randomization,
    randomizable_layers,
    spearman_rows,
)


def test_spearman_rows_hand_values() -> None:
    a = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1.0, 5.0, 2.0]])
    b = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [10.0, 50.0, 20.0]])
    assert spearman_rows(a, b).tolist() == pytest.approx([-1.0, 0.0, 1.0])


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 16, 3))


def _saliency(model: nn.Module, x: Tensor, t: Tensor) -> Tensor:
    """|d logit_t / d x|: depends on every weight."""
    x = x.clone().requires_grad_(True)
    out = model(x).gather(1, t[:, None]).sum()
    (g,) = torch.autograd.grad(out, x)
    return g.abs()[:, 0]


def test_randomizable_layers_output_first() -> None:
    assert randomizable_layers(_model()) == ["3", "0"]


def test_model_dependent_maps_pass_and_model_is_untouched() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(6, 1, 16)
    t = model(x).argmax(1)
    res = cascading_randomization(model, x, _saliency, targets=t, seed=0)
    assert res["layers"] == ["3", "0"]
    assert res["spearman"].shape == (2, 6)
    assert res["spearman_mean"][-1] < 0.5
    assert not res["flagged"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_model_independent_maps_are_flagged() -> None:
    model = _model()
    x = torch.randn(5, 1, 16)

    def edge(m: nn.Module, xb: Tensor, t: Tensor) -> Tensor:  # ignores the model entirely
        return xb[:, 0].abs()

    res = cascading_randomization(model, x, edge, targets=torch.zeros(5, dtype=torch.long))
    assert res["spearman_mean"] == pytest.approx([1.0, 1.0])
    assert res["flagged"]
