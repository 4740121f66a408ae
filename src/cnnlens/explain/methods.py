"""The CAM methods: small functions over :class:`LayerContext` (DESIGN §5).

Each returns the map *before* the final ReLU at layer resolution, ``(n, *layer_spatial)``;
the caller applies ReLU, upsampling and normalisation. Gradient methods only read ``A`` and
``g``; Ablation- and Score-CAM batch their extra evaluations through the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlens.explain.context import LayerContext, Reused
from cnnlens.explain.options import METHOD_NAMES

# pytorch-grad-cam upsamples Score-CAM masks with UpsamplingBilinear2d (align_corners=True);
# we follow it so the maps agree, and say so in the docs.
SCORECAM_ALIGN_CORNERS = True


@dataclass(frozen=True)
class CamMethod:
    """A CAM method: its function, whether it needs ``g``, and a one-line description.

    ``extra_passes``: it runs the network again through the context (Ablation-, Score-CAM),
    in chunks the engine plans with a probe pass that the other methods can skip.
    """

    name: str
    compute: Callable[[LayerContext], Tensor]
    uses_gradients: bool
    description: str
    extra_passes: bool = False


def _spatial(a: Tensor) -> tuple[int, ...]:
    return tuple(range(2, a.dim()))


def _weighted_sum(weights: Tensor, acts: Tensor) -> Tensor:
    """Σ_k w_k A_k without materialising the (n, K, *S) product.

    One batched matrix product, ``(n, 1, K) @ (n, K, S)``: what ``einsum("nk,nks->ns")``
    runs, without its parsing and permutes (same kernel, same values).
    """
    n, k = acts.shape[:2]
    flat = torch.bmm(weights.to(acts.dtype).unsqueeze(1), acts.reshape(n, k, -1))
    return flat.reshape(n, *acts.shape[2:])


def _channel_sum(prod: Tensor) -> Tensor:
    """Σ_k of a fresh ``(n, K, *S)`` product, adding channel after channel.

    ``einsum("nks,nks->ns")`` did this contraction as n·S tiny dot products, after copying
    both operands into a permuted layout: several times the cost of the whole CAM on small
    layers. Adding one channel at a time, in channel order from 0, rounds as torch's loop for
    those small dot products does (maps bit-identical to the einsum's at the study's layers,
    K = 25 and 64); K in-place adds cost little next to the network even for K in the
    thousands.
    """
    out = prod.new_zeros((prod.shape[0], *prod.shape[2:]))
    for channel in prod.unbind(1):
        out.add_(channel)
    return out


def _grads(ctx: LayerContext) -> Tensor:
    if ctx.gradients is None:  # pragma: no cover - engine guarantees it for gradient methods
        raise RuntimeError("this method needs gradients")
    return ctx.gradients


def gradcam(ctx: LayerContext) -> Tensor:
    """Grad-CAM: w_k = mean over positions of g."""
    return _weighted_sum(_grads(ctx).mean(dim=_spatial(ctx.activations)), ctx.activations)


def gradcampp(ctx: LayerContext) -> Tensor:
    """Grad-CAM++ closed form: α = g² / (2g² + Σ_S A · g³) (0 where undefined), w = Σ α·ReLU(g).

    Where g > 0, α·ReLU(g) = g / (2 + Σ_S A · g), and it is 0 elsewhere: that form takes a
    third of the passes over (n, K, *S) tensors, which matters when the CAM is as cheap as
    the network. A zero denominator (only possible if Σ_S A < 0) falls back to the masked form.
    """
    a, g = ctx.activations, _grads(ctx)
    dims = _spatial(a)
    total = a.sum(dim=dims, keepdim=True)
    pos = g.clamp(min=0)
    # pos / (2 + Σ_S A · pos), the quotient written over pos: one (n, K, *S) temporary less.
    w = pos.div_(torch.addcmul(torch.full((), 2.0, dtype=g.dtype), total, pos)).sum(dim=dims)
    if not bool(torch.isfinite(w).all()):
        denom = 2 + total * g
        ok = (g > 0) & (denom != 0)
        w = torch.where(ok, g / torch.where(ok, denom, torch.ones_like(denom)), 0.0).sum(dims)
    return _weighted_sum(w, a)


def xgradcam(ctx: LayerContext) -> Tensor:
    """XGrad-CAM: w_k = Σ_S g·A / Σ_S A (0 for an all-zero channel)."""
    a, g = ctx.activations, _grads(ctx)
    n, k = a.shape[:2]
    total = a.sum(dim=_spatial(a))
    num = torch.einsum("nks,nks->nk", g.reshape(n, k, -1), a.reshape(n, k, -1))
    ok = total != 0
    w = torch.where(ok, num / torch.where(ok, total, torch.ones_like(total)), 0.0)
    return _weighted_sum(w, a)


def hirescam(ctx: LayerContext) -> Tensor:
    """HiRes-CAM: Σ_k g·A, position by position (no averaging of the gradient)."""
    a, g = ctx.activations, _grads(ctx)
    return _channel_sum(g * a)


def layercam(ctx: LayerContext) -> Tensor:
    """Layer-CAM: Σ_k ReLU(g)·A, position by position."""
    a, g = ctx.activations, _grads(ctx)
    return _channel_sum(g.clamp(min=0).mul_(a))


def ablationcam(ctx: LayerContext) -> Tensor:
    """Ablation-CAM: w_k = (y − y_k) / y, y_k with channel k of A set to zero.

    Only the network after the layer is re-run, on batches of ablated activations
    (see :meth:`LayerContext.ablated_scores`).
    """
    a = ctx.activations
    n = a.shape[0]
    ablated = ctx.ablated_scores()
    y = ctx.scores.view(n, 1)
    ok = y != 0
    w = torch.where(ok, (y - ablated) / torch.where(ok, y, torch.ones_like(y)), 0.0)
    return _weighted_sum(w, a)


def scorecam(ctx: LayerContext) -> Tensor:
    """Score-CAM: softmax over channels of the score of the input masked by each channel.

    Masks are the channel maps upsampled to the input size and min-max normalised (a
    constant channel gives an all-zero mask); K forward passes per sample, batched.
    """
    a, x = ctx.activations, ctx.x
    n, k = a.shape[:2]
    rows = torch.arange(n * k, device=a.device)
    mode = _MODES[x.dim() - 2]

    buffer = Reused(x)

    def build(sl: slice) -> Tensor:
        r = rows[sl]
        maps = a[r // k, r % k].unsqueeze(1)
        if maps.shape[2:] != x.shape[2:]:
            maps = F.interpolate(
                maps, size=x.shape[2:], mode=mode, align_corners=SCORECAM_ALIGN_CORNERS
            )
        masks = normalize_maps(maps)
        return torch.mul(x[(r // k).to(x.device)], masks.to(x.dtype), out=buffer.get(r.numel()))

    scores = ctx.input_scores(rows // k, build).view(n, k)
    return _weighted_sum(torch.softmax(scores, dim=1), a)


def eigencam(ctx: LayerContext) -> Tensor:
    """Eigen-CAM: projection of the centred activations on their first principal component.

    The component is the top eigenvector of the K×K covariance (cheaper than an SVD of the
    S×K matrix). Its sign is free; we pick the one that correlates positively with the mean
    activation, so high activations read as salient (class-agnostic, no targets used).
    """
    a = ctx.activations
    n, k = a.shape[:2]
    m = a.reshape(n, k, -1).double()  # (n, K, S)
    m = m - m.mean(dim=2, keepdim=True)
    _, vecs = torch.linalg.eigh(m @ m.transpose(1, 2))  # ascending eigenvalues
    top = vecs[:, :, -1]  # (n, K)
    proj = torch.einsum("nks,nk->ns", m, top)
    sign = torch.where((proj * m.mean(dim=1)).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    return (proj * sign).to(a.dtype).reshape(n, *a.shape[2:])


_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def normalize_maps(maps: Tensor) -> Tensor:
    """Per-sample min-max to [0, 1] over all but the first dim; constant maps become 0.

    One pass finds both extremes and the zeroing of constant maps is done in place: on
    small maps the call costs a few kernel launches, which add up over many calls.
    """
    flat = maps.reshape(maps.shape[0], -1)
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)
    span = hi - lo
    ok = span > 0
    out = (flat - lo) / torch.where(ok, span, torch.ones_like(span))
    return out.masked_fill_(~ok, 0.0).reshape(maps.shape)


def upsample_maps(maps: Tensor, size: tuple[int, ...]) -> Tensor:
    """Linear / bilinear / trilinear resize of (n, *S) maps, ``align_corners=False``."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    mode = _MODES[len(size)]
    return F.interpolate(maps.unsqueeze(1), size=size, mode=mode, align_corners=False)[:, 0]


_ALL = {
    m.name: m
    for m in (
        CamMethod("gradcam", gradcam, True, "Grad-CAM: channel weights = mean gradient"),
        CamMethod("gradcampp", gradcampp, True, "Grad-CAM++: higher-order gradient weights"),
        CamMethod("ablationcam", ablationcam, False, "Ablation-CAM: score drop per channel",
                  extra_passes=True),
        CamMethod("xgradcam", xgradcam, True, "XGrad-CAM: activation-normalised gradients"),
        CamMethod("hirescam", hirescam, True, "HiRes-CAM: element-wise gradient × activation"),
        CamMethod("layercam", layercam, True, "Layer-CAM: element-wise ReLU(gradient) × act."),
        CamMethod("scorecam", scorecam, False, "Score-CAM: score of the input masked by channel",
                  extra_passes=True),
        CamMethod("eigencam", eigencam, False, "Eigen-CAM: first principal component"),
    )
}
#: The methods by name, in :data:`cnnlens.explain.options.METHOD_NAMES` order (the names are
#: declared there, torch-free, for the CLI).
METHODS: dict[str, CamMethod] = {name: _ALL[name] for name in METHOD_NAMES}
if set(_ALL) != set(METHOD_NAMES):  # pragma: no cover - a method added in one place only
    raise ImportError(f"CAM methods {sorted(set(_ALL) ^ set(METHOD_NAMES))} are implemented "
                      "or named, not both")
