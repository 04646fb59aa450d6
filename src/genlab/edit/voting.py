"""Voting (Wexler et al. 2007, eq. 5) with weights given as logarithms, normalized per pixel.

Every pixel becomes the weighted mean of the values that the patches covering it propose. The synthesis weights
span hundreds of orders of magnitude — a hole's confidence ``γ^-depth`` is 1e-15 a hundred pixels deep, and
retargeting's similarity ``exp(-d / 2σ²)`` is ``exp(-10⁴)`` for a poor match once most patches match exactly and
σ² collapses — so summed as float32 they underflow: a pixel covered only by such votes had a total weight of
(nearly) zero, and dividing by it (clamped to a small floor) made it black. Here the weights are kept as logs,
and each pixel's votes are scaled by its own largest weight first, so every covered pixel's total is at least 1
and its mean is exact whatever the scale of its weights.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from genlab.edit.patchmatch import NNF


@njit(cache=True)
def _max_splat(top, ty, tx, lw, p):  # noqa: ANN001
    """``top[y, x]``: the largest ``lw[i]`` of the ``p×p`` votes covering the pixel (``-inf`` if none)."""
    for i in range(ty.shape[0]):
        li = lw[i]
        for dy in range(p):
            for dx in range(p):
                if li > top[ty[i] + dy, tx[i] + dx]:
                    top[ty[i] + dy, tx[i] + dx] = li


@njit(cache=True)
def _splat_scaled(acc, weight, src, top, ty, tx, sy, sx, lw, p):  # noqa: ANN001
    """Add each vote with weight ``exp(lw[i] - top[pixel])`` (at most 1, exactly 1 for the pixel's best vote)."""
    c = src.shape[2]
    for i in range(ty.shape[0]):
        li = lw[i]
        for dy in range(p):
            for dx in range(p):
                y, x = ty[i] + dy, tx[i] + dx
                wi = np.float32(np.exp(li - top[y, x]))
                weight[y, x] += wi
                for ch in range(c):
                    acc[y, x, ch] += wi * src[sy[i] + dy, sx[i] + dx, ch]


def field_votes(nnf: NNF, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The votes of a field's patches: ``(target_yx, source_yx)``, both ``N×2``, for its ``active`` patches
    (default: those solved, i.e. with a finite distance), in the grid's row-major order."""
    mask = np.isfinite(nnf.dist) if active is None else np.asarray(active, bool)
    ty, tx = np.nonzero(mask)
    return np.stack([ty, tx], 1), nnf.field[ty, tx]


def mean_vote(
    src: np.ndarray,
    shape: tuple[int, ...],
    target_yx: np.ndarray,
    source_yx: np.ndarray,
    log_w: np.ndarray,
    patch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean of the votes: vote ``i`` puts the ``patch×patch`` patch of ``src`` (``H×W×C``) at
    ``source_yx[i]`` onto an image of ``shape`` at ``target_yx[i]`` with weight ``exp(log_w[i])``.

    Returns ``(image, covered)``: ``H×W×C`` means, and the ``H×W`` bool mask of the pixels some vote covers
    (the others are 0). Votes with ``log_w = -inf`` count as absent.
    """
    src = np.asarray(src, np.float32)
    src = np.ascontiguousarray(src[..., None] if src.ndim == 2 else src)
    t = np.ascontiguousarray(target_yx, np.int64).reshape(-1, 2)
    s = np.ascontiguousarray(source_yx, np.int64).reshape(-1, 2)
    lw = np.ascontiguousarray(log_w, np.float64).reshape(-1)
    keep = np.isfinite(lw)
    t, s, lw = t[keep], s[keep], lw[keep]
    top = np.full(shape[:2], -np.inf)
    _max_splat(top, t[:, 0], t[:, 1], lw, patch)
    acc = np.zeros((shape[0], shape[1], src.shape[2]), np.float32)
    weight = np.zeros(shape[:2], np.float32)
    _splat_scaled(acc, weight, src, top, t[:, 0], t[:, 1], s[:, 0], s[:, 1], lw, patch)
    covered = weight > 0  # ≥ 1 wherever a vote lands: the pixel's best vote has weight exactly 1
    return np.where(covered[..., None], acc / np.where(covered, weight, 1)[..., None], 0).astype(np.float32), covered
