"""Faithfulness metrics as plain functions: model, inputs, maps, targets in; per-sample values out.

All metrics share one set of choices, stated in every result (DESIGN §6: the reference
libraries disagree on each of them):

* the score is the **softmax probability** of the target class (not the logit);
* the target is the model's **predicted class** on the unmasked input unless given;
* masking happens in the **raw input space** the model sees (HMT: pixels in [0, 1]),
  removed positions become the baseline value (zero unless stated), and a mask over
  positions is broadcast over channels;
* drops are **divided by the original score** ``Y``; a sample with ``Y == 0`` has drop 0
  (nothing to lose), which keeps means finite.

Aggregation (means, intervals, tests) lives in :mod:`cnnlens.faithfulness.stats`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlens.errors import CnnlensError
from cnnlens.explain.methods import normalize_maps as _engine_normalize

SCORE = "softmax probability of the target class"
BATCH_ELEMENTS = 2**22  # input elements per scoring batch when batch_size is None (16 MB)


@dataclass
class MetricResult:
    """Per-sample values of one metric plus the choices that define it."""

    metric: str
    values: dict[str, np.ndarray]  # headline outputs and raw scores, each shape (N,)
    choices: dict[str, Any]
    curves: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputSpec:
    """How one per-sample output is aggregated and read."""

    label: str
    scale: float  # the table shows mean * scale (rates in %)
    binary: bool  # 0/1 per sample: paired with McNemar's exact test, else Wilcoxon
    higher_is_better: bool


OUTPUTS: dict[str, OutputSpec] = {
    "drop": OutputSpec("drop rate (%)", 100.0, False, False),
    "increase": OutputSpec("increase rate (%)", 100.0, True, True),
    "avg_drop": OutputSpec("average drop (%)", 100.0, False, False),
    "inc_conf": OutputSpec("increase in confidence (%)", 100.0, True, True),
    "deletion_auc": OutputSpec("deletion AUC", 1.0, False, False),
    "insertion_auc": OutputSpec("insertion AUC", 1.0, False, True),
}


# -- validation ------------------------------------------------------------------------------
def check_frac(frac: float) -> float:
    """``frac`` is the kept fraction of positions: (0, 1]."""
    if isinstance(frac, bool) or not isinstance(frac, int | float) or not 0.0 < frac <= 1.0:
        raise CnnlensError(f"frac={frac!r} is invalid; accepted: a number in (0, 1]")
    return float(frac)


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
    if x.dim() < 3:
        raise CnnlensError(
            f"inputs of shape {tuple(x.shape)} are invalid; accepted: (N, C, *spatial)"
        )
    want = (x.shape[0], *x.shape[2:])
    if tuple(maps.shape) != want:
        raise CnnlensError(
            f"maps of shape {tuple(maps.shape)} do not match inputs {tuple(x.shape)}; "
            f"accepted: {want} (one map per sample at input resolution)"
        )
    maps = maps.detach()
    if not maps.is_floating_point():
        maps = maps.float()  # float64 stays float64: downcasting could create ties
    if not torch.isfinite(maps).all():
        raise CnnlensError("maps contain NaN or infinite values; accepted: finite values")
    return maps


def check_targets(targets: Tensor | Sequence[int] | None, n: int) -> Tensor | None:
    if targets is None:
        return None
    t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if t.numel() != n:
        raise CnnlensError(
            f"targets has {t.numel()} entries for {n} samples; accepted: one per sample"
        )
    return t


# -- model scoring ---------------------------------------------------------------------------
@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Score in eval mode and restore every module's train flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def auto_batch(x: Tensor) -> int:
    """Samples per batch so one batch holds about ``BATCH_ELEMENTS`` input values.

    Tiny 1-D signals go through in one batch; 224 px images in batches of ~27.
    """
    per = max(1, int(np.prod(x.shape[1:])))
    return max(1, min(int(x.shape[0]) or 1, BATCH_ELEMENTS // per))


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def target_probs(
    model: nn.Module, x: Tensor, targets: Tensor | None = None, *, batch_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """Softmax probability of the target class per sample (targets default to the argmax)."""
    dev = _device(model)
    bs = batch_size or auto_batch(x)
    probs, tgts = [], []
    with eval_mode(model), torch.no_grad():
        for i in range(0, x.shape[0], bs):
            p = F.softmax(model(x[i : i + bs].to(dev)).float(), dim=1)
            t = p.argmax(1) if targets is None else targets[i : i + bs].to(dev)
            if int(t.max()) >= p.shape[1] or int(t.min()) < 0:
                raise CnnlensError(f"targets must be class indices in [0, {p.shape[1] - 1}]")
            probs.append(p.gather(1, t[:, None])[:, 0].cpu())
            tgts.append(t.cpu())
    return torch.cat(probs), torch.cat(tgts)


def _original(
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


def _drop(y: Tensor, o: Tensor) -> Tensor:
    """``max(0, (Y - O) / Y)``, defined as 0 where ``Y == 0``."""
    safe = torch.where(y > 0, y, torch.ones_like(y))
    return torch.where(y > 0, torch.clamp((y - o) / safe, min=0.0), torch.zeros_like(y))


def _masked_probs(
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


# -- the study's drop / increase rate ------------------------------------------------------
def top_frac_mask(maps: Tensor, frac: float) -> Tensor:
    """The study's hard mask: ``L > thr`` with ``thr`` the ``int(P·frac)``-th largest value.

    0-based in descending order, so at most ``int(P·frac)`` positions are kept (fewer when
    values tie at ``thr``, because the comparison is strict). ``frac = 1`` makes the index
    ``P``, one past the end: ``thr = -inf`` and every position is kept.
    """
    frac = check_frac(frac)
    flat = maps.reshape(maps.shape[0], -1)
    p = flat.shape[1]
    k = int(p * frac)
    if k >= p:
        return torch.ones_like(maps, dtype=torch.bool)
    thr = flat.sort(dim=1, descending=True).values[:, k : k + 1]
    return (flat > thr).reshape(maps.shape)


def drop_increase(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    frac: float,
    targets: Tensor | Sequence[int] | None = None,
    base_scores: Tensor | Sequence[float] | None = None,
    batch_size: int | None = None,
) -> MetricResult:
    """The study's Table I metric (DESIGN §6): keep the top-``frac`` positions, zero the rest.

    ``drop = max(0, (Y − O) / Y)`` and ``increase = 1[O > Y]`` per sample, where ``Y`` is the
    target probability on ``x`` and ``O`` on ``x · mask``. ``base_scores`` (``Y`` for the
    given ``targets``, e.g. from an earlier metric) saves one forward pass.
    """
    frac = check_frac(frac)
    maps = check_maps(x, maps)
    y, t = _original(model, x, targets, base_scores, batch_size)

    def make(xb: Tensor, sl: slice) -> Tensor:
        return xb * top_frac_mask(maps[sl], frac).unsqueeze(1).to(xb.dtype)

    o = _masked_probs(model, x, t, make, batch_size)
    # ties at thr keep fewer than frac of the positions (a ReLU'd map is often 0 on a
    # large area): the fraction actually kept is part of the result
    kept = top_frac_mask(maps, frac).reshape(maps.shape[0], -1).double().mean(dim=1)
    return MetricResult(
        metric="drop_increase",
        values={
            "drop": _drop(y, o).numpy(),
            "increase": (o > y).float().numpy(),
            "score": y.numpy(),
            "masked_score": o.numpy(),
            "kept": kept.numpy(),
            "target": t.numpy(),
        },
        choices={
            "score": SCORE,
            "mask": f"hard: keep L > thr, thr = the int(P*frac)-th largest of L (0-based), "
            f"strict; frac = {frac:g}; frac = 1 keeps every position",
            "frac": frac,
            "masking": "x * mask in raw input space, broadcast over channels (removed = 0)",
            "drop": "max(0, (Y - O) / Y), 0 where Y = 0",
            "increase": "1[O > Y]",
        },
    )


# -- Average Drop / Increase in Confidence (Grad-CAM++) -----------------------------------
def average_drop_increase(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    targets: Tensor | Sequence[int] | None = None,
    base_scores: Tensor | Sequence[float] | None = None,
    batch_size: int | None = None,
) -> MetricResult:
    """Grad-CAM++'s soft-mask metrics: ``x' = x · L`` with ``L`` in [0, 1].

    Maps outside [0, 1] are an error rather than silently rescaled: the metric depends on
    the scale, so the caller decides how to normalise (see :func:`normalize_maps`).
    """
    maps = check_maps(x, maps)
    if maps.numel() and (float(maps.min()) < -1e-6 or float(maps.max()) > 1 + 1e-6):
        raise CnnlensError(
            f"maps range [{float(maps.min()):.3g}, {float(maps.max()):.3g}] is invalid for the "
            "soft mask; accepted: values in [0, 1] (normalise per sample first)"
        )
    maps = maps.clamp(0.0, 1.0)
    y, t = _original(model, x, targets, base_scores, batch_size)

    def make(xb: Tensor, sl: slice) -> Tensor:
        return xb * maps[sl].unsqueeze(1).to(xb.dtype)

    o = _masked_probs(model, x, t, make, batch_size)
    return MetricResult(
        metric="confidence",
        values={
            "avg_drop": _drop(y, o).numpy(),
            "inc_conf": (o > y).float().numpy(),
            "score": y.numpy(),
            "masked_score": o.numpy(),
            "target": t.numpy(),
        },
        choices={
            "score": SCORE,
            "mask": "soft: x * L with L in [0, 1] (Grad-CAM++ paper)",
            "masking": "raw input space, broadcast over channels",
            "avg_drop": "max(0, (Y - O) / Y), 0 where Y = 0",
            "inc_conf": "1[O > Y]",
        },
    )


# -- deletion / insertion ------------------------------------------------------------------
BASELINES = ("zero", "mean")


def _baseline(x: Tensor, baseline: str | float) -> Tensor:
    if isinstance(baseline, int | float) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        dims = tuple(range(2, x.dim()))
        return x.mean(dim=dims, keepdim=True).expand_as(x)
    raise CnnlensError(f"baseline={baseline!r} is invalid; accepted: zero, mean or a number")


def _rank(maps: Tensor) -> Tensor:
    """Rank of every position in descending map order (ties: lower index first)."""
    flat = maps.reshape(maps.shape[0], -1)
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order).contiguous())
    return ranks.reshape(maps.shape)


def _curve(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    mode: str,
    steps: int,
    baseline: str | float,
    targets: Tensor | Sequence[int] | None,
    batch_size: int | None,
) -> MetricResult:
    maps = check_maps(x, maps)
    positions = int(np.prod(maps.shape[1:]))
    steps = check_steps(steps, positions)
    _baseline(x[:1], baseline)  # validate early
    _, t = target_probs(model, x, check_targets(targets, x.shape[0]), batch_size=batch_size)
    counts = [round(i * positions / steps) for i in range(steps + 1)]
    ranks = _rank(maps)
    scores = torch.empty(x.shape[0], steps + 1)
    for j, n in enumerate(counts):

        def make(xb: Tensor, sl: slice, n: int = n) -> Tensor:
            first = (ranks[sl] < n).unsqueeze(1)  # the n most salient positions
            base = _baseline(xb, baseline)
            if mode == "deletion":
                return torch.where(first, base, xb)
            return torch.where(first, xb, base)

        scores[:, j] = _masked_probs(model, x, t, make, batch_size)
    frac_axis = np.asarray(counts, dtype=np.float64) / positions
    s = scores.numpy().astype(np.float64)
    auc = np.asarray(np.trapezoid(s, frac_axis, axis=1), dtype=np.float64)
    name = f"{mode}_auc"
    verb = "set to the baseline" if mode == "deletion" else "restored from the baseline"
    return MetricResult(
        metric=mode,
        values={name: auc, "target": t.numpy()},
        choices={
            "score": SCORE,
            "order": "positions in descending map order (ties: lower index first)",
            "curve": f"{steps} equal chunks; at step i the first round(i*P/{steps}) positions "
            f"are {verb}",
            "baseline": baseline if isinstance(baseline, str) else float(baseline),
            "masking": "raw input space, broadcast over channels",
            "auc": "trapezoid over the removed/inserted fraction in [0, 1]",
        },
        curves={"fraction": frac_axis, "scores": s},
    )


def deletion(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    steps: int = 20,
    baseline: str | float = "zero",
    targets: Tensor | Sequence[int] | None = None,
    batch_size: int | None = None,
) -> MetricResult:
    """Deletion curve (RISE): remove the most salient positions first; lower AUC is better."""
    return _curve(model, x, maps, mode="deletion", steps=steps, baseline=baseline,
                  targets=targets, batch_size=batch_size)


def insertion(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    *,
    steps: int = 20,
    baseline: str | float = "zero",
    targets: Tensor | Sequence[int] | None = None,
    batch_size: int | None = None,
) -> MetricResult:
    """Insertion curve (RISE): restore the most salient positions first; higher AUC is better."""
    return _curve(model, x, maps, mode="insertion", steps=steps, baseline=baseline,
                  targets=targets, batch_size=batch_size)


# -- maps ------------------------------------------------------------------------------------
def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each map to [0, 1] in float32; a constant map becomes all zeros.

    The same normalisation the CAM engine applies, so saved and recomputed maps agree.
    """
    return _engine_normalize(maps.float())


def random_maps(
    shape: Sequence[int], *, seed: int = 0, cells: Sequence[int] | None = None
) -> Tensor:
    """Uniform random maps ``(N, *spatial)`` in [0, 1], the baseline every method must beat.

    With ``cells`` (e.g. the CAM layer's spatial size) the noise is drawn on that coarse grid
    and upsampled (linear/bilinear), so it is as smooth as a CAM; without, it is i.i.d. per
    position.
    """
    n, *spatial = (int(s) for s in shape)
    gen = torch.Generator().manual_seed(seed)
    if cells is None or tuple(cells) == tuple(spatial):
        return torch.rand((n, *spatial), generator=gen)
    if len(cells) != len(spatial):
        raise CnnlensError(f"cells={tuple(cells)} does not match map dims {tuple(spatial)}")
    coarse = torch.rand((n, 1, *(int(c) for c in cells)), generator=gen)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
    fine = F.interpolate(coarse, size=tuple(spatial), mode=mode, align_corners=False)[:, 0]
    return normalize_maps(fine)


# -- registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSpec:
    """A metric family: what it computes and which per-sample outputs it yields."""

    fn: Callable[..., MetricResult]
    outputs: tuple[str, ...]
    uses_frac: bool
    description: str


METRICS: dict[str, MetricSpec] = {
    "drop_increase": MetricSpec(drop_increase, ("drop", "increase"), True,
                                "the study's drop / increase rate (top-frac hard mask)"),
    "confidence": MetricSpec(average_drop_increase, ("avg_drop", "inc_conf"), False,
                             "Average Drop / Increase in Confidence (soft mask, Grad-CAM++)"),
    "deletion": MetricSpec(deletion, ("deletion_auc",), False, "deletion curve AUC (RISE)"),
    "insertion": MetricSpec(insertion, ("insertion_auc",), False, "insertion curve AUC (RISE)"),
}


def output_key(output: str, frac: float | None) -> str:
    """Column name of an output: ``drop@0.9`` for frac-dependent ones."""
    return f"{output}@{frac:g}" if frac is not None else output


__all__ = [
    "BASELINES",
    "METRICS",
    "OUTPUTS",
    "MetricResult",
    "MetricSpec",
    "OutputSpec",
    "auto_batch",
    "average_drop_increase",
    "check_frac",
    "check_maps",
    "check_steps",
    "deletion",
    "drop_increase",
    "insertion",
    "normalize_maps",
    "output_key",
    "random_maps",
    "target_probs",
    "top_frac_mask",
]
