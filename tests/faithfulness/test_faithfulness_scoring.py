"""Every metric validates like the CAM engine and halves a scoring batch that runs out of memory."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness.road import road

NAMES = list(M.METRICS)


def _kw(name: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"frac": 0.5} if M.METRICS[name].uses_frac else {}
    if name in ("deletion", "insertion"):
        kw["steps"] = 4
    return kw


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(24, 4)).eval()


class _OomAbove(nn.Module):
    """Wraps a model; raises a CUDA out-of-memory error on batches above ``limit`` samples."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(int(x.shape[0]))
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        out: torch.Tensor = self.inner(x)
        return out


X = torch.randn(7, 2, 8, generator=torch.Generator().manual_seed(1))
MAPS = torch.rand(7, 8, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("name", NAMES)
def test_nan_and_inf_inputs_are_refused_not_scored(name: str) -> None:
    for bad in (float("nan"), float("inf")):
        x = X.clone()
        x[3, 1, 2] = bad
        with pytest.raises(CnnlensError, match=r"x holds NaN or infinite values in sample\(s\) 3"):
            M.METRICS[name].fn(_model(), x, MAPS, **_kw(name))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_rank_and_dtype_name_the_input(name: str) -> None:
    with pytest.raises(CnnlensError, match=r"x has shape \(7, 16\)"):
        M.METRICS[name].fn(_model(), X.reshape(7, 16), MAPS, **_kw(name))
    with pytest.raises(CnnlensError, match="x must be floating point"):
        M.METRICS[name].fn(_model(), X.long(), MAPS, **_kw(name))


@pytest.mark.parametrize("name", NAMES)
def test_float64_inputs_score_like_float32(name: str) -> None:
    a = M.METRICS[name].fn(_model(), X, MAPS, **_kw(name))
    b = M.METRICS[name].fn(_model(), X.double(), MAPS, **_kw(name))
    for out in M.METRICS[name].outputs:
        assert a.values[out] == pytest.approx(b.values[out], abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_model_that_cannot_run_is_one_line_naming_the_shape(name: str) -> None:
    x = torch.randn(7, 3, 8)  # the model's first conv takes 2 channels
    with pytest.raises(CnnlensError, match=r"cannot run on inputs of shape \(7, 3, 8\)") as info:
        M.METRICS[name].fn(_model(), x, MAPS, **_kw(name))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("targets", [[0.0] * 7, [True] * 7, [0, 1, 2], [-1] * 7, [9] * 7])
def test_targets_checked_like_the_engine(targets: list[Any]) -> None:
    with pytest.raises(CnnlensError, match="targets"):
        M.drop_increase(_model(), X, MAPS, frac=0.5, targets=targets)
    with pytest.raises(CnnlensError, match="targets"):
        road(_model(), X, MAPS, targets=targets, percentages=(0.5,))


@pytest.mark.parametrize("batch_size", [0, -2, 2.5, True, "4"])
def test_batch_size_checked_like_the_engine(batch_size: Any) -> None:
    with pytest.raises(CnnlensError, match="batch_size"):
        M.drop_increase(_model(), X, MAPS, frac=0.5, batch_size=batch_size)


@pytest.mark.parametrize("name", NAMES)
def test_out_of_memory_halves_the_scoring_batch(name: str) -> None:
    ref = M.METRICS[name].fn(_model(), X, MAPS, **_kw(name))
    model = _OomAbove(_model(), limit=2).eval()
    got = M.METRICS[name].fn(model, X, MAPS, **_kw(name))
    # The first batch halves until it fits; every later batch starts at the size that fitted.
    assert model.batches[:3] == [7, 3, 1]
    assert set(model.batches[3:]) == {1}
    for out in M.METRICS[name].outputs:
        assert got.values[out] == pytest.approx(ref.values[out], abs=1e-6)


def test_out_of_memory_on_one_sample_is_raised() -> None:
    with pytest.raises(torch.cuda.OutOfMemoryError):
        M.drop_increase(_OomAbove(_model(), limit=0).eval(), X, MAPS, frac=0.5)
