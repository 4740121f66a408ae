"""What every metric shares: input checks, batched target probabilities, removal baselines.

A removal metric asks "what is the target probability once these positions are gone?";
how they are gone (zeros, the mean, a value, or ROAD's noisy linear imputation) is the
baseline. Imputed inputs are expensive (a sparse solve each), so :class:`ImputedScores`
memoises the probability of every (sample, removed set, target): two metrics that remove
the same positions of the same sample, e.g. the Table I metric at ``frac`` 0.9 and ROAD's
least-relevant-first 10 %, share one solve and one forward pass.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlens.device import eval_mode, fast_forward, inference_rows, is_oom
from cnnlens.errors import CnnlensError
from cnnlens.explain.checks import (
    check_batch_size,
    check_class_bound,
    check_inputs,
    match_model_dtype,
    model_error,
)
from cnnlens.explain.checks import check_targets as _engine_targets
from cnnlens.faithfulness import imputation as imp
from cnnlens.faithfulness.options import BASELINES, check_baseline, check_frac

SCORE = "softmax probability of the target class"


@dataclass
class MetricResult:
    """Per-sample values of one metric plus the choices that define it."""

    metric: str
    values: dict[str, np.ndarray]  # headline outputs and raw scores, each shape (N,)
    choices: dict[str, Any]
    curves: dict[str, np.ndarray] = field(default_factory=dict)



# -- validation ------------------------------------------------------------------------------
def check_steps(steps: int, positions: int) -> int:
    """Deletion/insertion steps: an integer from 1 to the number of positions."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= positions:
        raise CnnlensError(
            f"steps={steps!r} is invalid; accepted: an integer from 1 to {positions} "
            "(the number of input positions)"
        )
    return steps


def check_maps(x: Tensor, maps: Tensor) -> Tensor:
    """Maps must be ``(N, *spatial)`` for inputs ``(N, C, *spatial)``; returns float maps."""
    check_inputs(x)
    want = (x.shape[0], *x.shape[2:])
    if not isinstance(maps, Tensor) or tuple(maps.shape) != want:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise CnnlensError(
            f"maps of shape {shape} do not match inputs {tuple(x.shape)}; "
            f"accepted: {want} (one map per sample at input resolution)"
        )
    maps = maps.detach()
    if not maps.is_floating_point():
        maps = maps.float()  # float64 stays float64: downcasting could create ties
    if not torch.isfinite(maps).all():
        raise CnnlensError("maps contain NaN or infinite values; accepted: finite values")
    return maps


def check_targets(targets: Tensor | Sequence[int] | None, n: int) -> Tensor | None:
    """The CAM engine's target check (ints only, one per sample, >= 0)."""
    return _engine_targets(targets, n)


# -- model scoring ---------------------------------------------------------------------------
def auto_batch(x: Tensor) -> int:
    """Samples per scoring batch when ``batch_size`` is None: the inference chunk size
    (:func:`cnnlens.device.inference_rows`; 224 px images in chunks of 3)."""
    return inference_rows(x)


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


#: Per model and sample shape, the batch size left after an out-of-memory error, so later
#: calls (a metric makes many) start from a size that fitted instead of failing again.
_BATCH_FITS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], int]] = (
    weakref.WeakKeyDictionary())


def target_probs(
    model: nn.Module, x: Tensor, targets: Tensor | None = None, *, batch_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """Softmax probability of the target class per sample (targets default to the argmax)."""
    dev = device_of(model)
    bs = check_batch_size(batch_size) or auto_batch(x)
    fits = _BATCH_FITS.setdefault(model, {})
    sample = tuple(x.shape[1:])
    bs = min(bs, fits.get(sample, bs))
    probs, tgts = [], []
    i, n = 0, x.shape[0]
    with eval_mode(model), torch.no_grad():
        while i < n:
            sl = slice(i, min(n, i + bs))
            try:
                logits = fast_forward(model, match_model_dtype(model, x[sl].to(dev)))
            except RuntimeError as exc:
                # Out of memory: halve the batch for the rest of the call and retry this one.
                if not is_oom(exc):
                    raise model_error(exc, x[sl]) from exc
                if sl.stop - sl.start <= 1:
                    raise
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                bs = fits[sample] = max(1, (sl.stop - sl.start) // 2)
                continue
            p = F.softmax(logits.float(), dim=1)
            t = p.argmax(1) if targets is None else targets[sl].to(dev)
            check_class_bound(t, p.shape[1])
            probs.append(p.gather(1, t[:, None])[:, 0].cpu())
            tgts.append(t.cpu())
            i = sl.stop
    return torch.cat(probs), torch.cat(tgts)


def original_scores(
    model: nn.Module,
    x: Tensor,
    targets: Tensor | Sequence[int] | None,
    base_scores: Tensor | Sequence[float] | None,
    batch_size: int | None,
) -> tuple[Tensor, Tensor]:
    """``(Y, targets)``: scored here, or taken from ``base_scores`` to save a forward pass."""
    t = check_targets(targets, x.shape[0])
    if base_scores is None:
        return target_probs(model, x, t, batch_size=batch_size)
    if t is None:
        raise CnnlensError("base_scores needs targets: give the classes the scores belong to")
    y = torch.as_tensor(base_scores, dtype=torch.float32).reshape(-1).cpu()
    if y.numel() != x.shape[0]:
        raise CnnlensError(
            f"base_scores has {y.numel()} entries for {x.shape[0]} samples; "
            "accepted: one per sample"
        )
    return y, t


def drop_rate(y: Tensor, o: Tensor) -> Tensor:
    """``max(0, (Y - O) / Y)``, defined as 0 where ``Y == 0``."""
    safe = torch.where(y > 0, y, torch.ones_like(y))
    return torch.where(y > 0, torch.clamp((y - o) / safe, min=0.0), torch.zeros_like(y))


def masked_probs(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    make: Callable[[Tensor, slice], Tensor],
    batch_size: int | None,
) -> Tensor:
    """Score ``make(x_batch, batch_slice)`` per batch, so masked copies never all sit in memory."""
    bs = batch_size or auto_batch(x)
    out = []
    for i in range(0, x.shape[0], bs):
        sl = slice(i, i + bs)
        p, _ = target_probs(model, make(x[sl], sl), targets[sl], batch_size=bs)
        out.append(p)
    return torch.cat(out)


def rank_positions(maps: Tensor) -> Tensor:
    """Rank of every position in descending map order (ties: lower index first)."""
    flat = maps.reshape(maps.shape[0], -1)
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order).contiguous())
    return ranks.reshape(maps.shape)


# -- removal baselines -------------------------------------------------------------------------
def fill_value(x: Tensor, baseline: str | float) -> Tensor:
    """The values removed positions take for a constant baseline (not ``road``)."""
    if isinstance(baseline, int | float) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        dims = tuple(range(2, x.dim()))
        return x.mean(dim=dims, keepdim=True).expand_as(x)
    raise CnnlensError(f"baseline={baseline!r} is invalid; accepted: zero, mean or a number")


#: Samples imputed together (the image solves share the threads), then scored in batches.
IMPUTE_GROUP = 8


class ImputedScores:
    """Target probabilities after noisy linear imputation, memoised per removal.

    The key is (model, sample content, removed set, target), so the same removal of the same
    sample is solved and scored once, whichever metric asks. ``solved``/``reused`` count the
    work done and saved. One instance serves one trained model at a time.
    """

    def __init__(self, *, noise: float = imp.NOISE, seed: int = 0) -> None:
        self.noise = imp.check_noise(noise)
        self.seed = int(seed)
        self._cache: dict[tuple[int, int, int, int], float] = {}
        self.solved = 0
        self.reused = 0

    def describe(self) -> str:
        return f"{imp.DESCRIPTION} (sigma = {self.noise:g}, seed {self.seed})"

    def probs(self, model: nn.Module, x: Tensor, removed: Tensor, targets: Tensor, *,
              batch_size: int | None = None) -> Tensor:
        """Probability of ``targets`` on ``x`` with ``removed`` positions imputed, per sample."""
        bs = batch_size or auto_batch(x)
        xs = x.detach().cpu()
        rem = removed.detach().cpu().numpy().astype(bool)
        keys = [(id(model), imp.digest(xs[i].numpy()), imp.digest(rem[i]), int(targets[i]))
                for i in range(xs.shape[0])]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        self.reused += len(keys) - len(todo)
        group = max(bs, IMPUTE_GROUP)  # solved on several threads, then forwarded in bs
        for j in range(0, len(todo), group):
            idx = torch.as_tensor(todo[j : j + group], dtype=torch.long)
            filled = imp.impute(xs[idx], removed[idx], noise=self.noise, seed=self.seed)
            p, _ = target_probs(model, filled, targets[idx], batch_size=bs)
            for i, v in zip(idx.tolist(), p.tolist(), strict=True):
                self._cache[keys[i]] = v
            self.solved += int(idx.numel())
        return torch.tensor([self._cache[k] for k in keys], dtype=torch.float32)


def removal_probs(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    removed_fn: Callable[[slice], Tensor],
    *,
    baseline: str | float,
    batch_size: int | None,
    imputer: ImputedScores | None = None,
) -> Tensor:
    """Target probability with ``removed_fn(batch_slice)`` positions removed onto ``baseline``.

    ``road`` imputes (through ``imputer``, memoised); the other baselines fill a value.
    """
    bs = batch_size or auto_batch(x)
    if baseline == "road":
        scorer = imputer or ImputedScores()
        out = [scorer.probs(model, x[i : i + bs], removed_fn(slice(i, i + bs)),
                            targets[i : i + bs], batch_size=bs)
               for i in range(0, x.shape[0], bs)]
        return torch.cat(out)

    def make(xb: Tensor, sl: slice) -> Tensor:
        rem = removed_fn(sl).unsqueeze(1)
        return torch.where(rem, fill_value(xb, baseline).to(xb.dtype), xb)

    return masked_probs(model, x, targets, make, bs)


def baseline_choice(baseline: str | float, imputer: ImputedScores | None) -> Any:
    """How removed positions were filled, as stated in the results."""
    if baseline == "road":
        return (imputer or ImputedScores()).describe()
    if baseline == "zero":
        return "zero"
    if baseline == "mean":
        return "per-sample, per-channel mean"
    return float(baseline)


__all__ = ["BASELINES", "SCORE", "ImputedScores", "MetricResult", "auto_batch", "baseline_choice",
           "check_baseline", "check_frac", "check_maps", "check_steps", "check_targets",
           "device_of", "drop_rate", "eval_mode", "fill_value", "masked_probs",
           "original_scores", "rank_positions", "removal_probs", "target_probs"]
