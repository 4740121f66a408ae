"""Intervals, paired tests and per-class breakdowns on hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness import stats as S


def test_bootstrap_constant_and_seeded() -> None:
    c = S.bootstrap_ci(np.full(50, 3.0))
    assert c == {"mean": 3.0, "low": 3.0, "high": 3.0, "n": 50}
    v = np.random.default_rng(0).normal(size=400)
    a, b = S.bootstrap_ci(v, seed=7), S.bootstrap_ci(v, seed=7)
    assert a == b
    assert a["low"] < a["mean"] < a["high"]
    # the percentile interval of a mean is about ±1.96 standard errors wide
    se = v.std(ddof=1) / np.sqrt(v.size)
    assert a["high"] - a["low"] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_empty_and_invalid() -> None:
    assert S.bootstrap_ci(np.array([]))["n"] == 0
    with pytest.raises(CnnlensError, match="level"):
        S.bootstrap_ci(np.ones(3), level=1.5)


def test_mcnemar_exact_hand_value() -> None:
    a = np.array([1, 1, 1, 0, 1])
    b = np.array([0, 0, 0, 0, 1])
    t = S.paired_test(a, b, binary=True)  # 3 discordant, all one way: p = 2 * 0.5**3
    assert t["test"] == "mcnemar-exact"
    assert (t["only_a"], t["only_b"]) == (3, 0)
    assert t["p_value"] == pytest.approx(0.25)
    assert t["mean_diff"] == pytest.approx(0.6)
    assert S.paired_test(a, a, binary=True)["p_value"] == 1.0


def test_wilcoxon_detects_shift_and_identity() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=200)
    assert S.paired_test(a, a)["p_value"] == 1.0
    shifted = S.paired_test(a + 0.5 + 0.1 * rng.normal(size=200), a)
    assert shifted["test"] == "wilcoxon" and shifted["p_value"] < 1e-10
    noise = S.paired_test(a + 0.01 * rng.normal(size=200), a)
    assert noise["p_value"] > 0.01
    with pytest.raises(CnnlensError, match="length"):
        S.paired_test(a, a[:3])


def test_holm_hand_values() -> None:
    assert S.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert S.holm([]) == []


def test_per_class_means() -> None:
    out = S.per_class(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1]), ["a", "b", "c"])
    assert set(out) == {"a", "b"}  # a class without samples is left out
    assert out["a"]["mean"] == 1.5 and out["b"]["mean"] == 3.5 and out["b"]["n"] == 2


def test_verdict_direction() -> None:
    t = {"p_value": 0.001, "p_value_holm": 0.002, "mean_diff": -5.0, "higher_is_better": False}
    assert S.verdict(t) == "better"
    assert S.verdict({**t, "higher_is_better": True}) == "worse"
    assert S.verdict({**t, "p_value_holm": 0.2}) == "no difference"
