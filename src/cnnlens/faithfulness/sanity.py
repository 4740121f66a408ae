"""Model-randomization sanity check (Adebayo et al. 2018, cascading variant).

A map that explains the *model* must change when the model's weights are replaced by noise.
Starting from the output layer and moving down, each parameterised layer is re-drawn in
turn (cumulatively) on a copy of the model, maps are recomputed for the same samples and
targets, and compared with the trained model's maps by Spearman rank correlation. A method
whose maps still correlate after every layer is randomized is flagged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

CamFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
FLAG_THRESHOLD = 0.5


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b``.

    A constant row shares no rank information with anything, so its correlation is defined
    as 0 (scipy would return NaN).
    """
    ra = rankdata(a.reshape(a.shape[0], -1), axis=1)
    rb = rankdata(b.reshape(b.shape[0], -1), axis=1)
    ra = ra - ra.mean(axis=1, keepdims=True)
    rb = rb - rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    num = (ra * rb).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of modules that own parameters, output side first (the cascade's order)."""
    names = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(False))]
    return names[::-1]


def _randomize(module: nn.Module, gen: torch.Generator) -> None:
    """Re-draw each parameter from N(0, std²) of its trained values (all-zero ones stay zero)."""
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.float().std()) if p.numel() > 1 else abs(float(p))
            noise = torch.randn(p.shape, generator=gen) * std
            p.copy_(noise.to(device=p.device, dtype=p.dtype))


def cascading_randomization(
    model: nn.Module,
    x: Tensor,
    cam_fn: CamFn,
    *,
    targets: Tensor,
    seed: int = 0,
    threshold: float = FLAG_THRESHOLD,
) -> dict[str, Any]:
    """Spearman correlation of maps before vs after randomizing layers from the top down.

    ``cam_fn(model, x, targets)`` returns maps ``(N, *spatial)``; targets stay fixed (the
    trained model's classes) so only the weights change. The caller's model is not touched:
    randomization happens on a deep copy.
    """
    original = cam_fn(model, x, targets).detach().cpu().numpy()
    work = copy.deepcopy(model)
    modules = dict(work.named_modules())
    gen = torch.Generator().manual_seed(seed)
    layers: list[str] = []
    means: list[float] = []
    per_sample: list[np.ndarray] = []
    for name in randomizable_layers(work):
        _randomize(modules[name], gen)
        maps = cam_fn(work, x, targets).detach().cpu().numpy()
        rho = spearman_rows(original, maps)
        layers.append(name)
        per_sample.append(rho)
        means.append(float(rho.mean()))
    final = means[-1] if means else 1.0
    return {
        "layers": layers,
        "spearman_mean": means,
        "spearman": np.stack(per_sample) if per_sample else np.zeros((0, x.shape[0])),
        "n": int(x.shape[0]),
        "flagged": bool(final >= threshold),
        "threshold": threshold,
        "choices": {
            "order": "cascading, output layer first, cumulative",
            "randomization": "each parameter re-drawn from N(0, std^2) of its trained values",
            "targets": "fixed to the trained model's targets",
            "similarity": "Spearman rank correlation per sample (0 for a constant map), mean",
            "flag": f"mean correlation >= {threshold} after all layers are randomized",
        },
    }


__all__ = ["FLAG_THRESHOLD", "cascading_randomization", "randomizable_layers", "spearman_rows"]
