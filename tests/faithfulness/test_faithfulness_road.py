"""ROAD: noisy linear imputation on hand-made inputs, the MoRF/LeRF metric, and the
agreement with pytorch-grad-cam's implementation (``metrics/road.py``) with noise 0."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness.imputation import impute
from cnnlens.faithfulness.road import check_percentages, removal_counts, road
from cnnlens.faithfulness.scoring import ImputedScores
from cnnlens.models import build_model


def _ramp2d(h: int, w: int) -> Tensor:
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.stack([0.3 * yy + 0.7 * xx + 1.0, -0.2 * yy + 0.05 * xx])[None]


#: Images are solved exactly (SuperLU) or by multigrid CG, which stops at an error of about
#: 1e-7 without noise; each hand-made 2-D case runs through both.
SOLVERS = pytest.mark.parametrize(("solver", "atol"), [("direct", 1e-10), ("multigrid", 1e-6)])


@SOLVERS
def test_constant_signal_stays_constant(solver: str, atol: float) -> None:
    g = torch.Generator().manual_seed(0)
    x1 = torch.full((4, 2, 40), 0.7, dtype=torch.float64)
    rem1 = torch.rand(4, 40, generator=g) > 0.3
    assert torch.allclose(impute(x1, rem1, noise=0.0), x1, atol=1e-12)
    x2 = torch.full((2, 3, 12, 9), -1.5, dtype=torch.float64)
    rem2 = torch.rand(2, 12, 9, generator=g) > 0.2
    assert torch.allclose(impute(x2, rem2, noise=0.0, solver=solver), x2, atol=atol)


@SOLVERS
def test_linear_ramp_is_reconstructed_exactly_away_from_the_border(solver: str,
                                                                   atol: float) -> None:
    x = _ramp2d(30, 30)
    rem = torch.zeros(1, 30, 30, dtype=torch.bool)
    rem[0, 5:25, 3:20] = True  # a 20 x 17 hole: most removed positions see no known one
    rem[0, 12, 25] = True
    out = impute(x, rem, noise=0.0, solver=solver)
    assert (out - x).abs().max() < atol
    sig = torch.linspace(-1.0, 2.0, 40, dtype=torch.float64).repeat(3, 2, 1)
    rem1 = torch.zeros(3, 40, dtype=torch.bool)
    rem1[0, 1:39] = True
    rem1[1, 10:20] = True
    rem1[2, ::2] = True
    rem1[2, 0] = False
    assert (impute(sig, rem1, noise=0.0) - sig).abs().max() < 1e-12


def test_a_ramp_at_the_border_is_not_extrapolated() -> None:
    """The border row has no outer neighbours: its value is the mean of the inner ones."""
    sig = torch.arange(5, dtype=torch.float64)[None, None]
    rem = torch.tensor([[True, False, False, False, False]])
    assert impute(sig, rem, noise=0.0)[0, 0, 0].item() == pytest.approx(1.0)


@SOLVERS
def test_enclosed_and_fully_removed_positions_stay_finite(solver: str, atol: float) -> None:
    x = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rem = torch.zeros(2, 9, 9, dtype=torch.bool)
    rem[0, 2:7, 2:7] = True  # (4, 4) is surrounded by removed positions two deep
    rem[1] = True  # nothing known: per-channel mean
    out = impute(x, rem, noise=0.0, solver=solver)
    assert torch.isfinite(out).all()
    assert x[0, :, 2, 2].min() - 1e-9 <= out[0, 0, 4, 4] <= x[0].max() + 1e-9
    assert torch.allclose(out[1], x[1].mean(dim=(1, 2), keepdim=True).expand(3, 9, 9))
    assert torch.equal(out[0][:, ~rem[0]], x[0][:, ~rem[0]])  # known positions untouched


@pytest.mark.parametrize("solver", ["direct", "multigrid"])
def test_noise_is_seeded_scaled_and_only_on_removed_positions(solver: str) -> None:
    x = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    rem = torch.zeros(1, 64, 64, dtype=torch.bool)
    rem[0, :, :32] = True
    a = impute(x, rem, noise=0.01, seed=3, solver=solver)
    assert torch.equal(a, impute(x, rem, noise=0.01, seed=3, solver=solver))
    assert not torch.equal(a, impute(x, rem, noise=0.01, seed=4, solver=solver))
    assert torch.equal(a[0, 0, :, 32:], x[0, 0, :, 32:])
    assert float(a[0, 0, :, :32].std()) == pytest.approx(0.01, rel=0.1)
    # the noise of a sample depends on its content and mask, not on the batch it is in
    both = impute(torch.cat([x, x + 1.0]), torch.cat([rem, rem]), noise=0.01, seed=3,
                  solver=solver)
    assert torch.equal(both[:1], a)


def test_imputation_errors_name_the_problem() -> None:
    with pytest.raises(CnnlensError, match="noise"):
        impute(torch.zeros(1, 1, 4), torch.zeros(1, 4, dtype=torch.bool), noise=-1.0)
    with pytest.raises(CnnlensError, match="shape"):
        impute(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 2, 2, 2, dtype=torch.bool))
    with pytest.raises(CnnlensError, match="mask"):
        impute(torch.zeros(1, 1, 4), torch.zeros(1, 5, dtype=torch.bool))
    with pytest.raises(CnnlensError, match="solver='lu' is invalid; accepted: auto, direct"):
        impute(torch.zeros(1, 1, 4), torch.zeros(1, 4, dtype=torch.bool), solver="lu")
    with pytest.raises(CnnlensError, match=r"multigrid.*images.*\(1, 1, 4\)"):
        impute(torch.zeros(1, 1, 4), torch.zeros(1, 4, dtype=torch.bool), solver="multigrid")
    with pytest.raises(CnnlensError, match="percentages"):
        check_percentages([0, 50])
    with pytest.raises(CnnlensError, match="percentages"):
        check_percentages([])
    assert check_percentages([50, 10]) == (10.0, 50.0)
    assert removal_counts(40, (10, 50)) == [4, 20]


# -- the metric ------------------------------------------------------------------------------
class LeftEnergy(nn.Module):
    """logit 0 = 2·mean((x[i+1] - x[i])², i < 10) - 2: roughness of the left quarter, which
    interpolation (smooth by construction) cannot bring back on random ±1 signals."""

    def forward(self, x: Tensor) -> Tensor:
        e = 2.0 * ((x[:, 0, 1:11] - x[:, 0, :10]) ** 2).mean(dim=1) - 2.0
        return torch.stack([e, torch.zeros_like(e)], dim=1)


def test_road_prefers_the_map_that_points_at_the_evidence() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(16, 1, 40, generator=g) > 0.5, 1.0, -1.0)
    right = torch.cat([torch.linspace(1.0, 0.9, 10), torch.linspace(0.5, 0.0, 30)]).repeat(16, 1)
    wrong = right.flip(1)
    model = LeftEnergy()
    t = torch.zeros(16, dtype=torch.long)
    good = road(model, x, right, targets=t, noise=0.0, percentages=(10, 20))
    bad = road(model, x, wrong, targets=t, noise=0.0, percentages=(10, 20))
    assert (good.values["road_morf"] < bad.values["road_morf"]).all()
    assert (good.values["road_lerf"] > bad.values["road_lerf"]).all()
    assert (good.values["road_gap"] > 0).all() and (bad.values["road_gap"] < 0).all()
    assert good.curves["morf"].shape == (16, 2)
    assert "noisy linear imputation" in good.choices["imputation"]


def test_imputed_scores_are_shared_between_metrics() -> None:
    """Table I at frac 0.9 under imputation removes what ROAD LeRF 10 % removes: one solve."""
    model = LeftEnergy()
    x = torch.where(torch.rand(5, 1, 40, generator=torch.Generator().manual_seed(2)) > 0.5,
                    1.0, -1.0)
    maps = torch.rand(5, 40, generator=torch.Generator().manual_seed(3))
    scorer = ImputedScores(noise=0.01, seed=0)
    res = road(model, x, maps, percentages=(10,), imputer=scorer)
    solved = scorer.solved
    tab = M.drop_increase(model, x, maps, frac=0.9, targets=res.values["target"],
                          baseline="road", imputer=scorer)
    assert scorer.solved == solved and scorer.reused >= 5
    assert np.allclose(tab.values["masked_score"], res.curves["lerf"][:, 0])
    assert "noisy linear imputation" in tab.choices["masking"]


@pytest.mark.parametrize("baseline", ["zero", "mean", 0.5, "road"])
def test_deletion_and_insertion_take_every_baseline(baseline: object) -> None:
    model = LeftEnergy()
    x = torch.where(torch.rand(3, 1, 40, generator=torch.Generator().manual_seed(4)) > 0.5,
                    1.0, -1.0)
    maps = torch.rand(3, 40, generator=torch.Generator().manual_seed(5))
    for fn in (M.deletion, M.insertion):
        res = fn(model, x, maps, steps=4, baseline=baseline)  # type: ignore[arg-type]
        assert np.isfinite(res.values[f"{fn.__name__}_auc"]).all()
    with pytest.raises(CnnlensError, match="baseline"):
        M.deletion(model, x, maps, steps=4, baseline="blur")


# -- agreement with pytorch-grad-cam -------------------------------------------------------------
def _model_and_data() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = build_model("hmt-vgg7").eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    maps = torch.rand(4, 32, 32, generator=g)  # continuous: no ties
    return model, x, maps


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # torch inside numpy
def test_road_equals_pytorch_grad_cam_with_noise_zero(pgc: types.ModuleType) -> None:
    """pytorch-grad-cam 1.5.7 ``ROADMostRelevantFirst(percentile=q)`` removes the positions
    with map >= ``np.percentile(map, q)`` (linear interpolation): ``P - ceil((P-1)·q/100)``
    of them, where we remove ``round(P·p/100)`` with ``p = 100 - q``. For P = 32² and
    p = 20, 50, 70 both give the same sets (checked below); elsewhere they can differ by one
    position. Its imputer is ours (same weights, border renormalisation and system), solved
    in float64 and returned in float32; tolerance 1e-5 on probabilities."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, x, maps = _model_and_data()
    pcts = (20, 50, 70)
    res = road(model, x, maps, percentages=pcts, noise=0.0)
    y = res.values["score"]
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in res.values["target"]]
    cams = maps.numpy().astype(np.float32)
    for j, p in enumerate(pcts):
        flat = cams.reshape(4, -1)
        ranks = np.argsort(np.argsort(-flat, axis=1, kind="stable"), axis=1)
        k = removal_counts(flat.shape[1], [p])[0]
        theirs = flat >= np.percentile(flat, 100 - p, axis=1, keepdims=True)
        assert np.array_equal(theirs, ranks < k)  # the same removed sets
        for cls, key in ((ROADMostRelevantFirst, "morf"), (ROADLeastRelevantFirst, "lerf")):
            metric = cls(percentile=100 - p)
            metric.perturbation.imputer.noise = 0.0
            diff = metric(x, cams, targets, model)
            assert np.allclose(res.curves[key][:, j] - y, diff, atol=1e-5), (key, p)


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")
def test_average_drop_equals_cam_mult_image_confidence_change(pgc: types.ModuleType) -> None:
    """``CamMultImageConfidenceChange`` returns ``O - Y`` (softmax target, ``x · L``):
    average drop = ``max(0, -(O - Y)) / Y`` and increase = ``1[O - Y > 0]``."""
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, x, maps = _model_and_data()
    res = M.average_drop_increase(model, x, maps)
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in res.values["target"]]
    diff = CamMultImageConfidenceChange()(x, maps.numpy(), targets, model)
    y = res.values["score"]
    assert np.allclose(res.values["masked_score"] - y, diff, atol=1e-6)
    assert np.allclose(res.values["avg_drop"], np.maximum(0.0, -diff) / y, atol=1e-5)
    assert np.array_equal(res.values["inc_conf"], (diff > 0).astype(np.float32))
