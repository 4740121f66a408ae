"""Multigrid-preconditioned CG for the image imputation systems: the same values as the exact
sparse factorisation on masks of every kind, an error that follows ``tol``, a bounded number
of iterations, and work arrays that carry nothing from one image (or thread) to the next."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlens.faithfulness import imputation as imp
from cnnlens.faithfulness import multigrid as mg


def _direct(x: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The exact solution (SuperLU) of the removed pixels, ``(C, m)`` row-major."""
    out = imp.impute(torch.from_numpy(x)[None], torch.from_numpy(removed)[None], noise=0.0,
                     solver="direct")[0].numpy()
    return out[:, removed]


def _blobs(h: int, w: int, frac: float, cells: int, seed: int) -> np.ndarray:
    """A CAM-like mask: the top ``frac`` of coarse noise upsampled bilinearly."""
    g = torch.Generator().manual_seed(seed)
    m = F.interpolate(torch.rand(1, 1, cells, cells, generator=g), size=(h, w),
                      mode="bilinear", align_corners=False)[0, 0].numpy()
    return m >= np.quantile(m, 1.0 - frac)


def _masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    frame = np.ones((64, 64), dtype=bool)
    frame[0, :] = frame[-1, :] = frame[:, 0] = frame[:, -1] = False
    out["one-pixel known frame"] = frame
    hole = np.ones((64, 64), dtype=bool)
    hole[30:33, 30:33] = False
    out["known island in the middle"] = hole
    line = np.zeros((64, 64), dtype=bool)
    line[:, 20] = True
    line[40, :] = True
    out["one-pixel removed lines"] = line
    out["90 % noise"] = rng.random((64, 64)) < 0.9
    out["blobs 10 %"] = _blobs(64, 64, 0.1, 8, 1)
    out["blobs 90 %"] = _blobs(64, 64, 0.9, 16, 2)
    out["odd, non-square 37 x 53"] = rng.random((37, 53)) < 0.6
    out["smaller than a coarse grid (6 x 40)"] = rng.random((6, 40)) < 0.7
    return out


@pytest.mark.parametrize("name", list(_masks()))
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_multigrid_equals_the_exact_solve(name: str, channels: int) -> None:
    removed = _masks()[name]
    x = np.random.default_rng(1).normal(size=(channels, *removed.shape))
    vals, iters = mg.solve(x, removed, tol=1e-10)
    assert vals.shape == (channels, int(removed.sum()))
    assert np.abs(vals - _direct(x, removed)).max() < 1e-8
    assert iters <= 25, iters  # the preconditioner, not the iteration cap, did the work


@pytest.mark.parametrize("tol", [1e-4, 1e-7])
def test_the_error_follows_tol_at_224_px(tol: float) -> None:
    """At the ROAD image size with CAM-like masks: the preconditioned residual CG stops on
    estimates the error within a small factor, in a handful of iterations."""
    x = np.random.default_rng(2).uniform(-2, 2, size=(3, 224, 224))
    for frac, cells, seed in ((0.1, 56, 0), (0.5, 28, 1), (0.9, 7, 2)):
        removed = _blobs(224, 224, frac, cells, seed)
        vals, iters = mg.solve(x, removed, tol=tol)
        err = np.abs(vals - _direct(x, removed)).max()
        assert err < 10 * tol, (frac, err)
        assert iters <= 15, (frac, iters)


def test_work_arrays_carry_nothing_between_images_and_threads() -> None:
    """Each thread reuses its work arrays: a solve after another image's, in the same thread,
    gives bit for bit what a fresh thread gives, and threads solving at once do too."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 48, 48))
    a, b = rng.random((48, 48)) < 0.8, _blobs(48, 48, 0.3, 6, 4)
    mg.solve(x, a)
    after_a, _ = mg.solve(x, b)
    fresh: list[np.ndarray] = []
    t = threading.Thread(target=lambda: fresh.append(mg.solve(x, b)[0]))
    t.start()
    t.join()
    assert np.array_equal(after_a, fresh[0])
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        for _ in range(3):
            results[k] = mg.solve(x * (k + 1), b)[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(4):
        assert np.allclose(results[k], after_a * (k + 1), rtol=0, atol=1e-9)


def test_impute_picks_the_solver_by_size_and_states_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = mg.solve

    def counting(x: np.ndarray, removed: np.ndarray, **kw: float) -> tuple[np.ndarray, int]:
        calls.append(int(removed.sum()))
        return real(x, removed, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(mg, "solve", counting)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    rem = torch.zeros(2, 64, 64, dtype=torch.bool)
    rem[0, :40] = True  # 2560 removed: multigrid
    rem[1, :10] = True  # 640: SuperLU
    auto = imp.impute(x, rem, noise=0.0)
    assert calls == [2560]
    direct = imp.impute(x, rem, noise=0.0, solver="direct")
    assert calls == [2560]
    assert torch.allclose(auto, direct, rtol=0, atol=1e-6)
    calls.clear()  # a narrow strip coarsens too little: SuperLU, however many are removed
    strip = torch.zeros(1, 1, 8, 400, dtype=torch.bool)
    strip[..., :300] = True
    imp.impute(torch.rand(1, 1, 8, 400), strip[:, 0])
    assert calls == []
    assert imp.tolerance(0.01) == pytest.approx(1e-4)
    assert imp.tolerance(0.0) == imp.TOL_FLOOR
    assert "multigrid" in imp.DESCRIPTION and str(imp.MULTIGRID_MIN) in imp.DESCRIPTION


def test_a_solve_that_does_not_converge_is_reported_and_done_exactly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(4).normal(size=(1, 32, 32))
    removed = np.random.default_rng(5).random((32, 32)) < 0.9
    with pytest.raises(mg.NotConverged, match="did not reach tol=1e-12 in 1 iterations"):
        mg.solve(x, removed, tol=1e-12, max_iter=1)
    assert mg.solve.__kwdefaults__ is not None
    monkeypatch.setitem(mg.solve.__kwdefaults__, "max_iter", 1)  # what impute gets
    out = imp.impute(torch.from_numpy(x)[None], torch.from_numpy(removed)[None], noise=0.0,
                     solver="multigrid")
    assert np.allclose(out[0].numpy()[:, removed], _direct(x, removed), rtol=0, atol=1e-12)
