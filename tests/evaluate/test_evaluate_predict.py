"""Batched prediction, with and without test-time dihedral averaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from cnnlens.errors import CnnlensError
from cnnlens.evaluate.options import EvaluateOptions
from cnnlens.evaluate.predict import dihedral_views, predict_proba


class _Corner(nn.Module):
    """Logits from the top-left pixel: not invariant to any rotation or flip."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, :, 0, 0])


def _data(n: int = 5, size: int = 6) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 4)


def test_views_are_the_eight_distinct_symmetries() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    views = dihedral_views(x)
    assert len(views) == 8
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert all(sorted(v.flatten().tolist()) == list(range(16)) for v in views)


def test_dihedral_averages_the_probabilities_of_the_eight_views() -> None:
    torch.manual_seed(0)
    model, data = _Corner(), _data()
    probs, labels = predict_proba(model, data, tta="dihedral")
    x = data.tensors[0]
    with torch.no_grad():
        expected = torch.stack([torch.softmax(model(v), 1) for v in dihedral_views(x)]).mean(0)
    np.testing.assert_allclose(probs, expected.double().numpy(), rtol=1e-6, atol=1e-7)
    assert labels.tolist() == data.tensors[1].tolist()
    plain, _ = predict_proba(model, data)
    assert np.abs(plain - probs).max() > 1e-3  # the views differ for this model


def test_an_invariant_model_gets_the_same_probabilities() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
    data = _data()
    plain, _ = predict_proba(model, data)
    tta, _ = predict_proba(model, data, tta="dihedral")
    np.testing.assert_allclose(tta, plain, rtol=1e-5, atol=1e-6)


def test_non_square_images_and_unknown_choices_are_refused() -> None:
    data = TensorDataset(torch.rand(2, 3, 4, 6), torch.zeros(2, dtype=torch.long))
    with pytest.raises(CnnlensError, match="square images"):
        predict_proba(_Corner(), data, tta="dihedral")
    with pytest.raises(CnnlensError, match="--tta"):
        EvaluateOptions(tta="rot").validate()
