"""Projected time of metrics left out: from this run's own measured cost of a pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlens.faithfulness.options import FaithfulnessOptions
from cnnlens.faithfulness.steps import _measured_pass, passes, projections


def test_a_pass_costs_what_the_metrics_that_ran_took() -> None:
    seconds = {"metrics": {"gradcam": {"drop_increase@0.9": 2.0, "confidence": 2.0,
                                        "road": 100.0},  # road's passes include solves
                           "random": {"drop_increase@0.9": 2.0, "deletion": 2.0 * 21}}}
    assert _measured_pass(seconds, steps=20, n_percentages=5) == pytest.approx(2.0)
    assert _measured_pass({"metrics": {}}, steps=20, n_percentages=5) is None


def test_projections_scale_the_measured_pass_by_passes_and_maps() -> None:
    opts = FaithfulnessOptions(metrics=("drop_increase",))
    x = torch.rand(50, 1, 40)
    seconds = {"forward": 5.0,  # a slow first call: not what a pass costs
               "metrics": {"m": {"drop_increase@0.9": 0.1}, "random": {"drop_increase@0.9": 0.1}}}
    out = projections(nn.Identity(), x, 2, ["drop_increase"], 20, opts, 50, seconds, n_fracs=1)
    assert set(out) == {"confidence", "deletion", "insertion", "road"}
    assert out["deletion"] == pytest.approx(2 * passes("deletion", 20, 5) * 0.1)
    assert out["confidence"] == pytest.approx(2 * 0.1)
    assert out["road"] > 2 * passes("road", 20, 5) * 0.1  # plus the timed imputations
