"""Hand-computed values for every faithfulness metric on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness import metrics as M


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def sum_model(positions: int, channels: int = 1, gain: float = 1.0) -> nn.Module:
    """logits = [gain * sum(x), 0], so p(class 0) = sigmoid(gain * sum(x))."""
    lin = nn.Linear(channels * positions, 2, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0] = gain
    return nn.Sequential(nn.Flatten(), lin)


X = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])  # sum 10


def test_top_frac_mask_hand_values() -> None:
    maps = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    # P=4, frac=.5 -> index 2 of [.4,.3,.2,.1] -> thr .2, strict -> keep .4 and .3
    assert M.top_frac_mask(maps, 0.5).tolist() == [[False, True, True, False]]
    # frac=.25 -> index 1 -> thr .3 -> keep only .4
    assert M.top_frac_mask(maps, 0.25).tolist() == [[False, True, False, False]]
    # frac=.2 -> int(0.8)=0 -> thr = max -> strict keeps nothing
    assert not M.top_frac_mask(maps, 0.2).any()
    # frac=1 -> index P is past the end: every position kept
    assert M.top_frac_mask(maps, 1.0).all()


def test_top_frac_mask_ties_and_constant() -> None:
    ties = torch.tensor([[0.5, 0.5, 0.5, 0.1]])
    assert not M.top_frac_mask(ties, 0.5).any()  # thr .5, nothing strictly above
    assert M.top_frac_mask(ties, 0.75).tolist() == [[True, True, True, False]]  # thr .1
    const = torch.full((1, 4), 0.3)
    assert not M.top_frac_mask(const, 0.9).any()
    assert M.top_frac_mask(const, 1.0).all()


def test_top_frac_mask_2d() -> None:
    maps = torch.tensor([[[0.9, 0.1], [0.5, 0.2]]])
    assert M.top_frac_mask(maps, 0.5).tolist() == [[[True, False], [True, False]]]


def test_drop_increase_hand_values() -> None:
    model = sum_model(4)
    maps = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    res = M.drop_increase(model, X, maps, frac=0.5)  # x' = [0,2,3,0], sum 5
    y, o = sig(10), sig(5)
    assert res.values["drop"][0] == pytest.approx((y - o) / y, rel=1e-5)
    assert res.values["increase"][0] == 0.0
    assert res.values["target"][0] == 0
    assert res.choices["score"].startswith("softmax probability")
    assert "Y = 0" in res.choices["drop"]


def test_drop_increase_ties_and_constant_map() -> None:
    model = sum_model(4)
    ties = torch.tensor([[0.5, 0.5, 0.5, 0.1]])
    res = M.drop_increase(model, X, ties, frac=0.5)  # nothing kept -> O = sigmoid(0)
    assert res.values["drop"][0] == pytest.approx((sig(10) - 0.5) / sig(10), rel=1e-5)
    assert res.values["kept"][0] == 0.0  # the tie at thr removes every tied position
    assert M.drop_increase(model, X, ties, frac=0.75).values["kept"][0] == 0.75
    const = torch.full((1, 4), 0.7)
    full = M.drop_increase(model, X, const, frac=1.0)  # everything kept -> O = Y
    assert full.values["drop"][0] == 0.0 and full.values["increase"][0] == 0.0


def test_drop_increase_increase_case_and_channels() -> None:
    model = sum_model(4, channels=2)
    x = torch.tensor([[[-1.0, 3.0, 0.0, 0.0], [-1.0, 1.0, 0.0, 0.0]]])  # sum 2
    maps = torch.tensor([[0.0, 1.0, 0.0, 0.0]])  # keep position 1 in both channels: sum 4
    res = M.drop_increase(model, x, maps, frac=0.5)
    assert res.values["increase"][0] == 1.0
    assert res.values["drop"][0] == 0.0
    assert res.values["masked_score"][0] == pytest.approx(sig(4), rel=1e-5)


def test_zero_original_score_gives_zero_drop() -> None:
    model = sum_model(4, gain=100.0)  # logit 1000 for class 0 -> p(class 1) == 0 exactly
    maps = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    res = M.drop_increase(model, X, maps, frac=0.5, targets=[1])
    assert res.values["score"][0] == 0.0
    assert res.values["drop"][0] == 0.0
    assert res.values["increase"][0] == 0.0
    conf = M.average_drop_increase(model, X, maps, targets=[1])
    assert conf.values["avg_drop"][0] == 0.0


def test_average_drop_increase_soft_mask() -> None:
    model = sum_model(4)
    maps = torch.tensor([[1.0, 0.5, 0.0, 0.0]])  # x' = [1, 1, 0, 0], sum 2
    res = M.average_drop_increase(model, X, maps)
    assert res.values["avg_drop"][0] == pytest.approx((sig(10) - sig(2)) / sig(10), rel=1e-5)
    assert res.values["inc_conf"][0] == 0.0
    ones = M.average_drop_increase(model, X, torch.ones(1, 4))
    assert ones.values["avg_drop"][0] == 0.0


def test_soft_mask_rejects_unnormalised_maps() -> None:
    with pytest.raises(CnnlensError, match=r"\[0, 1\]"):
        M.average_drop_increase(sum_model(4), X, torch.tensor([[2.0, 0.0, 0.0, 0.0]]))


def test_deletion_insertion_hand_values() -> None:
    model = sum_model(4)
    maps = torch.tensor([[0.1, 0.4, 0.3, 0.2]])  # order: positions 1, 2, 3, 0
    dele = M.deletion(model, X, maps, steps=2)  # [1,2,3,4] -> [1,0,0,4] -> 0
    want = [sig(10), sig(5), 0.5]
    assert dele.curves["scores"][0].tolist() == pytest.approx(want, rel=1e-5)
    assert dele.curves["fraction"].tolist() == [0.0, 0.5, 1.0]
    auc = 0.5 * ((want[0] + want[1]) / 2 + (want[1] + want[2]) / 2)
    assert dele.values["deletion_auc"][0] == pytest.approx(auc, rel=1e-5)
    ins = M.insertion(model, X, maps, steps=2)  # 0 -> [0,2,3,0] -> x
    assert ins.curves["scores"][0].tolist() == pytest.approx([0.5, sig(5), sig(10)], rel=1e-5)
    assert ins.choices["baseline"] == "zero"


def test_deletion_mean_baseline_and_ties() -> None:
    model = sum_model(4)
    const = torch.zeros(1, 4)  # all tied: lower index first
    dele = M.deletion(model, X, const, steps=4, baseline="mean")  # mean 2.5
    sums = [10, 2.5 + 9, 5 + 7, 7.5 + 4, 10]
    assert dele.curves["scores"][0].tolist() == pytest.approx([sig(s) for s in sums], rel=1e-5)


@pytest.mark.parametrize("frac", [0, 0.0, -0.1, 1.5, float("nan"), "0.5"])
def test_invalid_frac_names_parameter(frac: object) -> None:
    with pytest.raises(CnnlensError, match="frac"):
        M.drop_increase(sum_model(4), X, torch.rand(1, 4), frac=frac)  # type: ignore[arg-type]


@pytest.mark.parametrize("steps", [0, 5, -1, 2.5])
def test_invalid_steps_names_parameter(steps: object) -> None:
    with pytest.raises(CnnlensError, match="steps"):
        M.deletion(sum_model(4), X, torch.rand(1, 4), steps=steps)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(M.METRICS))
@pytest.mark.parametrize("shape", [(1, 3), (2, 4), (1, 1, 4)])
def test_map_shape_mismatch_names_maps(name: str, shape: tuple[int, ...]) -> None:
    kw = {"frac": 0.5} if M.METRICS[name].uses_frac else {}
    with pytest.raises(CnnlensError, match="maps"):
        M.METRICS[name].fn(sum_model(4), X, torch.rand(shape), **kw)


def test_invalid_baseline_and_targets() -> None:
    with pytest.raises(CnnlensError, match="baseline"):
        M.deletion(sum_model(4), X, torch.rand(1, 4), steps=2, baseline="blur")
    with pytest.raises(CnnlensError, match="targets"):
        M.drop_increase(sum_model(4), X, torch.rand(1, 4), frac=0.5, targets=[0, 1])


@pytest.mark.parametrize("name", list(M.METRICS))
def test_metrics_batched_equal_unbatched_and_keep_train_flag(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(24, 4))
    model.train()
    x, maps = torch.randn(7, 2, 8), torch.rand(7, 8)
    kw = {"frac": 0.5} if M.METRICS[name].uses_frac else {}
    if name in ("deletion", "insertion"):
        kw["steps"] = 4
    a = M.METRICS[name].fn(model, x, maps, batch_size=3, **kw)
    b = M.METRICS[name].fn(model, x, maps, batch_size=100, **kw)
    assert model.training  # eval only while scoring
    for out in M.METRICS[name].outputs:
        assert a.values[out].shape == (7,)
        assert a.values[out] == pytest.approx(b.values[out], abs=1e-6)


def test_random_maps() -> None:
    a = M.random_maps((3, 5), seed=1)
    assert a.shape == (3, 5) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, M.random_maps((3, 5), seed=1))
    assert not torch.equal(a, M.random_maps((3, 5), seed=2))
    smooth = M.random_maps((2, 16, 16), seed=0, cells=(4, 4))
    assert smooth.shape == (2, 16, 16)
    assert float(smooth.amin(dim=(1, 2)).max()) == 0.0
    assert float(smooth.amax(dim=(1, 2)).min()) == 1.0
    # upsampled coarse noise: neighbours differ far less than i.i.d. noise does
    rough = M.random_maps((2, 16, 16), seed=0)
    assert smooth.diff(dim=2).abs().mean() < 0.5 * rough.diff(dim=2).abs().mean()


def test_normalize_maps_constant_is_zero() -> None:
    out = M.normalize_maps(torch.tensor([[2.0, 2.0], [1.0, 3.0]]))
    assert out.tolist() == [[0.0, 0.0], [0.0, 1.0]]


def test_base_scores_save_a_pass_and_agree() -> None:
    model = sum_model(4)
    maps = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    full = M.drop_increase(model, X, maps, frac=0.5)
    given = M.drop_increase(model, X, maps, frac=0.5, targets=[0],
                            base_scores=torch.tensor([sig(10)]))
    assert given.values["drop"] == pytest.approx(full.values["drop"], rel=1e-6)
    with pytest.raises(CnnlensError, match="base_scores needs targets"):
        M.drop_increase(model, X, maps, frac=0.5, base_scores=[0.5])


def test_top_frac_mask_keeps_float64_precision() -> None:
    maps = torch.tensor([[1.0, 1.0 + 1e-12, 0.0, 0.0]], dtype=torch.float64)
    # float32 would merge the top two values into a tie and keep nothing
    assert M.top_frac_mask(maps, 0.25).tolist() == [[False, True, False, False]]
