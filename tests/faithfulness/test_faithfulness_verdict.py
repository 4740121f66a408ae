"""The verdict across metrics: Kendall's W by hand, and a synthetic case with a right answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness import stats as S
from cnnlens.faithfulness.comparisons import pairwise_tests
from cnnlens.faithfulness.verdict import build_verdict, kendalls_w


def test_kendalls_w_hand_values() -> None:
    same = np.array([[3.0, 2.0, 1.0], [30.0, 20.0, 10.0], [0.3, 0.2, 0.1]])
    assert kendalls_w(same)[0] == pytest.approx(1.0)
    # two judges in exact opposition: rank sums all equal -> W = 0
    assert kendalls_w(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))[0] == pytest.approx(0.0)
    # m = 2, n = 3, ranks (1,2,3) and (1,3,2): sums 2,5,5, S = 6, W = 12*6 / (4 * 24) = 0.75
    assert kendalls_w(np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]]))[0] == pytest.approx(0.75)
    assert np.isnan(kendalls_w(np.array([[1.0, 2.0]]))[0])


class Roughness(nn.Module):
    """logit 0 = 2·mean((x[i+1] − x[i])², i < 10) − 2: the evidence sits in positions 0–10,
    and no interpolation or zero-filling can bring random ±1 back."""

    def forward(self, x: Tensor) -> Tensor:
        e = 2.0 * ((x[:, 0, 1:11] - x[:, 0, :10]) ** 2).mean(dim=1) - 2.0
        return torch.stack([e, torch.zeros_like(e)], dim=1)


def test_verdict_names_the_method_that_is_right_by_construction() -> None:
    n = 60
    g = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(n, 1, 40, generator=g) > 0.5, 1.0, -1.0)
    evidence = torch.cat([torch.ones(11), torch.zeros(29)])
    right = (evidence + 0.01 * torch.rand(n, 40, generator=g)).clamp(0, 1)  # points at 0–10
    wrong = (evidence.flip(0) + 0.01 * torch.rand(n, 40, generator=g)).clamp(0, 1)
    maps = {"right": right, "wrong": wrong, "random": M.random_maps((n, 40), seed=1)}
    model = Roughness()
    y, t = M.target_probs(model, x)
    per: dict[str, dict[str, np.ndarray]] = {}
    for label, m in maps.items():
        di = M.drop_increase(model, x, m, frac=0.3, targets=t, base_scores=y, baseline="road")
        rd = M.road(model, x, m, targets=t, base_scores=y, percentages=(10, 30), noise=0.0)
        per[label] = {"drop@0.3": di.values["drop"], "road_morf": rd.values["road_morf"],
                      "road_lerf": rd.values["road_lerf"]}
    keys = ["drop@0.3", "road_morf", "road_lerf"]
    summary = {m: {k: S.bootstrap_ci(v * M.OUTPUTS[k.partition("@")[0]].scale, n_boot=200)
                   for k, v in vals.items()} for m, vals in per.items()}
    tests = pairwise_tests(per, keys, 0.05)
    higher = {k: s.higher_is_better for k, s in M.OUTPUTS.items()}
    v = build_verdict(summary, tests, keys, higher_is_better=higher, task="synthetic", n=n)
    for k in keys:
        assert v["rankings"][k][0]["method"] == "right"
        assert v["rankings"][k][-1]["method"] == "wrong"
    assert v["kendall_w"] == pytest.approx(1.0)
    assert v["vs_random"]["right"]["better"] == keys
    assert v["vs_random"]["wrong"]["worse"] == keys
    assert "Verdict: right is the most faithful on every metric" in v["text"]
    assert "wrong never beats a random map" in v["text"]
    assert v["contradictions"] == []


def test_verdict_reports_contradictions_and_ties() -> None:
    s = {"a": {"m1": {"mean": 2.0, "low": 1.0, "high": 3.0},
               "m2": {"mean": 1.0, "low": 0.5, "high": 1.5}},
         "b": {"m1": {"mean": 1.0, "low": 0.5, "high": 1.5},
               "m2": {"mean": 2.0, "low": 1.0, "high": 3.0}}}
    tests = [{"metric": "m1", "a": "a", "b": "b", "verdict": "better", "mean_diff": 1.0},
             {"metric": "m2", "a": "a", "b": "b", "verdict": "worse", "mean_diff": -1.0}]
    v = build_verdict(s, tests, ["m1", "m2"], higher_is_better={"m1": True, "m2": True})
    assert v["contradictions"] == [{"a": "a", "b": "b", "a_better_on": ["m1"],
                                    "b_better_on": ["m2"]}]
    assert "no method is best on every metric" in v["text"]
    assert "contradict" in v["text"]
    assert v["kendall_w"] == pytest.approx(0.0)
