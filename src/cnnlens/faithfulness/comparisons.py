"""Which method is better: paired tests between every method, random included, per output."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlens.faithfulness import metrics as M
from cnnlens.faithfulness import stats as S
from cnnlens.faithfulness.options import RANDOM


def pairwise_tests(per_sample: dict[str, dict[str, np.ndarray]], keys: list[str], alpha: float
           ) -> list[dict[str, Any]]:
    """Paired tests: each method vs random and every pair of methods, Holm per metric."""
    labels = list(per_sample)
    methods = [m for m in labels if m != RANDOM]
    pairs = [(m, RANDOM) for m in methods if RANDOM in labels]
    pairs += [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]]
    out: list[dict[str, Any]] = []
    for key in keys:
        spec = M.OUTPUTS[key.partition("@")[0]]
        group = []
        for a, b in pairs:
            t = S.paired_test(per_sample[a][key], per_sample[b][key], binary=spec.binary)
            t.update(metric=key, a=a, b=b, higher_is_better=spec.higher_is_better,
                     mean_diff_scaled=t["mean_diff"] * spec.scale)
            group.append(t)
        for t, p in zip(group, S.holm([t["p_value"] for t in group]), strict=True):
            t["p_value_holm"] = p
            t["verdict"] = S.verdict(t, alpha=alpha)
        out.extend(group)
    return out


def output_label(key: str) -> str:
    """``drop@0.9`` -> ``drop rate (%), frac 0.9``."""
    base, _, frac = key.partition("@")
    spec = M.OUTPUTS.get(base)
    name = spec.label if spec else base
    return f"{name}, frac {frac}" if frac else name


__all__ = ["output_label", "pairwise_tests"]
