"""PatchMatch (Barnes et al. 2009): an approximate nearest-neighbour field between the patches of two images.

A nearest-neighbour field (NNF) ``f: A → B`` gives, for every ``p×p`` patch of image A (named by its top-left
corner), the top-left corner of a patch of B that is (nearly) the most similar under the sum of squared
differences (SSD) over the patch's ``p·p·C`` values. A has a ``(Ha-p+1)×(Wa-p+1)`` grid of patches; a field is an
int32 array of that grid ×2 holding ``(y, x)`` in B, with a float32 array of the same grid holding the distances.

The paper's three steps:

* **random initialization** — every patch of A points at a uniformly random allowed patch of B, or the field
  starts from a given one (e.g. :func:`upsample_nnf` of a coarser level's field);
* **propagation** (§3.2) — a patch tries its scan-order neighbours' matches shifted by one,
  ``f(x-1, y) + (1, 0)`` and ``f(x, y-1) + (0, 1)``; odd iterations scan backwards and use the ``+1`` neighbours;
* **random search** (§3.2, eq. 1) — candidates ``u_i = v_0 + w α^i R_i``, ``R_i`` uniform in ``[-1, 1]²``, the
  window ``w`` the size of B, ``α = 1/2``, until the radius is below one pixel.

Masks: ``active`` (over A's patch grid) says which patches of A to solve (the others keep their initial match and
are never propagated from); ``allowed`` (over B's patch grid) says which patches of B may be matched, e.g. those
that do not touch a hole. :func:`patch_grid_mask` turns a pixel mask into either.

The CPU field is a compiled loop (numba). A's grid rows are split into bands of ``BAND_ROWS``; even bands run in
parallel, then odd bands, so no band reads a neighbour row that another thread is writing, and each band draws
from its own random stream: for a seed, the field is the same whatever the number of threads.
:func:`genlab.edit.patchmatch_torch.patchmatch_torch` is a data-parallel variant for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from genlab.edit.jit_random import randint, stream
from genlab.errors import GenlabError

BAND_ROWS = 32  # rows of A's patch grid per parallel band
ALPHA = 0.5  # random-search radius ratio α (paper: 1/2)


@dataclass
class NNF:
    """A nearest-neighbour field.

    ``field``: ``Ha'×Wa'×2`` int32, ``(y, x)`` of the matched patch in B; ``dist``: ``Ha'×Wa'`` float32 SSD
    (``inf`` where the patch was not solved); ``Ha' = Ha - patch + 1``, ``Wa' = Wa - patch + 1``.
    """

    field: np.ndarray
    dist: np.ndarray
    patch: int

    def mean_distance(self) -> float:
        """Mean SSD over the solved patches."""
        d = self.dist[np.isfinite(self.dist)]
        return float(d.mean()) if d.size else 0.0


# --- compiled kernels -------------------------------------------------------------------------------------
@njit(cache=True, inline="always", fastmath={"reassoc", "contract"})
def _ssd(a: np.ndarray, ay: int, ax: int, b: np.ndarray, by: int, bx: int, p: int, c: int, cutoff: float) -> float:
    """SSD between the patch at ``(ay, ax)`` of ``a`` and at ``(by, bx)`` of ``b`` (both ``H×(W·C)`` float32).

    Stops once the running sum reaches ``cutoff``: it can only grow, so the candidate has already lost.
    """
    n = p * c
    oa = ax * c
    ob = bx * c
    d = np.float32(0.0)  # float32 sums of at most p²C squares in [0, 1]: exact enough, and twice the SIMD width
    for dy in range(p):
        ra = a[ay + dy]
        rb = b[by + dy]
        for k in range(n):
            diff = ra[oa + k] - rb[ob + k]
            d += diff * diff
        if d >= cutoff:
            break
    return d


@njit(cache=True)
def _initialize(a, b, field, dist, active, allowed, allowed_idx, p, c, seed, keep):  # noqa: ANN001
    """Random initialization (where ``keep`` is False or the kept match is not allowed), then all distances."""
    gh, gw = dist.shape
    hb, wb = allowed.shape
    n_allowed = allowed_idx.shape[0]
    n_bands = (gh + BAND_ROWS - 1) // BAND_ROWS
    for band in prange(n_bands):
        state = stream(seed, -1, band)
        for y in range(band * BAND_ROWS, min(gh, (band + 1) * BAND_ROWS)):
            for x in range(gw):
                by = min(max(field[y, x, 0], 0), hb - 1)
                bx = min(max(field[y, x, 1], 0), wb - 1)
                if not keep or not allowed[by, bx]:
                    state, k = randint(state, 0, n_allowed - 1)
                    by = allowed_idx[k] // wb
                    bx = allowed_idx[k] % wb
                field[y, x, 0] = by
                field[y, x, 1] = bx
                dist[y, x] = _ssd(a, y, x, b, by, bx, p, c, np.inf) if active[y, x] else np.inf


@njit(cache=True)
def _improve_band(a, b, field, dist, active, allowed, p, c, y0, y1, reverse, state):  # noqa: ANN001
    """One propagation + random-search sweep over grid rows ``[y0, y1)`` (forward, or backward if ``reverse``)."""
    gh, gw = dist.shape
    hb, wb = allowed.shape
    s = -1 if reverse else 1  # neighbours at x - s and y - s; their match shifted by +s
    for i in range(y1 - y0):
        y = y1 - 1 - i if reverse else y0 + i
        for j in range(gw):
            x = gw - 1 - j if reverse else j
            if not active[y, x]:
                continue
            by = field[y, x, 0]
            bx = field[y, x, 1]
            best = dist[y, x]
            # propagation: the left (right) and upper (lower) neighbours' matches, shifted by one
            for k in range(2):
                ny = y - s if k == 1 else y
                nx = x - s if k == 0 else x
                if ny < 0 or ny >= gh or nx < 0 or nx >= gw or not active[ny, nx]:
                    continue
                cy = field[ny, nx, 0] + (s if k == 1 else 0)
                cx = field[ny, nx, 1] + (s if k == 0 else 0)
                if cy < 0 or cy >= hb or cx < 0 or cx >= wb or not allowed[cy, cx] or (cy == by and cx == bx):
                    continue
                d = _ssd(a, y, x, b, cy, cx, p, c, best)
                if d < best:
                    best, by, bx = d, cy, cx
            # random search around the current best: radius w·α^i (eq. 1), window clipped to B
            radius = max(hb, wb)
            while radius >= 1:
                state, cy = randint(state, max(by - radius, 0), min(by + radius, hb - 1))
                state, cx = randint(state, max(bx - radius, 0), min(bx + radius, wb - 1))
                if allowed[cy, cx] and not (cy == by and cx == bx):
                    d = _ssd(a, y, x, b, cy, cx, p, c, best)
                    if d < best:
                        best, by, bx = d, cy, cx
                radius = int(radius * ALPHA)
            field[y, x, 0] = by
            field[y, x, 1] = bx
            dist[y, x] = best
    return state


@njit(cache=True, parallel=True)
def _iterate(a, b, field, dist, active, allowed, p, c, seed, iteration):  # noqa: ANN001
    """One PatchMatch iteration over the whole grid: even bands in parallel, then odd bands."""
    gh = dist.shape[0]
    n_bands = (gh + BAND_ROWS - 1) // BAND_ROWS
    reverse = iteration % 2 == 1
    for phase in range(2):
        for k in prange((n_bands - phase + 1) // 2):
            band = 2 * k + phase
            y0 = band * BAND_ROWS
            y1 = min(gh, y0 + BAND_ROWS)
            _improve_band(a, b, field, dist, active, allowed, p, c, y0, y1, reverse, stream(seed, iteration, band))


@njit(cache=True)
def _splat(acc, weight, src, ty, tx, sy, sx, w, p):  # noqa: ANN001
    """Add the ``p×p`` patch of ``src`` at ``(sy[i], sx[i])`` into ``acc`` at ``(ty[i], tx[i])``, weight ``w[i]``."""
    c = src.shape[2]
    for i in range(ty.shape[0]):
        wi = w[i]
        for dy in range(p):
            for dx in range(p):
                weight[ty[i] + dy, tx[i] + dx] += wi
                for ch in range(c):
                    acc[ty[i] + dy, tx[i] + dx, ch] += wi * src[sy[i] + dy, sx[i] + dx, ch]


# --- the public functions ---------------------------------------------------------------------------------
def _as_rows(img: np.ndarray) -> np.ndarray:
    """``H×W`` or ``H×W×C`` → contiguous float32 ``H×(W·C)`` (the kernels' layout)."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    return np.ascontiguousarray(img.reshape(img.shape[0], -1))


def channels(img: np.ndarray) -> int:
    """Channels of an ``H×W`` (1) or ``H×W×C`` image."""
    return 1 if img.ndim == 2 else img.shape[2]


def grid_shape(shape: tuple[int, ...], patch: int) -> tuple[int, int]:
    """The patch grid of an image of ``shape`` (``H×W[×C]``): ``(H-p+1, W-p+1)``."""
    return shape[0] - patch + 1, shape[1] - patch + 1


def check_patch(shape: tuple[int, ...], patch: int, name: str = "image") -> None:
    """Raise a clear error for a patch size that is not odd and positive, or larger than the image."""
    if patch < 1:
        raise GenlabError(f"--patch {patch}: must be at least 1")
    if patch > min(shape[0], shape[1]):
        raise GenlabError(f"--patch {patch} is larger than the {name} ({shape[1]}×{shape[0]} pixels)")


def check_pair(a: np.ndarray, b: np.ndarray, patch: int) -> None:
    """The checks every field makes: the patch fits both images, which have the same number of channels."""
    check_patch(a.shape, patch, "image A")
    check_patch(b.shape, patch, "image B")
    if channels(a) != channels(b):
        raise GenlabError(f"images A and B have different numbers of channels: {channels(a)} and {channels(b)}")


def patch_grid_mask(pixels: np.ndarray, patch: int, *, touching: bool) -> np.ndarray:
    """A pixel mask ``H×W`` → patch-grid mask ``(H-p+1)×(W-p+1)``.

    ``touching=True``: the patch contains at least one True pixel; ``False``: it contains none.
    """
    box = np.pad(np.asarray(pixels, dtype=np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # integral image
    p = patch
    count = box[p:, p:] - box[:-p, p:] - box[p:, :-p] + box[:-p, :-p]
    return count > 0 if touching else count == 0


def patchmatch(
    a: np.ndarray,
    b: np.ndarray,
    patch: int = 7,
    iterations: int = 5,
    *,
    active: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    init: np.ndarray | None = None,
    seed: int = 0,
    on_iteration=None,  # noqa: ANN001  (callable(iteration, NNF) -> None)
) -> NNF:
    """The PatchMatch field from ``a`` (``Ha×Wa[×C]``) to ``b`` (``Hb×Wb[×C]``, same ``C``), float images.

    ``active``: ``Ha'×Wa'`` bool, the patches of A to solve (default all); ``allowed``: ``Hb'×Wb'`` bool, the
    patches of B that may be matched (default all); ``init``: an ``Ha'×Wa'×2`` field to start from (entries out of
    range or not allowed are drawn at random). ``on_iteration(i, nnf)`` is called after each iteration (i from 1).
    """
    check_pair(a, b, patch)
    c = channels(a)
    rows_a, rows_b = _as_rows(a), _as_rows(b)
    ga, gb = grid_shape(a.shape, patch), grid_shape(b.shape, patch)
    active = np.ones(ga, np.bool_) if active is None else np.ascontiguousarray(active, dtype=np.bool_)
    allowed = np.ones(gb, np.bool_) if allowed is None else np.ascontiguousarray(allowed, dtype=np.bool_)
    if active.shape != ga or allowed.shape != gb:
        raise ValueError(f"masks must be A's patch grid {ga} and B's {gb}; got {active.shape} and {allowed.shape}")
    allowed_idx = np.flatnonzero(allowed).astype(np.int64)
    if allowed_idx.size == 0:
        raise GenlabError(f"no {patch}×{patch} patch of the source is allowed (the mask covers them all)")
    field = np.zeros((*ga, 2), np.int32) if init is None else np.array(init, dtype=np.int32, copy=True)
    dist = np.empty(ga, np.float32)
    _initialize(rows_a, rows_b, field, dist, active, allowed, allowed_idx, patch, c, seed, init is not None)
    nnf = NNF(field, dist, patch)
    for i in range(iterations):
        _iterate(rows_a, rows_b, field, dist, active, allowed, patch, c, seed, i)
        if on_iteration is not None:
            on_iteration(i + 1, nnf)
    return nnf


def exact_nnf(
    a: np.ndarray,
    b: np.ndarray,
    patch: int = 7,
    *,
    active: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    chunk: int = 256,
) -> NNF:
    """The exact nearest-neighbour field by brute force (the oracle for tests and benchmarks).

    Compares every active patch of A with every allowed patch of B (``‖a‖² + ‖b‖² - 2a·b`` in chunks of
    ``chunk`` patches of A), then recomputes the winners' distances in float64. Cost ``O(N_A · N_B · p²C)``.
    """
    pa = _patch_matrix(a, patch)
    pb = _patch_matrix(b, patch)
    ga, gb = grid_shape(a.shape, patch), grid_shape(b.shape, patch)
    act = np.ones(ga, bool) if active is None else np.asarray(active, bool)
    ok = np.ones(gb, bool) if allowed is None else np.asarray(allowed, bool)
    cand = np.flatnonzero(ok.ravel())
    pb_ok = pb[cand]
    nb = (pb_ok.astype(np.float64) ** 2).sum(1).astype(np.float32)
    best = np.zeros(ga[0] * ga[1], np.int64)
    rows = np.flatnonzero(act.ravel())
    for start in range(0, rows.size, chunk):
        idx = rows[start : start + chunk]
        d = nb[None, :] - 2.0 * (pa[idx] @ pb_ok.T)  # ‖a‖² is the same for every candidate of a row
        best[idx] = cand[np.argmin(d, axis=1)]
    field = np.stack(np.unravel_index(best, gb), axis=-1).reshape(*ga, 2).astype(np.int32)
    diff = pa.astype(np.float64) - pb[best].astype(np.float64)
    dist = (diff**2).sum(1).reshape(ga).astype(np.float32)
    dist[~act] = np.inf
    return NNF(field, dist, patch)


def _patch_matrix(img: np.ndarray, patch: int) -> np.ndarray:
    """Every ``p×p`` patch of ``img`` as a row: ``(H'·W')×(p·p·C)`` float32."""
    img = np.asarray(img, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    win = np.lib.stride_tricks.sliding_window_view(img, (patch, patch), axis=(0, 1))  # H'×W'×C×p×p
    return np.ascontiguousarray(win.transpose(0, 1, 3, 4, 2)).reshape(-1, patch * patch * img.shape[2])


def upsample_nnf(field: np.ndarray, grid_a: tuple[int, int], grid_b: tuple[int, int]) -> np.ndarray:
    """A coarse level's field (half resolution) → an initial field on the finer grids ``grid_a`` → ``grid_b``.

    Fine patch ``(y, x)`` takes its coarse parent's match ×2 plus its own offset within the parent.
    """
    ys = np.minimum(np.arange(grid_a[0]) // 2, field.shape[0] - 1)
    xs = np.minimum(np.arange(grid_a[1]) // 2, field.shape[1] - 1)
    up = field[ys[:, None], xs[None, :]] * 2
    up[..., 0] += (np.arange(grid_a[0]) % 2)[:, None]
    up[..., 1] += (np.arange(grid_a[1]) % 2)[None, :]
    up[..., 0] = np.clip(up[..., 0], 0, grid_b[0] - 1)
    up[..., 1] = np.clip(up[..., 1], 0, grid_b[1] - 1)
    return up.astype(np.int32)


def vote(src: np.ndarray, nnf: NNF, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruct an image of ``shape`` (``H×W×C``, A's) from the patches of ``src`` (B) that ``nnf``'s solved
    patches point at, each with weight 1 (``edit nnf``'s reconstruction; the synthesis tasks' weighted votes are
    :func:`genlab.edit.voting.mean_vote`). Returns ``(sum, weight)``: ``H×W×C`` sums and ``H×W`` vote counts."""
    src = np.asarray(src, np.float32)
    src3 = src[..., None] if src.ndim == 2 else src
    acc = np.zeros((shape[0], shape[1], src3.shape[2]), np.float32)
    weight = np.zeros(shape[:2], np.float32)
    ty, tx = np.nonzero(np.isfinite(nnf.dist))
    w = np.ones(ty.size, np.float32)
    sy, sx = nnf.field[ty, tx, 0], nnf.field[ty, tx, 1]
    add_patches(acc, weight, src3, np.stack([ty, tx], 1), np.stack([sy, sx], 1), w, nnf.patch)
    return acc, weight


def add_patches(
    acc: np.ndarray,
    weight: np.ndarray,
    src: np.ndarray,
    target_yx: np.ndarray,
    source_yx: np.ndarray,
    w: np.ndarray,
    patch: int,
) -> None:
    """In place: add the ``p×p`` patches of ``src`` at ``source_yx`` (``N×2``) into ``acc`` (``H×W×C``) at
    ``target_yx`` (``N×2``), each with weight ``w[i]``, and the weights into ``weight`` (``H×W``)."""
    t = np.ascontiguousarray(target_yx, np.int64)
    s = np.ascontiguousarray(source_yx, np.int64)
    _splat(
        acc,
        weight,
        np.ascontiguousarray(src, np.float32),
        t[:, 0],
        t[:, 1],
        s[:, 0],
        s[:, 1],
        np.ascontiguousarray(w, np.float32),
        patch,
    )


def nnf_to_rgb(nnf: NNF, grid_b: tuple[int, int]) -> np.ndarray:
    """Colour-code a field as in the paper's figures: red = matched x, blue = matched y (``H'×W'×3`` in [0, 1])."""
    rgb = np.zeros((*nnf.field.shape[:2], 3), np.float32)
    rgb[..., 0] = nnf.field[..., 1] / max(grid_b[1] - 1, 1)
    rgb[..., 2] = nnf.field[..., 0] / max(grid_b[0] - 1, 1)
    return rgb
