"""The cascading model-randomization check flags maps that ignore the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness.sanity import (
    cascading_randomization,
    randomizable_layers,
    sanity_check,
    seed_interval,
    spearman_rows,
)
from support import require


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


def test_constant_maps_score_zero_or_nan_as_asked() -> None:
    a = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    b = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    assert spearman_rows(a, b).tolist() == [0.0, 1.0]
    nan = spearman_rows(a, b, constant="nan")
    assert np.isnan(nan[0]) and nan[1] == 1.0
    with pytest.raises(CnnlensError, match="constant"):
        spearman_rows(a, b, constant="skip")


def test_reset_draw_leaves_the_global_rng_alone() -> None:
    model = _model()
    x = torch.randn(4, 1, 16)
    t = model(x).argmax(1)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    res = cascading_randomization(model, x, _saliency, targets=t, seed=0, draw="reset")
    assert torch.equal(torch.rand(3), expected)
    assert "reset_parameters" in res["choices"]["randomization"]
    with pytest.raises(CnnlensError, match="draw"):
        cascading_randomization(model, x, _saliency, targets=t, draw="uniform")


def test_several_seeds_give_an_interval_and_a_verdict() -> None:
    model = _model()
    x = torch.randn(6, 1, 16)
    t = model(x).argmax(1)
    res = sanity_check(model, x, _saliency, targets=t, seeds=(0, 1, 2))
    assert res["seeds"] == [0, 1, 2] and np.asarray(res["per_seed"]).shape == (3, 2)
    final = res["final"]
    assert final["low"] <= final["mean"] <= final["high"]
    assert final["mean"] == pytest.approx(np.mean(np.asarray(res["per_seed"])[:, -1]))
    assert res["verdict"] in ("passes", "inconclusive") and not res["flagged"]

    def edge(m: nn.Module, xb: Tensor, tt: Tensor) -> Tensor:
        return xb[:, 0].abs()

    same = sanity_check(model, x, edge, targets=t, seeds=(0, 1))
    assert same["verdict"] == "flagged" and same["flagged"]
    assert seed_interval([0.4, 0.6])[0] == pytest.approx(0.5)
    assert seed_interval([0.7])[1:] == (0.7, 0.7)
    with pytest.raises(CnnlensError, match="seeds"):
        sanity_check(model, x, edge, targets=t, seeds=())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # scipy NaN
def test_agrees_with_quantus_mprt_per_layer() -> None:
    """Quantus 0.6.0 ``MPRT`` (cascading, top down, Spearman per sample, reset_parameters()
    seeded with ``seed + 1``) on the same CAMs: per-layer values equal ours with
    ``draw="reset", constant="nan"`` to 1e-12 (NaN where a map turns constant)."""
    quantus = require("quantus")
    from cnnlens.explain import explain
    from cnnlens.models import build_model

    torch.manual_seed(0)
    model = build_model("mnist1d-cnn").eval()
    x = torch.randn(8, 1, 40)
    t = model(x).argmax(1)

    def cam(m: nn.Module, xb: Tensor, tt: Tensor) -> Tensor:
        return explain(m, xb, method="gradcam", layer="conv1d_2", targets=tt).maps

    ours = cascading_randomization(model, x, cam, targets=t, seed=7, draw="reset",
                                   constant="nan")

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray,
                     **_: object) -> np.ndarray:
        return cam(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()

    metric = quantus.MPRT(seed=7, abs=False, normalise=False, disable_warnings=True,
                          display_progressbar=False)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=t.numpy(),
                    a_batch=cam(model, x, t).numpy(), explain_func=explain_func,
                    device="cpu", batch_size=8)
    assert np.isfinite(ours["spearman"]).any() and np.isnan(ours["spearman"]).any()
    theirs = [k for k in scores if k != "original"]
    assert theirs == ours["layers"]
    for j, layer in enumerate(theirs):
        np.testing.assert_allclose(np.asarray(scores[layer], dtype=np.float64),
                                   ours["spearman"][j], atol=1e-12, equal_nan=True)
