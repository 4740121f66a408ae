"""Multigrid-preconditioned conjugate gradients for the 2-D imputation systems.

The ROAD system of an image (DESIGN §6) is the 9-point graph Laplacian of the pixel grid
restricted to the removed pixels: ``D_i u_i - sum_j w_ij u_j = sum_(known j) w_ij x_j``. A
sparse LU costs ``n^1.5`` per sample and dominated ROAD on 224 px tiles (0.2-0.3 s at 90 %
removed, and 3 maps × 496 tiles × 10 removals make 14,880 systems). Here the system is
solved on the pixel grid itself: conjugate gradients, preconditioned by one symmetric
V-cycle (a forward Gauss-Seidel sweep going down, a backward one coming up, cell-centred
bilinear prolongation and its transpose as restriction). A coarse cell is unknown when any of
its pixels is; its stencil is the fine one re-discretised, with the diagonal raised to the
row sum of the Galerkin operator ``P^T A P``, which is how strongly its known pixels hold it
(without that, a one-pixel known frame vanishes from the coarse grids and CG needs 5× the
iterations). The cost is linear in the number of removed pixels; 8-11 iterations reach
1e-7 and 4-7 reach ROAD's 1e-4 on every mask tried (CAM-like blobs, noise, frames, lines,
enclosed holes): 2-5× faster than the factorisation at 224 px (bench/road_speed.py).

CG stops when the largest entry of the preconditioned residual, which estimates the
remaining error, is at most ``tol`` (in input units). The kernels are compiled with numba
(on first use, ~10 s, then loaded from numba's disk cache in well under a second):
Gauss-Seidel is sequential per pixel, and array libraries would make one pass over memory
per stencil term (:mod:`cnnlens.faithfulness.multigrid_kernels`). Channels share the mask
and are solved in lockstep, three at a time.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from cnnlens.faithfulness.multigrid_kernels import COARSE_SWEEPS as COARSE_SWEEPS  # re-exported
from cnnlens.faithfulness.multigrid_kernels import (
    LANES,
    W_DIAG,
    W_DIRECT,
    matvec,
    prolong_add,
    residual,
    restrict,
    vcycle,
    zero,
)

#: Grids whose shorter side is at most this are not coarsened further.
COARSEST = 8
#: Largest preconditioned residual (input units) at which CG stops.
TOL = 1e-7
MAX_ITER = 500


@numba.njit(cache=True, nogil=True)
def _levels(mask: np.ndarray, hs: np.ndarray, ws: np.ndarray, e: np.ndarray,
            r: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unknowns, inverse diagonals and interpolation links of every grid.

    Grid 0's diagonal is the sum of its in-bounds weights. A coarse cell is unknown when any
    of its pixels is; its diagonal is the weight to its unknown neighbours plus the row sum
    of the Galerkin operator ``P^T A P`` (clamped at 0), which is how strongly its known
    pixels hold it: re-discretising the stencil alone would lose, e.g., a one-pixel known
    frame on the coarse grids, and CG would need 5× the iterations. ``e`` and ``r`` are
    work arrays of the whole hierarchy; ``e`` must be 0 and is left so.
    """
    nlev = hs.size
    wp = ws + 2
    base = np.zeros(nlev + 1, dtype=np.int64)
    for lv in range(nlev):
        base[lv + 1] = base[lv] + (hs[lv] + 2) * wp[lv]
    unknown = _unknowns(mask, hs, ws, wp, base)
    start = np.zeros(nlev + 1, dtype=np.int64)
    for lv in range(nlev):
        start[lv + 1] = start[lv] + np.count_nonzero(unknown[base[lv] : base[lv + 1]])
    idx = np.flatnonzero(unknown).astype(np.int64)
    near, far = _links(idx, start, base, hs, ws, wp)
    dinv = np.empty(idx.size)
    _fine_dinv(dinv, idx, start, hs, ws, wp)
    _coarse_dinv(dinv, unknown, idx, near, far, start, base, wp, e, r)
    zero(e, idx, 0, idx.size)
    return idx, dinv, near, far, start, base, wp


@numba.njit(cache=True, nogil=True)
def _unknowns(mask: np.ndarray, hs: np.ndarray, ws: np.ndarray, wp: np.ndarray,
              base: np.ndarray) -> np.ndarray:
    """Which positions of the padded hierarchy are unknown: grid 0's removed pixels, and a
    coarse cell when any of its pixels is."""
    nlev = hs.size
    unknown = np.zeros(base[nlev], dtype=np.bool_)
    for i in range(hs[0]):
        for j in range(ws[0]):
            unknown[(i + 1) * wp[0] + j + 1] = mask[i, j]
    for lv in range(1, nlev):
        fb, cb = base[lv - 1], base[lv]
        for i in range(hs[lv - 1]):
            for j in range(ws[lv - 1]):
                if unknown[fb + (i + 1) * wp[lv - 1] + j + 1]:
                    unknown[cb + (i // 2 + 1) * wp[lv] + j // 2 + 1] = True
    return unknown


@numba.njit(cache=True, nogil=True)
def _links(idx: np.ndarray, start: np.ndarray, base: np.ndarray, hs: np.ndarray,
           ws: np.ndarray, wp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each unknown of a grid above the coarsest, the coarse cell it lies in (``near``)
    and the three beside it that bilinear interpolation also weighs (``far``; clamped to
    ``near``'s row or column at the border, so its weight folds onto the near cell)."""
    near = np.zeros(idx.size, dtype=np.int64)
    far = np.zeros((idx.size, 3), dtype=np.int64)
    for lv in range(hs.size - 1):
        hc, wc, cb = hs[lv + 1], ws[lv + 1], base[lv + 1]
        for k in range(start[lv], start[lv + 1]):
            q = idx[k] - base[lv]
            i, j = q // wp[lv] - 1, q % wp[lv] - 1
            ni, nj = i // 2, j // 2
            fi = ni - 1 if i % 2 == 0 else ni + 1
            fj = nj - 1 if j % 2 == 0 else nj + 1
            if fi < 0 or fi >= hc:
                fi = ni  # clamped: the weight folds onto the near cell
            if fj < 0 or fj >= wc:
                fj = nj
            near[k] = cb + (ni + 1) * wp[lv + 1] + nj + 1
            far[k, 0] = cb + (ni + 1) * wp[lv + 1] + fj + 1
            far[k, 1] = cb + (fi + 1) * wp[lv + 1] + nj + 1
            far[k, 2] = cb + (fi + 1) * wp[lv + 1] + fj + 1
    return near, far


@numba.njit(cache=True, nogil=True)
def _fine_dinv(dinv: np.ndarray, idx: np.ndarray, start: np.ndarray, hs: np.ndarray,
               ws: np.ndarray, wp: np.ndarray) -> None:
    """Grid 0's inverse diagonals: one over the sum of each pixel's in-bounds weights."""
    h, w = hs[0], ws[0]
    for k in range(start[0], start[1]):
        i, j = idx[k] // wp[0] - 1, idx[k] % wp[0] - 1
        top, bot, lef, rig = i == 0, i == h - 1, j == 0, j == w - 1
        d = 1.0 - W_DIRECT * (top + bot + lef + rig)
        d -= W_DIAG * ((top or lef) + (top or rig) + (bot or lef) + (bot or rig))
        dinv[k] = 1.0 / d


@numba.njit(cache=True, nogil=True)
def _coarse_dinv(dinv: np.ndarray, unknown: np.ndarray, idx: np.ndarray, near: np.ndarray,
                 far: np.ndarray, start: np.ndarray, base: np.ndarray, wp: np.ndarray,
                 e: np.ndarray, r: np.ndarray) -> None:
    """The coarse grids' inverse diagonals, each from the grid below: the weight to the
    unknown neighbours plus the Galerkin row sum ``P^T A P 1`` over the cell's unknowns
    (``e`` and ``r`` are work space; ``e`` is left nonzero on grids below the coarsest)."""
    u = unknown.astype(np.float64)
    for lv in range(1, wp.size):
        s, t, cs, ct = start[lv - 1], start[lv], start[lv], start[lv + 1]
        for k in range(cs, ct):
            e[idx[k], 0] = 1.0
        for k in range(s, t):
            e[idx[k], 0] = 0.0
        prolong_add(e, e, idx, near, far, s, t)
        matvec(e, r, idx, dinv, s, t, wp[lv - 1])
        r[base[lv] : base[lv + 1]] = 0.0
        restrict(r, r, idx, near, far, s, t)  # lands on grid lv, disjoint from grid lv-1
        c = wp[lv]
        for k in range(cs, ct):
            p = idx[k]
            link = (W_DIRECT * (u[p - 1] + u[p + 1] + u[p - c] + u[p + c])
                    + W_DIAG * (u[p - c - 1] + u[p - c + 1] + u[p + c - 1] + u[p + c + 1]))
            dinv[k] = 1.0 / max(max(r[p, 0], 0.0) + link, 1e-12)


@numba.njit(cache=True, nogil=True)
def _pcg(r: np.ndarray, u: np.ndarray, idx: np.ndarray, dinv: np.ndarray, near: np.ndarray,
         far: np.ndarray, start: np.ndarray, wp: np.ndarray, tol: float,
         max_iter: int, e: np.ndarray, f: np.ndarray, r_mg: np.ndarray, q: np.ndarray,
         p_: np.ndarray) -> int:
    """Conjugate gradients on ``A u = r`` (grid 0), preconditioned by the V-cycle, per lane.

    ``r`` holds the right-hand side and is overwritten by the residual, ``u`` receives the
    solution (its unknowns must start at 0); the other arrays are work space (all grids for
    ``e``, ``f``, ``r_mg``, grid 0 for ``q``, ``p_``; known entries must be 0). Stops when
    every lane's largest preconditioned residual is at most ``tol``; returns the iterations
    taken, or -1 if ``max_iter`` was not enough.
    """
    s, t = start[0], start[1]
    rz = np.zeros(LANES)
    for it in range(max_iter + 1):
        for k in range(s, t):
            for ch in range(LANES):
                f[idx[k], ch] = r[idx[k], ch]
        vcycle(e, f, r_mg, idx, dinv, near, far, start, wp)
        zmax = 0.0
        rz_new = np.zeros(LANES)
        for k in range(s, t):
            x = idx[k]
            for ch in range(LANES):
                zmax = max(zmax, abs(e[x, ch]))
                rz_new[ch] += r[x, ch] * e[x, ch]
        if zmax <= tol:
            return it
        if it == max_iter:
            break
        beta = np.zeros(LANES)
        if it > 0:
            for ch in range(LANES):
                beta[ch] = rz_new[ch] / rz[ch] if rz[ch] > 0 else 0.0
        for k in range(s, t):
            x = idx[k]
            for ch in range(LANES):
                p_[x, ch] = e[x, ch] + beta[ch] * p_[x, ch]
        rz = rz_new
        matvec(p_, q, idx, dinv, s, t, wp[0])
        pq = np.zeros(LANES)
        for k in range(s, t):
            x = idx[k]
            for ch in range(LANES):
                pq[ch] += p_[x, ch] * q[x, ch]
        alpha = np.zeros(LANES)
        for ch in range(LANES):
            alpha[ch] = rz[ch] / pq[ch] if pq[ch] > 0 else 0.0
        for k in range(s, t):
            x = idx[k]
            for ch in range(LANES):
                u[x, ch] += alpha[ch] * p_[x, ch]
                r[x, ch] -= alpha[ch] * q[x, ch]
    return -1


class NotConverged(RuntimeError):
    """CG stopped at ``max_iter`` above ``tol`` (callers fall back to a direct solve)."""


class _Workspace(threading.local):
    """Work arrays per thread and grid size: a solve allocates nothing of the image's size."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def get(self, h: int, w: int, total: int) -> tuple[np.ndarray, ...]:
        key = (h, w)
        if key not in self.arrays:
            if len(self.arrays) > 4:
                self.arrays.clear()
            n0 = (h + 2) * (w + 2)
            self.arrays[key] = (np.zeros((total, LANES)), np.zeros((total, LANES)),
                                np.zeros((total, LANES)), np.zeros((n0, LANES)),
                                np.zeros((n0, LANES)), np.zeros((n0, LANES)),
                                np.zeros((n0, LANES)), np.zeros((h + 2, w + 2, LANES)))
        return self.arrays[key]


_WORK = _Workspace()


def grid_sizes(h: int, w: int) -> tuple[list[int], list[int]]:
    """Heights and widths of the grid hierarchy of an ``h`` × ``w`` image."""
    hs, ws = [h], [w]
    while min(hs[-1], ws[-1]) > COARSEST:
        hs.append((hs[-1] + 1) // 2)
        ws.append((ws[-1] + 1) // 2)
    return hs, ws


def solve(x: np.ndarray, removed: np.ndarray, *, tol: float = TOL,
          max_iter: int = MAX_ITER) -> tuple[np.ndarray, int]:
    """Imputed values of the removed pixels of one image, ``(C, m)`` in row-major order.

    ``x`` is ``(C, H, W)``, ``removed`` ``(H, W)`` bool with at least one known pixel.
    Returns the values and the largest number of CG iterations taken. Thread-safe, and the
    compiled kernels release the GIL, so images can be solved on several threads.
    """
    c, h, w = x.shape
    hs, ws = grid_sizes(h, w)
    total = sum((a + 2) * (b + 2) for a, b in zip(hs, ws, strict=True))
    e, f, r_mg, r, u, q, p_, xk = _WORK.get(h, w, total)
    idx, dinv, near, far, start, _, wp = _levels(
        np.ascontiguousarray(removed, dtype=np.bool_), np.asarray(hs, dtype=np.int64),
        np.asarray(ws, dtype=np.int64), e, r_mg)
    n_all = int(start[-1])
    top = idx[: start[1]]
    known = np.where(removed, 0.0, x)
    out = np.empty((c, top.size))
    iters = 0
    for c0 in range(0, c, LANES):
        lanes = min(LANES, c - c0)
        xk[1:-1, 1:-1, :lanes] = np.moveaxis(known[c0 : c0 + lanes], 0, -1)
        xk[1:-1, 1:-1, lanes:] = 0.0
        flat = xk.reshape(-1, LANES)
        residual(flat, q, r, idx, dinv, 0, int(start[1]), int(wp[0]))  # r = W xk
        try:
            it = _pcg(r, u, idx, dinv, near, far, start, wp, float(tol),
                      int(max_iter), e, f, r_mg, q, p_)
            vals = u[top, :lanes].T.copy()
        finally:  # the work arrays are 0 at every position again for the next image
            zero(e, idx, 0, n_all)
            for a in (u, q, p_):
                zero(a, idx, 0, int(start[1]))
        if it < 0:
            raise NotConverged(f"multigrid CG did not reach tol={tol:g} in {max_iter} "
                               "iterations")
        out[c0 : c0 + lanes] = vals
        iters = max(iters, it)
    return out, iters


def warm_up() -> None:
    """Compile every kernel (or load it from numba's disk cache: well under a second once a
    machine has compiled them), so that timing a solve afterwards times the solve."""
    removed = np.ones((20, 20), dtype=bool)
    removed[0] = False
    solve(np.zeros((1, 20, 20)), removed)
