"""Deletion and insertion AUC of several maps at once, for inputs that have no label.

The score is the softmax probability of the class each map explains (the predicted class
unless another was asked for), so no label is needed. The curves are exactly those of
:func:`cnnlens.faithfulness.metrics.deletion` and
:func:`~cnnlens.faithfulness.metrics.insertion` (same ranking, same ``round(i * P / steps)``
chunks, same trapezoid), but their two ends are shared: every deletion curve starts at the
unmasked input and every insertion curve ends there, and both meet at the all-baseline
input, which does not depend on the map (for a constant baseline it is even the same tensor
for every sample). Calling the two metric functions per map would score those ends again
for each map and curve; here an input costs ``2 * (steps - 1)`` forward passes per map
(plus one for the ``mean`` baseline's blank) instead of ``2 * (steps + 2)``, which is what
makes a per-input score affordable for hundreds of 224 px images on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlens.device import eval_mode, fast_forward
from cnnlens.errors import CnnlensError
from cnnlens.explain.checks import check_class_bound, match_model_dtype
from cnnlens.faithfulness.options import LABEL_FREE_BASELINE as DEFAULT_BASELINE
from cnnlens.faithfulness.options import LABEL_FREE_STEPS as DEFAULT_STEPS
from cnnlens.faithfulness.scoring import (
    check_baseline,
    check_maps,
    check_steps,
    check_targets,
    device_of,
    fill_value,
    rank_positions,
    removal_probs,
    target_probs,
)

OUTPUTS = ("deletion_auc", "insertion_auc")


def describe(steps: int, baseline: str | float) -> dict[str, str]:
    """The choices behind the numbers, as stated next to them (DESIGN §6)."""
    return {
        "score": "softmax probability of the explained class (the predicted class unless "
                 "a target was given)",
        "order": "positions in descending map order (ties: lower index first)",
        "curve": f"{steps} equal chunks; at step i the first round(i*P/{steps}) positions "
                 "are removed (deletion) or restored (insertion)",
        "baseline": ("removed positions set to the input's per-channel mean"
                     if baseline == "mean" else f"removed positions set to "
                     f"{0.0 if baseline == 'zero' else float(baseline):g}")
                    + " in the input space the model is given, broadcast over channels",
        "auc": "trapezoid over the removed/inserted fraction in [0, 1]; deletion: lower is "
               "better, insertion: higher is better",
    }


def blank_probs(model: nn.Module, x: Tensor, targets: Tensor, baseline: str | float, *,
                batch_size: int | None = None) -> Tensor:
    """Target probability of the all-baseline input: for a constant baseline one forward
    pass serves the whole batch; the ``mean`` baseline differs per sample."""
    if baseline == "mean":
        return target_probs(model, fill_value(x, "mean"), targets, batch_size=batch_size)[0]
    blank = fill_value(x[:1], baseline)
    with eval_mode(model), torch.no_grad():
        logits = fast_forward(model, match_model_dtype(model, blank.to(device_of(model))))
    probs = F.softmax(logits.float(), dim=1)[0].cpu()
    check_class_bound(targets, probs.shape[0])
    return probs[targets.cpu()]


def deletion_insertion(
    model: nn.Module,
    x: Tensor,
    maps: Mapping[str, Tensor],
    targets: Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: str | float = DEFAULT_BASELINE,
    base_probs: Tensor | None = None,
    batch_size: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``{map name: {"deletion_auc": (N,), "insertion_auc": (N,)}}`` for inputs ``x``.

    ``maps[name]`` is ``(N, *spatial)`` at input resolution; ``targets`` the class per
    sample each map explains; ``base_probs`` its probability on ``x`` when already known
    (from the pass that made the maps), else scored here.
    """
    if not maps:
        raise CnnlensError("deletion_insertion needs at least one map")
    baseline = check_baseline(baseline)
    if baseline == "road":
        raise CnnlensError("baseline='road' is not offered for label-free curves; accepted: "
                           "zero, mean or a number")
    checked = {name: check_maps(x, m) for name, m in maps.items()}
    positions = int(np.prod(x.shape[2:]))
    steps = check_steps(steps, positions)
    t = check_targets(targets, x.shape[0])
    assert t is not None
    if base_probs is None:
        base_probs, _ = target_probs(model, x, t, batch_size=batch_size)
    y = torch.as_tensor(base_probs, dtype=torch.float32).reshape(-1).cpu()
    if y.numel() != x.shape[0]:
        raise CnnlensError(f"base_probs has {y.numel()} entries for {x.shape[0]} samples")
    blank = blank_probs(model, x, t, baseline, batch_size=batch_size)
    counts = [round(i * positions / steps) for i in range(steps + 1)]
    frac = np.asarray(counts, dtype=np.float64) / positions
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, m in checked.items():
        ranks = rank_positions(m)
        curves = {mode: torch.empty(x.shape[0], steps + 1) for mode in ("deletion", "insertion")}
        curves["deletion"][:, 0], curves["deletion"][:, -1] = y, blank
        curves["insertion"][:, 0], curves["insertion"][:, -1] = blank, y
        for j in range(1, steps):
            for mode, curve in curves.items():

                def removed(sl: slice, n: int = counts[j], mode: str = mode,
                            ranks: Tensor = ranks) -> Tensor:
                    first = ranks[sl] < n  # the n most salient positions
                    return first if mode == "deletion" else ~first

                curve[:, j] = removal_probs(model, x, t, removed, baseline=baseline,
                                            batch_size=batch_size)
        out[name] = {f"{mode}_auc": np.asarray(np.trapezoid(
            curve.numpy().astype(np.float64), frac, axis=1), dtype=np.float64)
            for mode, curve in curves.items()}
    return out


__all__ = ["DEFAULT_BASELINE", "DEFAULT_STEPS", "OUTPUTS", "blank_probs", "deletion_insertion",
           "describe"]
