"""Model-randomization sanity check (Adebayo et al. 2018, cascading variant).

A map that explains the *model* must change when the model's weights are replaced by noise.
Starting from the output layer and moving down, each parameterised layer is re-drawn in
turn (cumulatively) on a copy of the model, maps are recomputed for the same samples and
targets, and compared with the trained model's maps by Spearman rank correlation.

One random draw is one sample of a random model: on the README's MNIST-1D run Grad-CAM++
ends at 0.49 with seed 0 and at 0.52 and 0.63 with seeds 1 and 2. :func:`sanity_check`
therefore repeats the cascade over several seeds and flags a method only when the whole
interval of its final correlation lies at or above the threshold.

Two choices are the caller's (the reference implementation, Quantus's ``MPRT``, makes the
other ones): how a layer is re-drawn (``normal``: N(0, std²) of the trained tensor, ours;
``reset``: the layer's own ``reset_parameters()``, i.e. PyTorch's Kaiming-uniform init,
2–22× smaller than trained weights, seeded as Quantus 0.6.0 seeds it), and what a constant
map scores (``zero``: it shares no rank information; ``nan``: undefined, as scipy and Quantus
return, left out of the means).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats as sps
from scipy.stats import rankdata
from torch import Tensor, nn

from cnnlens.errors import CnnlensError
from cnnlens.faithfulness.options import CONSTANT, DRAWS

CamFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
FLAG_THRESHOLD = 0.5
SEEDS: tuple[int, ...] = (0, 1, 2)


def spearman_rows(a: np.ndarray, b: np.ndarray, *, constant: str = "zero") -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b``.

    A constant row shares no rank information with anything: its correlation is 0 with
    ``constant="zero"`` and NaN (scipy's and Quantus's answer) with ``constant="nan"``.
    """
    if constant not in CONSTANT:
        raise CnnlensError(f"constant={constant!r} is invalid; accepted: {', '.join(CONSTANT)}")
    ra = rankdata(a.reshape(a.shape[0], -1), axis=1)
    rb = rankdata(b.reshape(b.shape[0], -1), axis=1)
    ra = ra - ra.mean(axis=1, keepdims=True)
    rb = rb - rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    num = (ra * rb).sum(axis=1)
    fill = 0.0 if constant == "zero" else np.nan
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), fill)


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of modules that own parameters, output side first (the cascade's order)."""
    names = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(False))]
    return names[::-1]


def _randomize(module: nn.Module, gen: torch.Generator, draw: str, seed: int) -> None:
    """Re-draw a layer's own parameters.

    ``normal``: each tensor from N(0, std²) of its trained values (all-zero ones stay zero).
    ``reset``: ``module.reset_parameters()`` after ``torch.manual_seed(seed + 1)``, as Quantus
    0.6.0 does for every layer, inside ``fork_rng`` so the caller's global RNG is untouched;
    a module without ``reset_parameters`` falls back to ``normal``.
    """
    reset = getattr(module, "reset_parameters", None)
    if draw == "reset" and callable(reset):
        devices = [p.device for p in module.parameters(recurse=False) if p.device.type == "cuda"]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + 1)
            reset()
        return
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
    draw: str = "normal",
    constant: str = "zero",
    original: np.ndarray | None = None,
) -> dict[str, Any]:
    """Spearman correlation of maps before vs after randomizing layers from the top down.

    ``cam_fn(model, x, targets)`` returns maps ``(N, *spatial)``; targets stay fixed (the
    trained model's classes) so only the weights change. The caller's model is not touched:
    randomization happens on a deep copy. ``original`` (the trained model's maps) saves one
    CAM pass when several seeds share it.
    """
    _check(draw, constant)
    if original is None:
        original = cam_fn(model, x, targets).detach().cpu().numpy()
    work = copy.deepcopy(model)
    modules = dict(work.named_modules())
    gen = torch.Generator().manual_seed(seed)
    layers: list[str] = []
    means: list[float] = []
    per_sample: list[np.ndarray] = []
    for name in randomizable_layers(work):
        _randomize(modules[name], gen, draw, seed)
        maps = cam_fn(work, x, targets).detach().cpu().numpy()
        rho = spearman_rows(original, maps, constant=constant)
        layers.append(name)
        per_sample.append(rho)
        means.append(float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"))
    final = means[-1] if means else 1.0
    return {
        "layers": layers,
        "spearman_mean": means,
        "spearman": np.stack(per_sample) if per_sample else np.zeros((0, x.shape[0])),
        "n": int(x.shape[0]),
        "flagged": bool(final >= threshold),
        "threshold": threshold,
        "seed": seed,
        "choices": _choices(draw, constant, threshold),
    }


def _check(draw: str, constant: str) -> None:
    if draw not in DRAWS:
        raise CnnlensError(f"draw={draw!r} is invalid; accepted: {', '.join(DRAWS)}")
    if constant not in CONSTANT:
        raise CnnlensError(f"constant={constant!r} is invalid; accepted: {', '.join(CONSTANT)}")


def _choices(draw: str, constant: str, threshold: float) -> dict[str, str]:
    how = ("each parameter re-drawn from N(0, std^2) of its trained values" if draw == "normal"
           else "each layer's reset_parameters() after torch.manual_seed(seed + 1) (Quantus "
           "0.6.0 MPRT's draw)")
    const = ("0 for a constant map" if constant == "zero"
             else "NaN for a constant map, left out of the means")
    return {
        "order": "cascading, output layer first, cumulative",
        "randomization": how,
        "targets": "fixed to the trained model's targets",
        "similarity": f"Spearman rank correlation per sample ({const}), mean",
        "flag": f"mean correlation >= {threshold} after all layers are randomized",
    }


def seed_interval(values: Sequence[float] | np.ndarray, level: float = 0.95
                  ) -> tuple[float, float, float]:
    """Mean and Student-t interval of per-seed values (one value: a zero-width interval)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size == 1 or float(v.std()) == 0.0:
        return mean, mean, mean
    half = float(sps.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half


def sanity_check(
    model: nn.Module,
    x: Tensor,
    cam_fn: CamFn,
    *,
    targets: Tensor,
    seeds: Sequence[int] = SEEDS,
    threshold: float = FLAG_THRESHOLD,
    draw: str = "normal",
    constant: str = "zero",
    level: float = 0.95,
) -> dict[str, Any]:
    """The cascade repeated over ``seeds``; the verdict reads the interval, not one draw.

    Per layer: the mean over seeds of the per-seed mean correlation, with a Student-t
    interval over seeds. ``verdict`` is ``flagged`` when the final layer's interval lies at
    or above ``threshold`` (the maps survive randomization beyond seed noise), ``passes``
    when it lies below, ``inconclusive`` when it straddles it (add seeds or samples).
    """
    _check(draw, constant)
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise CnnlensError(f"seeds={seeds!r} is invalid; accepted: one or more distinct ints")
    original = cam_fn(model, x, targets).detach().cpu().numpy()
    runs = [cascading_randomization(model, x, cam_fn, targets=targets, seed=s,
                                    threshold=threshold, draw=draw, constant=constant,
                                    original=original) for s in seeds]
    layers = runs[0]["layers"]
    per_seed = np.asarray([r["spearman_mean"] for r in runs], dtype=np.float64)  # (S, L)
    stats = [seed_interval(per_seed[:, j], level) for j in range(len(layers))]
    mean, low, high = stats[-1] if stats else (1.0, 1.0, 1.0)
    verdict = ("flagged" if low >= threshold else "passes" if high < threshold
               else "inconclusive")
    constant_maps = int(sum(int(np.isnan(r["spearman"]).sum()) for r in runs))
    return {
        "layers": layers,
        "spearman_mean": [s[0] for s in stats],
        "spearman_low": [s[1] for s in stats],
        "spearman_high": [s[2] for s in stats],
        "per_seed": per_seed.tolist(),
        "seeds": seeds,
        "n": int(x.shape[0]),
        "final": {"mean": mean, "low": low, "high": high},
        "flagged": verdict == "flagged",
        "verdict": verdict,
        "threshold": threshold,
        "nan_maps": constant_maps,
        "choices": {**_choices(draw, constant, threshold),
                    "seeds": f"{len(seeds)} seeds ({', '.join(map(str, seeds))}); per layer the "
                    f"mean over seeds with a {level:.0%} Student-t interval over seeds",
                    "flag": f"flagged when the final layer's interval lies at or above "
                    f"{threshold}; inconclusive when it straddles it"},
    }


__all__ = ["CONSTANT", "DRAWS", "FLAG_THRESHOLD", "SEEDS", "cascading_randomization",
           "randomizable_layers", "sanity_check", "seed_interval", "spearman_rows"]
