"""The numba kernels of the multigrid solver (:mod:`cnnlens.faithfulness.multigrid`): the
9-point stencil's Gauss-Seidel sweep, residual and product, the transfers between grids,
and the symmetric V-cycle built from them.

Layout: every grid of the hierarchy is stored zero-padded by one pixel and flattened; all
grids are concatenated in one (total, LANES) array per quantity, grid l starting at
``base[l]``. ``idx[start[l]:start[l + 1]]`` lists grid l's unknowns (global flat indices,
row-major), ``dinv`` their inverse diagonals, and ``near``/``far`` the coarse cells each one
interpolates from. Neighbours are at ``p ± 1``, ``p ± wp[l]`` and the diagonals.
"""

from __future__ import annotations

import numba
import numpy as np

W_DIRECT = 1.0 / 6.0
W_DIAG = 1.0 / 12.0
#: Symmetric Gauss-Seidel sweeps that stand in for an exact solve on the coarsest grid.
COARSE_SWEEPS = 20
#: Channels solved together; the kernels are compiled for exactly this many.
LANES = 3


@numba.njit(cache=True, nogil=True)
def _sum8(e: np.ndarray, p: int, wp: int, ch: int) -> float:
    return (W_DIRECT * (e[p - 1, ch] + e[p + 1, ch] + e[p - wp, ch] + e[p + wp, ch])
            + W_DIAG * (e[p - wp - 1, ch] + e[p - wp + 1, ch] + e[p + wp - 1, ch]
                        + e[p + wp + 1, ch]))


@numba.njit(cache=True, nogil=True)
def gauss_seidel(e: np.ndarray, f: np.ndarray, idx: np.ndarray, dinv: np.ndarray, s: int,
                 t: int, wp: int, forward: bool) -> None:
    """One Gauss-Seidel sweep of ``A e = f`` over ``idx[s:t]``, in order or reversed.

    The neighbour updated just before (left going forward, right going back) is added last,
    so only one multiply-add waits for it.
    """
    if forward:
        for k in range(s, t):
            p = idx[k]
            d = dinv[k]
            for ch in range(LANES):
                a = (f[p, ch] + W_DIRECT * (e[p + 1, ch] + e[p - wp, ch] + e[p + wp, ch])
                     + W_DIAG * ((e[p - wp - 1, ch] + e[p - wp + 1, ch])
                                 + (e[p + wp - 1, ch] + e[p + wp + 1, ch])))
                e[p, ch] = (a + W_DIRECT * e[p - 1, ch]) * d
    else:
        for k in range(t - 1, s - 1, -1):
            p = idx[k]
            d = dinv[k]
            for ch in range(LANES):
                a = (f[p, ch] + W_DIRECT * (e[p - 1, ch] + e[p - wp, ch] + e[p + wp, ch])
                     + W_DIAG * ((e[p - wp - 1, ch] + e[p - wp + 1, ch])
                                 + (e[p + wp - 1, ch] + e[p + wp + 1, ch])))
                e[p, ch] = (a + W_DIRECT * e[p + 1, ch]) * d


@numba.njit(cache=True, nogil=True)
def residual(e: np.ndarray, f: np.ndarray, out: np.ndarray, idx: np.ndarray,
             dinv: np.ndarray, s: int, t: int, wp: int) -> None:
    """``out = f - A e`` on ``idx[s:t]``."""
    for k in range(s, t):
        p = idx[k]
        d = dinv[k]
        for ch in range(LANES):
            out[p, ch] = f[p, ch] - (e[p, ch] / d - _sum8(e, p, wp, ch))


@numba.njit(cache=True, nogil=True)
def matvec(e: np.ndarray, out: np.ndarray, idx: np.ndarray, dinv: np.ndarray, s: int, t: int,
           wp: int) -> None:
    """``out = A e`` on ``idx[s:t]``."""
    for k in range(s, t):
        p = idx[k]
        d = dinv[k]
        for ch in range(LANES):
            out[p, ch] = e[p, ch] / d - _sum8(e, p, wp, ch)


@numba.njit(cache=True, nogil=True)
def restrict(r: np.ndarray, rc: np.ndarray, idx: np.ndarray, near: np.ndarray,
             far: np.ndarray, s: int, t: int) -> None:
    """``rc += P^T r``: each fine value scattered to its four coarse cells (9:3:3:1 / 16)."""
    for k in range(s, t):
        p = idx[k]
        c0, c1, c2, c3 = near[k], far[k, 0], far[k, 1], far[k, 2]
        for ch in range(LANES):
            v = r[p, ch]
            rc[c0, ch] += 0.5625 * v
            rc[c1, ch] += 0.1875 * v
            rc[c2, ch] += 0.1875 * v
            rc[c3, ch] += 0.0625 * v


@numba.njit(cache=True, nogil=True)
def prolong_add(ec: np.ndarray, e: np.ndarray, idx: np.ndarray, near: np.ndarray,
                far: np.ndarray, s: int, t: int) -> None:
    """``e += P ec`` on the fine unknowns ``idx[s:t]`` (known coarse cells hold 0)."""
    for k in range(s, t):
        p = idx[k]
        c0, c1, c2, c3 = near[k], far[k, 0], far[k, 1], far[k, 2]
        for ch in range(LANES):
            e[p, ch] += (0.5625 * ec[c0, ch] + 0.1875 * (ec[c1, ch] + ec[c2, ch])
                         + 0.0625 * ec[c3, ch])


@numba.njit(cache=True, nogil=True)
def zero(a: np.ndarray, idx: np.ndarray, s: int, t: int) -> None:
    """``a = 0`` on ``idx[s:t]`` (work arrays stay 0 everywhere else)."""
    for k in range(s, t):
        for ch in range(LANES):
            a[idx[k], ch] = 0.0


@numba.njit(cache=True, nogil=True)
def vcycle(e: np.ndarray, f: np.ndarray, r: np.ndarray, idx: np.ndarray, dinv: np.ndarray,
           near: np.ndarray, far: np.ndarray, start: np.ndarray, wp: np.ndarray) -> None:
    """``e = M f`` on grid 0, M the symmetric V-cycle (a fixed SPD operator).

    ``e`` must be 0 at every known position of every grid, and stays so; ``f``/``r`` are
    only read where written.
    """
    last = wp.size - 1
    for lv in range(last):
        zero(e, idx, start[lv], start[lv + 1])
        gauss_seidel(e, f, idx, dinv, start[lv], start[lv + 1], wp[lv], True)
        residual(e, f, r, idx, dinv, start[lv], start[lv + 1], wp[lv])
        zero(f, idx, start[lv + 1], start[lv + 2])
        restrict(r, f, idx, near, far, start[lv], start[lv + 1])
    zero(e, idx, start[last], start[last + 1])
    for _ in range(COARSE_SWEEPS):
        gauss_seidel(e, f, idx, dinv, start[last], start[last + 1], wp[last], True)
        gauss_seidel(e, f, idx, dinv, start[last], start[last + 1], wp[last], False)
    for lv in range(last - 1, -1, -1):
        prolong_add(e, e, idx, near, far, start[lv], start[lv + 1])
        gauss_seidel(e, f, idx, dinv, start[lv], start[lv + 1], wp[lv], False)


__all__ = ["COARSE_SWEEPS", "LANES", "W_DIAG", "W_DIRECT", "gauss_seidel", "matvec",
           "prolong_add", "residual", "restrict", "vcycle", "zero"]
