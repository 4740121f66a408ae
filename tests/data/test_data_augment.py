"""Augmentation: Keras ImageDataGenerator semantics, flips, seeding, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from cnnlens.data.augment import (
    AffineParams,
    augment_batch,
    augment_image,
    sample_params,
    stain_jitter,
)
from cnnlens.data.augmentations import (
    DIHEDRAL_AUGMENT,
    DIHEDRAL_STAIN_AUGMENT,
    STUDY_AUGMENT,
    AugmentConfig,
)
from cnnlens.errors import CnnlensError


def _smooth(c: int = 3, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, c, 6, 5, generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear")[0]


def _keras_reference(x: np.ndarray, theta_deg: float, shear_deg: float) -> np.ndarray:
    """keras_preprocessing 1.1's ``apply_affine_transform`` (scipy backend), channels first.

    Written out from its documented algorithm: angles in degrees, ``M = R @ S`` on
    (row, col) about the centre ``(h/2 - 0.5, w/2 - 0.5)``, ``mode='nearest'``, order 1.
    """
    t, s = np.deg2rad(theta_deg), np.deg2rad(shear_deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shear = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    m = rot @ shear
    h, w = x.shape[1:]
    ox, oy = h / 2 - 0.5, w / 2 - 0.5
    off = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]])
    reset = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    m = off @ m @ reset
    return np.stack([
        ndimage.affine_transform(ch, m[:2, :2], m[:2, 2], order=1, mode="nearest", cval=0.0)
        for ch in x
    ])


@pytest.mark.parametrize(("theta", "shear"), [(10.0, 0.0), (-15.0, 0.1), (7.0, 20.0)])
def test_matches_keras_apply_affine_transform(theta: float, shear: float) -> None:
    x = _smooth()
    got = augment_image(x, AffineParams(rotation_deg=theta, shear_deg=shear)).numpy()
    ref = _keras_reference(x.double().numpy(), theta, shear)
    assert np.abs(got - ref).max() < 1e-4


def test_shear_is_in_degrees_so_the_study_shear_is_tiny() -> None:
    x = _smooth(h=224, w=224)
    small = augment_image(x, AffineParams(shear_deg=0.1))
    big = augment_image(x, AffineParams(shear_deg=math.degrees(0.1)))  # 0.1 rad
    assert (small - x).abs().max() < 0.02 < (big - x).abs().max()


def test_flips_are_exact_and_applied_after_the_affine() -> None:
    x = _smooth()
    assert torch.equal(augment_image(x, AffineParams()), x)
    assert torch.equal(augment_image(x, AffineParams(hflip=True)), torch.flip(x, [2]))
    assert torch.equal(augment_image(x, AffineParams(vflip=True)), torch.flip(x, [1]))
    both = augment_image(x, AffineParams(rotation_deg=9.0, hflip=True))
    then_flip = torch.flip(augment_image(x, AffineParams(rotation_deg=9.0)), [2])
    assert torch.allclose(both, then_flip, atol=1e-5)


def test_params_depend_only_on_seed_epoch_index_and_stay_in_range() -> None:
    assert sample_params(STUDY_AUGMENT, 1, 2, 3) == sample_params(STUDY_AUGMENT, 1, 2, 3)
    draws = [sample_params(STUDY_AUGMENT, 0, 0, i) for i in range(2000)]
    assert draws[0] != sample_params(STUDY_AUGMENT, 0, 1, 0)
    assert draws[0] != sample_params(STUDY_AUGMENT, 1, 0, 0)
    rot = np.array([d.rotation_deg for d in draws])
    shear = np.array([d.shear_deg for d in draws])
    assert rot.min() >= -15 and rot.max() <= 15 and rot.min() < -14 and rot.max() > 14
    assert np.abs(shear).max() <= 0.1 and np.abs(shear).max() > 0.09
    for flag in ("hflip", "vflip"):
        frac = np.mean([getattr(d, flag) for d in draws])
        assert 0.45 < frac < 0.55
    off = AugmentConfig(rotation_deg=0, shear_deg=0, hflip=False, vflip=False)
    assert sample_params(off, 0, 0, 7) == AffineParams()
    with pytest.raises(CnnlensError, match="must be >= 0"):
        sample_params(STUDY_AUGMENT, -1, 0, 0)


def test_batch_equals_per_image() -> None:
    xs = torch.stack([_smooth(seed=i) for i in range(5)])
    params = [sample_params(STUDY_AUGMENT, 0, 0, i) for i in range(5)]
    params[1] = AffineParams(hflip=True)
    batch = augment_batch(xs, params)
    for i in range(5):
        assert torch.allclose(batch[i], augment_image(xs[i], params[i]), atol=1e-6)
    assert batch.min() >= 0 and batch.max() <= 1


def test_bad_shapes_are_errors() -> None:
    with pytest.raises(CnnlensError, match=r"\(N, C, H, W\)"):
        augment_batch(torch.zeros(3, 4, 4), [AffineParams()])
    with pytest.raises(CnnlensError, match="2 parameter sets for 1 images"):
        augment_batch(torch.zeros(1, 3, 4, 4), [AffineParams(), AffineParams()])


def _dihedral_images(x: torch.Tensor) -> list[torch.Tensor]:
    rots = [torch.rot90(x, k, (1, 2)) for k in range(4)]
    return rots + [torch.flip(r, [2]) for r in rots]


def test_dihedral_draws_are_exact_symmetries_covering_all_eight() -> None:
    x = torch.rand(3, 6, 6)
    targets = _dihedral_images(x)
    seen = set()
    for i in range(200):
        p = sample_params(DIHEDRAL_AUGMENT, 0, 0, i)
        assert p.rotation_deg == 0 and p.shear_deg == 0
        y = augment_image(x, p)
        hits = [j for j, t in enumerate(targets) if torch.equal(y, t)]
        assert hits, p  # an exact pixel permutation, no interpolation
        seen.add(hits[0])
    assert seen == set(range(8))


def test_adding_quarter_turns_leaves_the_study_draws_unchanged() -> None:
    turning = AugmentConfig(quarter_turns=True)
    for i in range(20):
        a, b = sample_params(STUDY_AUGMENT, 3, 1, i), sample_params(turning, 3, 1, i)
        assert (a.rotation_deg, a.shear_deg, a.hflip, a.vflip) == (
            b.rotation_deg, b.shear_deg, b.hflip, b.vflip)
        assert a.quarter_turns == 0


def test_adding_stain_jitter_leaves_the_geometry_draws_unchanged() -> None:
    for i in range(20):
        a = sample_params(DIHEDRAL_AUGMENT, 3, 1, i)
        b = sample_params(DIHEDRAL_STAIN_AUGMENT, 3, 1, i)
        assert (a.quarter_turns, a.hflip, a.vflip) == (b.quarter_turns, b.hflip, b.vflip)
        s = DIHEDRAL_STAIN_AUGMENT.stain
        assert all(1 - s <= v <= 1 + s for v in b.stain_scale)
        assert all(-s <= v <= s for v in b.stain_shift)
        assert b == sample_params(DIHEDRAL_STAIN_AUGMENT, 3, 1, i)  # a pure function
    assert sample_params(DIHEDRAL_STAIN_AUGMENT, 3, 1, 0) != sample_params(
        DIHEDRAL_STAIN_AUGMENT, 3, 2, 0)


def _optical_density(x: torch.Tensor) -> torch.Tensor:
    return -torch.log(x.double().clamp_min(1 / 255))


def test_stain_jitter_moves_density_along_the_jittered_stain_only() -> None:
    """Shifting the eosin amount alone changes each pixel's optical density by a multiple
    of the eosin vector, the same for every pixel (Ruifrok-Johnston deconvolution)."""
    eosin = torch.tensor([0.07, 0.99, 0.11], dtype=torch.float64)
    x = torch.rand(1, 3, 5, 5) * 0.8 + 0.15  # no pixel near the clipping limits
    p = AffineParams(stain_shift=(0.0, 0.03, 0.0))
    y = stain_jitter(x, [p])
    delta = (_optical_density(y) - _optical_density(x))[0].reshape(3, -1).T  # (pixels, 3)
    torch.testing.assert_close(delta, (0.03 * eosin).expand_as(delta), rtol=0, atol=1e-5)
    # identity parameters leave the image as it is
    assert stain_jitter(x, [AffineParams()]) is x
    # scaling every stain by 1.1 scales the whole optical density by 1.1
    z = stain_jitter(x, [AffineParams(stain_scale=(1.1, 1.1, 1.1))])
    torch.testing.assert_close(_optical_density(z), 1.1 * _optical_density(x), rtol=1e-5,
                               atol=1e-5)


def test_stain_jitter_in_a_batch_is_per_image_and_stays_in_range() -> None:
    x = torch.rand(6, 3, 8, 8)
    params = [sample_params(DIHEDRAL_STAIN_AUGMENT, 0, 0, i) for i in range(6)]
    y = augment_batch(x, params)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    for i in range(6):
        torch.testing.assert_close(y[i], augment_image(x[i], params[i]))
    with pytest.raises(CnnlensError, match="RGB images"):
        stain_jitter(torch.rand(1, 1, 4, 4), params[:1])
