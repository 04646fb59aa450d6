"""Texture synthesis from an example: Efros & Leung 1999 (pixel by pixel) and image quilting (Efros & Freeman 2001).

**Efros–Leung** ("Texture synthesis by non-parametric sampling") grows the output from a 3×3 seed taken from the
sample. Each unfilled pixel with filled neighbours (most filled neighbours first) is compared, through the
``w×w`` window around it, with every window of the sample: SSD over the *filled* pixels only, weighted by a
Gaussian (σ = w/6.4) and normalized by the total weight. Its value is drawn from the sample windows within
``(1 + ε)`` of the best distance (``ε`` = ``error_threshold`` = 0.1), if that best is below ``max_error``
(0.3; raised by 10% whenever a whole pass fills nothing). A compiled loop; about ``O(N_sample · w²)`` per pixel.

**Image quilting** places ``B×B`` blocks in raster order, overlapping their neighbours by ``O`` pixels (paper:
``O = B/6``). Each block is drawn among the sample blocks whose overlap error is within ``(1 + tolerance)`` of
the best, then the overlap is split along the **minimum-error boundary cut**: dynamic programming over the squared
difference ``e`` in the overlap, ``E_ij = e_ij + min(E_{i-1,j-1}, E_{i-1,j}, E_{i-1,j+1})`` (paper §2.1), traced
back from the smallest ``E`` in the last row. The overlap error of every sample position is computed at once
with FFTs, ``Σ_M (T - S)² = Σ_M T² - 2 Σ_M T·S + Σ_M S²``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit
from scipy import fft

from genlab.edit.jit_random import randint, uniform
from genlab.errors import GenlabError

# --- Efros–Leung ------------------------------------------------------------------------------------------


@njit(cache=True)
def _synthesize_pixel(out, filled, sample, gauss, y, x, r, eps, max_error, state, dist):  # noqa: ANN001
    """Fill output pixel ``(y, x)`` if its best sample window is below ``max_error``. Returns (state, filled?)."""
    hs, ws, c = sample.shape
    h, w = filled.shape
    # the filled pixels of the window: offsets and Gaussian weights
    n = 0
    total = 0.0
    oy = np.empty((2 * r + 1) ** 2, np.int64)
    ox = np.empty((2 * r + 1) ** 2, np.int64)
    ow = np.empty((2 * r + 1) ** 2, np.float64)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w and filled[yy, xx]:
                oy[n], ox[n], ow[n] = dy, dx, gauss[dy + r, dx + r]
                total += ow[n]
                n += 1
    best = np.inf
    k = 0
    for sy in range(r, hs - r):
        for sx in range(r, ws - r):
            cutoff = best * (1.0 + eps)  # a window already above this can never be a candidate
            d = 0.0
            for i in range(n):
                for ch in range(c):
                    diff = out[y + oy[i], x + ox[i], ch] - sample[sy + oy[i], sx + ox[i], ch]
                    d += ow[i] * diff * diff
                if d > cutoff:
                    break
            dist[k] = d
            if d < best:
                best = d
            k += 1
    if best / total > max_error:
        return state, False
    # draw uniformly among the windows within (1 + ε) of the best
    n_good = 0
    for i in range(k):
        if dist[i] <= best * (1.0 + eps):
            n_good += 1
    state, pick = randint(state, 0, n_good - 1)
    inner_w = ws - 2 * r
    for i in range(k):
        if dist[i] <= best * (1.0 + eps):
            if pick == 0:
                sy, sx = r + i // inner_w, r + i % inner_w
                for ch in range(c):
                    out[y, x, ch] = sample[sy, sx, ch]
                filled[y, x] = True
                return state, True
            pick -= 1
    return state, False


@njit(cache=True)
def _grow_pass(out, filled, sample, gauss, r, eps, max_error, state):  # noqa: ANN001
    """One pass over the unfilled pixels that touch filled ones, most filled neighbours first.

    Returns (state, pixels filled)."""
    h, w = filled.shape
    ys, xs, counts = [], [], []
    for y in range(h):
        for x in range(w):
            if filled[y, x]:
                continue
            count = 0
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    if 0 <= y + dy < h and 0 <= x + dx < w and filled[y + dy, x + dx]:
                        count += 1
            if count > 0:
                ys.append(y)
                xs.append(x)
                counts.append(count)
    m = len(ys)
    keys = np.empty(m, np.float64)
    for i in range(m):  # random order among equal counts (the paper permutes, then sorts)
        state, u = uniform(state)
        keys[i] = -counts[i] + u
    order = np.argsort(keys)
    dist = np.empty((sample.shape[0] - 2 * r) * (sample.shape[1] - 2 * r), np.float64)
    done = 0
    for i in order:
        state, ok = _synthesize_pixel(out, filled, sample, gauss, ys[i], xs[i], r, eps, max_error, state, dist)
        done += ok
    return state, done


def efros_leung(
    sample: np.ndarray,
    shape: tuple[int, int],
    *,
    window: int = 11,
    error_threshold: float = 0.1,
    max_error: float = 0.3,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Grow a ``shape`` (``H×W``) texture from ``sample`` (``h×w×C`` float) pixel by pixel (Efros & Leung 1999).

    ``window``: odd side of the neighbourhood; ``error_threshold``: ε; ``max_error``: largest accepted weighted
    mean squared difference. ``progress(n)`` is called with the number of pixels filled by each pass.
    """
    sample = np.ascontiguousarray(sample, np.float32)
    sample = sample[..., None] if sample.ndim == 2 else sample
    if window < 3 or window % 2 == 0:
        raise GenlabError(f"--window {window}: must be odd and at least 3")
    if window > min(sample.shape[:2]):
        raise GenlabError(f"--window {window} is larger than the sample ({sample.shape[1]}×{sample.shape[0]})")
    r = window // 2
    g = np.exp(-((np.arange(window) - r) ** 2) / (2 * (window / 6.4) ** 2))
    gauss = np.outer(g, g)
    h, w = shape
    out = np.zeros((h, w, sample.shape[2]), np.float32)
    filled = np.zeros((h, w), np.bool_)
    rng = np.random.default_rng(seed)
    sy, sx = rng.integers(0, sample.shape[0] - 2), rng.integers(0, sample.shape[1] - 2)
    cy, cx = max(0, h // 2 - 1), max(0, w // 2 - 1)  # a 3×3 seed from the sample in the middle
    seed_block = sample[sy : sy + 3, sx : sx + 3][: h - cy, : w - cx]
    out[cy : cy + seed_block.shape[0], cx : cx + seed_block.shape[1]] = seed_block
    filled[cy : cy + seed_block.shape[0], cx : cx + seed_block.shape[1]] = True
    if progress is not None:
        progress(int(filled.sum()))
    state = np.uint64(rng.integers(0, 2**63))
    while not filled.all():
        state, done = _grow_pass(out, filled, sample, gauss, r, error_threshold, max_error, np.uint64(state))
        if done == 0:
            max_error *= 1.1
        elif progress is not None:
            progress(int(done))
    return out


# --- image quilting ---------------------------------------------------------------------------------------


def min_error_boundary(err: np.ndarray) -> np.ndarray:
    """The minimum-error vertical cut through an overlap ``H×O`` of squared differences.

    Returns ``H`` column indices: row ``i`` takes the old block left of ``path[i]`` and the new block from
    ``path[i]`` on. Dynamic programming, ``E_ij = e_ij + min(E_{i-1,j-1..j+1})`` (Efros & Freeman 2001, §2.1).
    """
    h, o = err.shape
    cost = err.astype(np.float64).copy()
    for i in range(1, h):
        prev = np.pad(cost[i - 1], 1, constant_values=np.inf)
        cost[i] += np.minimum(np.minimum(prev[:-2], prev[1:-1]), prev[2:])
    path = np.empty(h, np.int64)
    path[-1] = int(np.argmin(cost[-1]))
    for i in range(h - 2, -1, -1):
        j = path[i + 1]
        lo = max(j - 1, 0)
        path[i] = lo + int(np.argmin(cost[i, lo : min(j + 2, o)]))
    return path


def seam_mask(old: np.ndarray, new: np.ndarray, left: int, top: int) -> np.ndarray:
    """Which pixels of a ``B×B`` block come from ``new`` (True) rather than ``old``, given left/top overlaps.

    Cuts the left overlap vertically and the top overlap horizontally along their minimum-error boundaries; a
    pixel comes from the new block when it is on the new side of both cuts.
    """
    err = ((old - new) ** 2).sum(-1)
    take = np.ones(err.shape, bool)
    cols = np.arange(err.shape[1])
    rows = np.arange(err.shape[0])
    if left:
        path = min_error_boundary(err[:, :left])
        take &= cols[None, :] >= path[:, None]
    if top:
        path = min_error_boundary(err[:top, :].T)
        take &= rows[:, None] >= path[None, :]
    return take


class _OverlapSearch:
    """Overlap SSD of one canvas block against every sample block at once, by FFT correlation."""

    def __init__(self, sample: np.ndarray, block: int) -> None:
        self.sample, self.block = sample, block
        self.shape = sample.shape[:2]
        self.f_sample = fft.rfft2(sample, axes=(0, 1))
        self.f_sample_sq = fft.rfft2((sample**2).sum(-1))
        self.valid = (self.shape[0] - block + 1, self.shape[1] - block + 1)
        self._sq_terms: dict[tuple[int, int], np.ndarray] = {}

    def _correlate(self, f_signal: np.ndarray, template: np.ndarray) -> np.ndarray:
        """``Σ_q template[q] · signal[pos + q]`` for every valid ``pos`` (``template`` ``B×B[×C]``)."""
        padded = np.zeros(self.shape + template.shape[2:], np.float64)
        padded[: self.block, : self.block] = template
        prod = f_signal * np.conj(fft.rfft2(padded, axes=(0, 1)))
        if prod.ndim == 3:
            prod = prod.sum(-1)
        return fft.irfft2(prod, s=self.shape)[: self.valid[0], : self.valid[1]]

    def errors(self, target: np.ndarray, mask: np.ndarray, key: tuple[int, int]) -> np.ndarray:
        """Masked SSD between ``target`` (``B×B×C``) and each sample block: ``(h-B+1)×(w-B+1)``."""
        if key not in self._sq_terms:  # Σ_M S² depends only on the overlap shape
            self._sq_terms[key] = self._correlate(self.f_sample_sq, mask.astype(np.float64))
        masked = target * mask[..., None]
        cross = self._correlate(self.f_sample, masked)
        return np.maximum(self._sq_terms[key] - 2 * cross + (masked * target).sum(), 0.0)


def quilt(
    sample: np.ndarray,
    shape: tuple[int, int],
    *,
    block: int | None = None,
    overlap: int | None = None,
    tolerance: float = 0.1,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """A ``shape`` (``H×W``) texture quilted from blocks of ``sample`` (``h×w×C`` float; Efros & Freeman 2001).

    ``block``: block side (default a quarter of the sample's shorter side, 8 to 64); ``overlap``: default
    ``block/6``; ``tolerance``: blocks within ``(1 + tolerance)`` of the best overlap error are candidates.
    ``progress(1)`` is called after each block.
    """
    sample = np.ascontiguousarray(sample, np.float64)
    sample = sample[..., None] if sample.ndim == 2 else sample
    block = block or int(np.clip(min(sample.shape[:2]) // 4, 8, 64))
    overlap = max(1, block // 6) if overlap is None else overlap
    if block > min(sample.shape[:2]):
        raise GenlabError(f"--block {block} is larger than the sample ({sample.shape[1]}×{sample.shape[0]})")
    if not 0 < overlap < block:
        raise GenlabError(f"--overlap {overlap}: must be between 1 and the block size minus one ({block - 1})")
    step = block - overlap
    ny, nx = -(-(shape[0] - overlap) // step), -(-(shape[1] - overlap) // step)
    canvas = np.zeros((ny * step + overlap, nx * step + overlap, sample.shape[2]))
    search = _OverlapSearch(sample, block)
    rng = np.random.default_rng(seed)
    for i in range(ny):
        for j in range(nx):
            y, x = i * step, j * step
            left, top = (overlap if j else 0), (overlap if i else 0)
            old = canvas[y : y + block, x : x + block]
            if left or top:
                mask = np.zeros((block, block), bool)
                mask[:, :left] = True
                mask[:top, :] = True
                err = search.errors(old, mask, (left, top))
                ys, xs = np.nonzero(err <= err.min() * (1 + tolerance) + 1e-9)
                k = rng.integers(len(ys))
                sy, sx = ys[k], xs[k]
            else:
                sy, sx = rng.integers(search.valid[0]), rng.integers(search.valid[1])
            new = sample[sy : sy + block, sx : sx + block]
            take = seam_mask(old, new, left, top)
            canvas[y : y + block, x : x + block] = np.where(take[..., None], new, old)
            if progress is not None:
                progress(1)
    return canvas[: shape[0], : shape[1]].astype(np.float32)
