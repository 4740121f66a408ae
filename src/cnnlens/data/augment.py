"""The study's train-time augmentation (Keras ``ImageDataGenerator``), seeded and batched.

The study ran ``ImageDataGenerator(shear_range=0.1, rotation_range=15, horizontal_flip=True,
vertical_flip=True)`` under Keras 2.4, whose ``keras_preprocessing`` draws
``shear ~ U(-0.1, 0.1)`` and converts it with ``np.deg2rad``: the shear angle is in
**degrees** (Keras 2.0 and early keras_preprocessing took radians; the study's version did
not). Rotation is ``U(-15, 15)`` degrees; each flip has probability 1/2 and is applied after
the affine map; pixels from outside the image repeat the edge (Keras ``fill_mode='nearest'``)
and sampling is bilinear (Keras ``order=1``). Matrices follow ``apply_affine_transform``:
``M = R(theta) @ S(shear)`` on (row, col) coordinates about the image centre.

Random parameters come from ``(seed, epoch, index)`` alone, so any sample of any epoch can be
regenerated: a resumed run or a different DataLoader worker count sees the same images.

``dihedral`` (the ``best`` HMT recipe) draws one of the 8 symmetries of the square: a
quarter-turn count and flips, all exact pixel permutations. Histology has no preferred
orientation, so these are label-preserving and cost no interpolation blur or border fill.
``dihedral+stain`` adds stain jitter: H&E tiles from different slides differ mostly in how
much of each stain took, so each tile's optical densities are unmixed into haematoxylin,
eosin and a residual (the Ruifrok-Johnston colour deconvolution), each scaled and shifted a
little, and mixed back (the "HED-light" augmentation of Tellez et al. 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnlens.data.augmentations import AugmentConfig
from cnnlens.errors import CnnlensError


@dataclass(frozen=True)
class AffineParams:
    """One sample's draw: rotation and shear in degrees, and the two flips."""

    rotation_deg: float = 0.0
    shear_deg: float = 0.0
    hflip: bool = False
    vflip: bool = False
    quarter_turns: int = 0  # counter-clockwise, applied before the flips
    stain_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # H, E, residual
    stain_shift: tuple[float, float, float] = (0.0, 0.0, 0.0)


def sample_params(cfg: AugmentConfig, seed: int, epoch: int, index: int) -> AffineParams:
    """Draw one sample's parameters from a generator seeded by ``(seed, epoch, index)``."""
    if min(seed, epoch, index) < 0:
        raise CnnlensError(
            f"augmentation seed, epoch and index must be >= 0, got {seed}, {epoch}, {index}"
        )
    rng = np.random.default_rng([int(seed), int(epoch), int(index)])
    u = rng.random(5 if cfg.quarter_turns else 4)  # the study's 4 draws stay as they were
    stain: dict[str, tuple[float, float, float]] = {}
    if cfg.stain > 0:  # drawn after the geometry, so those draws stay as they were
        v = (2 * rng.random(6) - 1) * cfg.stain
        stain = {"stain_scale": _triple(1.0 + v[:3]), "stain_shift": _triple(v[3:])}
    return AffineParams(
        rotation_deg=float((2 * u[0] - 1) * cfg.rotation_deg),
        shear_deg=float((2 * u[1] - 1) * cfg.shear_deg),
        hflip=bool(cfg.hflip and u[2] < 0.5),
        vflip=bool(cfg.vflip and u[3] < 0.5),
        quarter_turns=int(u[4] * 4) if cfg.quarter_turns else 0,
        **stain,
    )


def _triple(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


#: Stain vectors (rows: haematoxylin, eosin, residual) in optical density, from
#: Ruifrok & Johnston 2001 (the matrix scikit-image's ``rgb2hed`` inverts).
_HED_FROM_RGB_INV = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_RGB_FROM_HED = torch.from_numpy(_HED_FROM_RGB_INV)
_HED_FROM_RGB = torch.from_numpy(np.linalg.inv(_HED_FROM_RGB_INV))
_MIN_INTENSITY = 1.0 / 255.0  # a pixel of value 0 has infinite optical density


def stain_jitter(x: torch.Tensor, params: Sequence[AffineParams]) -> torch.Tensor:
    """Scale and shift each tile's H, E and residual densities (``(N, 3, H, W)`` in [0, 1]).

    Density is ``-log(rgb)``; the stain amounts are its coordinates in the stain basis. The
    result is clipped to [0, 1]. Identity parameters return ``x`` unchanged.
    """
    if all(p.stain_scale == (1.0, 1.0, 1.0) and p.stain_shift == (0.0, 0.0, 0.0)
           for p in params):
        return x
    if x.shape[1] != 3:
        raise CnnlensError(f"stain jitter needs RGB images (3 channels), got {x.shape[1]}")
    dtype = x.dtype
    scale, shift = (torch.tensor(v, dtype=dtype, device=x.device)[:, :, None, None] for v in (
        [p.stain_scale for p in params], [p.stain_shift for p in params]))
    od = -torch.log(x.clamp_min(_MIN_INTENSITY))
    hed = torch.einsum("nchw,cd->ndhw", od, _HED_FROM_RGB.to(x.device, dtype))
    od = torch.einsum("ndhw,dc->nchw", hed * scale + shift, _RGB_FROM_HED.to(x.device, dtype))
    return torch.exp(-od).clamp_(0.0, 1.0)


def affine_theta(p: AffineParams, height: int, width: int) -> torch.Tensor:
    """The ``(2, 3)`` matrix for ``affine_grid(..., align_corners=True)``.

    Output pixel ``q`` (centred, (row, col)) samples input ``M @ Flip @ q`` with
    ``M = R @ S`` as in Keras; rescaled to normalised coordinates and reordered to (x, y).
    """
    t = math.radians(p.rotation_deg + 90.0 * p.quarter_turns)
    s = math.radians(p.shear_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    shear = np.array([[1.0, -math.sin(s)], [0.0, math.cos(s)]])
    flip = np.diag([-1.0 if p.vflip else 1.0, -1.0 if p.hflip else 1.0])
    half = np.diag([max(height - 1, 1) / 2.0, max(width - 1, 1) / 2.0])
    a = np.linalg.inv(half) @ rot @ shear @ flip @ half  # (row, col) normalised
    theta = np.zeros((2, 3))
    theta[0, 0], theta[0, 1] = a[1, 1], a[1, 0]  # x (col) from (x, y)
    theta[1, 0], theta[1, 1] = a[0, 1], a[0, 0]  # y (row) from (x, y)
    return torch.from_numpy(theta)


def augment_batch(x: torch.Tensor, params: Sequence[AffineParams]) -> torch.Tensor:
    """Transform a batch ``(N, C, H, W)``, one parameter set per sample, in one grid_sample.

    Pure flips and quarter turns are done exactly with ``torch.flip`` / ``torch.rot90``;
    only samples with a rotation or shear are resampled (quarter turns need square images
    when combined with them).
    """
    if x.dim() != 4:
        raise CnnlensError(f"augment_batch expects (N, C, H, W), got shape {tuple(x.shape)}")
    if len(params) != x.shape[0]:
        raise CnnlensError(
            f"augment_batch got {len(params)} parameter sets for {x.shape[0]} images"
        )
    h, w = x.shape[-2:]
    out = x.clone()
    warp = [i for i, p in enumerate(params) if p.rotation_deg != 0 or p.shear_deg != 0]
    for i, p in enumerate(params):
        if i in warp:
            continue
        img = torch.rot90(x[i], p.quarter_turns % 4, (1, 2)) if p.quarter_turns % 4 else x[i]
        dims = [d for d, on in ((1, p.vflip), (2, p.hflip)) if on]
        if dims:
            img = torch.flip(img, dims)
        if img is not x[i]:
            out[i] = img
    if warp:
        theta = torch.stack([affine_theta(params[i], h, w) for i in warp]).to(x.dtype)
        src = x[warp]
        grid = F.affine_grid(theta.to(x.device), list(src.shape), align_corners=True)
        out[warp] = F.grid_sample(
            src, grid, mode="bilinear", padding_mode="border", align_corners=True
        )
    return stain_jitter(out, params)


def augment_image(x: torch.Tensor, params: AffineParams) -> torch.Tensor:
    """Transform one image ``(C, H, W)``."""
    return augment_batch(x.unsqueeze(0), [params])[0]
