"""Public entry points: :func:`explain` (maps plus everything a stage needs) and :func:`cam`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.explain.engine import Engine, check_targets
from cnnlens.explain.layers import resolve_layer
from cnnlens.explain.methods import METHODS, normalize_maps, upsample_maps
from cnnlens.explain.state import preserved_model_state

DEFAULT_MEMORY_BUDGET_MB = 32.0

Targets = int | Sequence[int] | Tensor | None


@dataclass(frozen=True)
class CamResult:
    """Maps and what they explain; all tensors are detached, on the input's device."""

    maps: Tensor  # (N, *input_spatial) float32, upsampled/normalised as requested
    raw: Tensor  # (N, *layer_spatial) ReLU'd map before upsampling or normalisation
    targets: Tensor  # (N,) class explained per sample
    predicted: Tensor  # (N,) argmax of the model output
    scores: Tensor  # (N,) target score (logit or probability, see ``score``)
    method: str
    layer: str
    score: str
    seconds: float


def explain(
    model: nn.Module,
    x: Tensor,
    *,
    layer: str,
    method: str = "gradcam",
    targets: Targets = None,
    score: str = "logit",
    batch_size: int | None = None,
    upsample: bool = True,
    normalize: bool = True,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
) -> CamResult:
    """Class activation maps of ``model`` at ``layer`` for inputs ``(N, C, *spatial)``.

    ``targets``: None (predicted class), one int for all samples, or one index per sample.
    ``score``: differentiate/ablate the ``"logit"`` (default) or the softmax ``"prob"``.
    Work runs in chunks whose largest activation stays under ``memory_budget_mb`` (and at
    most ``batch_size`` samples); results do not depend on the chunking. The model's
    train/eval flags, ``requires_grad`` and ``.grad`` are left as found; no hook survives.
    """
    spec = METHODS.get(method)
    if spec is None:
        raise unknown_choice("CAM method", method, METHODS)
    if not isinstance(x, Tensor) or x.dim() not in (3, 4, 5):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise CnnlensError(
            f"CAM input must be a tensor (N, C, L), (N, C, H, W) or (N, C, D, H, W); got {shape}"
        )
    if not x.is_floating_point():
        raise CnnlensError(f"CAM input must be floating point, got dtype {x.dtype}")
    module = resolve_layer(model, layer)
    n = x.shape[0]
    wanted = check_targets(targets, n)
    engine = Engine(
        model, layer, module, score=score, memory_budget_mb=memory_budget_mb, batch_size=batch_size
    )
    x = x.detach()
    if x.is_inference():
        x = x.clone()
    start = time.perf_counter()
    raws: list[Tensor] = []
    outs: list[tuple[Tensor, Tensor, Tensor]] = []
    with preserved_model_state(model):
        for sl in engine.chunks(x):
            ctx = engine.capture(
                x[sl],
                None if wanted is None else wanted[sl],
                need_grad=spec.uses_gradients,
                probe=sl.start == 0,
            )
            with torch.no_grad():
                raws.append(torch.relu(spec.compute(ctx)).float())
            outs.append((ctx.targets, ctx.logits.argmax(dim=1), ctx.scores))
            del ctx
    if not raws:
        raise CnnlensError("CAM input has no samples (N = 0)")
    raw = torch.cat(raws)
    maps = upsample_maps(raw, tuple(x.shape[2:])) if upsample else raw
    if normalize:
        maps = normalize_maps(maps)
    return CamResult(
        maps=maps,
        raw=raw,
        targets=torch.cat([o[0] for o in outs]),
        predicted=torch.cat([o[1] for o in outs]),
        scores=torch.cat([o[2] for o in outs]).float(),
        method=method,
        layer=layer,
        score=score,
        seconds=time.perf_counter() - start,
    )


def cam(
    model: nn.Module,
    x: Tensor,
    *,
    layer: str,
    method: str = "gradcam",
    targets: Targets = None,
    score: str = "logit",
    batch_size: int | None = None,
    upsample: bool = True,
    normalize: bool = True,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
) -> Tensor:
    """Just the maps of :func:`explain`: ``(N, *input_spatial)`` float32 by default."""
    return explain(
        model,
        x,
        layer=layer,
        method=method,
        targets=targets,
        score=score,
        batch_size=batch_size,
        upsample=upsample,
        normalize=normalize,
        memory_budget_mb=memory_budget_mb,
    ).maps
