"""Image synthesis on top of the PatchMatch field: hole filling, retargeting and reshuffling.

All three minimize a patch-based energy by EM (Wexler et al. 2007, "Space-time completion of video"), coarse to
fine, with PatchMatch as the nearest-neighbour search (Barnes et al. 2009, §4):

* **E-step** — for every target patch, find its nearest source patch (the field; at a finer level it starts from
  the coarser level's field, upsampled);
* **M-step (voting)** — every target pixel becomes the weighted mean of the values the overlapping matched
  patches propose for it (Wexler eq. 5). In a hole a patch's vote is weighted by its confidence ``γ^-depth``
  (Wexler §4, γ = 1.3), ``depth`` the distance of its centre from the known pixels, so votes anchored in known
  pixels count most. The weights are kept as logarithms and each pixel's votes are scaled by its largest one
  (:func:`genlab.edit.voting.mean_vote`), so no pixel's total weight underflows to zero.

Hole filling solves only the patches that touch the hole and matches them to patches that do not; known pixels are
never changed. Retargeting is Simakov et al. 2008's bidirectional similarity: the output must be *coherent* (each
of its patches found in the input) and *complete* (each input patch found in it), so every pixel is the average
of both kinds of votes, ``(Σ_complete / N_S + Σ_coherent / N_T)`` normalized (Simakov eq. 2), each vote also
weighted by its similarity ``exp(-d / 2σ²)`` (``σ²`` the 75th percentile of the distances), with the size changed
in steps of 5% at the coarsest level. Reshuffling pastes a region at its new place and fills its old
place and a thin seam around the new one as holes, matching only patches outside both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from genlab.edit.patchmatch import NNF, grid_shape, patch_grid_mask, patchmatch, upsample_nnf
from genlab.edit.voting import field_votes, mean_vote
from genlab.errors import GenlabError

FieldFn = Callable[..., NNF]  # patchmatch or patchmatch_torch (same signature)


@dataclass
class SynthesisConfig:
    """Parameters shared by hole filling, retargeting and reshuffling."""

    patch: int = 9  # patch side p
    iterations: int = 3  # PatchMatch iterations per EM step (the field starts from the last one)
    em_coarse: int = 8  # EM steps at the coarsest level
    em_fine: int = 3  # EM steps at the finest level (levels between interpolate)
    min_size: int = 32  # the coarsest level's shorter side, in pixels (at least 2·patch)
    resize_step: float = 0.05  # retargeting: the largest relative size change per step at the coarsest level
    seed: int = 0


def _em_steps(cfg: SynthesisConfig, level: int, levels: int) -> int:
    """EM steps at ``level`` (0 = finest): from ``em_coarse`` at the coarsest down to ``em_fine``."""
    if levels == 1:
        return max(cfg.em_coarse, cfg.em_fine)
    return round(cfg.em_fine + (cfg.em_coarse - cfg.em_fine) * level / (levels - 1))


def count_levels(shape: tuple[int, ...], cfg: SynthesisConfig) -> int:
    """Pyramid levels such that the coarsest shorter side stays at least ``max(min_size, 2·patch)``."""
    floor = max(cfg.min_size, 2 * cfg.patch)
    side, levels = min(shape[:2]), 1
    while math.ceil(side / 2) >= floor:
        side, levels = math.ceil(side / 2), levels + 1
    return levels


def hole_levels(hole: np.ndarray, patch: int) -> int:
    """Levels needed until the hole's deepest pixel is within two patch widths of a known pixel.

    Coarser levels would match patches that span much of the image, and the fill would lose its detail.
    """
    depth = float(ndimage.distance_transform_edt(hole).max())
    return 1 + max(0, math.ceil(math.log2(max(depth, 1.0) / (2 * patch))))


def downsample(img: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """Halve an ``H×W×C`` image by 2×2 averaging (``ceil`` sizes), averaging only ``known`` pixels if given."""
    h, w = img.shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    wt = np.ones((h, w), np.float32) if known is None else known.astype(np.float32)
    x = np.pad(img * wt[..., None], pad, mode="edge")
    wt = np.pad(wt, pad[:2], mode="edge")
    s = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2, -1).sum((1, 3))
    n = wt.reshape(wt.shape[0] // 2, 2, wt.shape[1] // 2, 2).sum((1, 3))
    return (s / np.maximum(n, 1e-8)[..., None]).astype(np.float32)


def downsample_mask(mask: np.ndarray) -> np.ndarray:
    """Halve a bool mask: a coarse pixel is set if any of its 2×2 fine pixels is."""
    h, w = mask.shape
    m = np.pad(mask, ((0, h % 2), (0, w % 2)), mode="edge")
    return m.reshape(m.shape[0] // 2, 2, m.shape[1] // 2, 2).any((1, 3))


def resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize ``H×W×C`` to ``shape`` (bilinear, anti-aliased when shrinking)."""
    from skimage.transform import resize as sk_resize

    shrink = shape[0] < img.shape[0] or shape[1] < img.shape[1]
    return sk_resize(img, shape, order=1, anti_aliasing=shrink, preserve_range=True).astype(np.float32)


def log_similarity(dist: np.ndarray) -> np.ndarray:
    """Log vote weights ``-d / 2σ²`` (weights ``exp(-d / 2σ²)``), ``σ²`` the 75th percentile of the distances
    ``d`` (Wexler et al. 2007, §4). Once most patches match exactly σ² is tiny and the weights span thousands of
    orders of magnitude: they are only ever used as logs (:func:`genlab.edit.voting.mean_vote`)."""
    sigma2 = max(float(np.percentile(dist, 75)), 1e-6)
    return -np.asarray(dist, np.float64) / (2 * sigma2)


def log_confidence(hole: np.ndarray, patch: int, gamma: float = 1.3) -> np.ndarray:
    """Per patch (``H'×W'``): the log of ``γ^-depth``, ``depth`` its centre's distance from the known pixels
    (Wexler §4); 1e-15 a hundred pixels deep, so used only as a log."""
    depth = ndimage.distance_transform_edt(hole)
    c = patch // 2
    gh, gw = grid_shape(hole.shape, patch)
    return -math.log(gamma) * depth[c : c + gh, c : c + gw]


# --- hole filling -----------------------------------------------------------------------------------------
def _fill_nearest(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """First guess for a hole: each hole pixel takes the colour of the nearest known pixel, then a light blur."""
    _, (iy, ix) = ndimage.distance_transform_edt(hole, return_indices=True)
    out = img[iy, ix]
    blurred = ndimage.gaussian_filter(out, sigma=(2, 2, 0))
    return np.where(hole[..., None], blurred, img).astype(np.float32)


def _fill_level(
    img: np.ndarray,
    hole: np.ndarray,
    excluded: np.ndarray,
    init: np.ndarray | None,
    steps: int,
    cfg: SynthesisConfig,
    field_fn: FieldFn,
    seed: int,
) -> NNF:
    """EM steps at one level, in place on ``img``; returns the last field (target: hole patches → source)."""
    p = cfg.patch
    active = patch_grid_mask(hole, p, touching=True)
    allowed = patch_grid_mask(hole | excluded, p, touching=False)
    if not allowed.any():
        raise GenlabError(
            f"at {img.shape[1]}×{img.shape[0]} pixels no {p}×{p} patch lies outside the hole: "
            "use a smaller --patch or a smaller mask"
        )
    log_w = log_confidence(hole, p)[active]  # in the order of field_votes
    nnf = None
    for step in range(steps):
        nnf = field_fn(img, img, p, cfg.iterations, active=active, allowed=allowed, init=init, seed=seed + step)
        filled, _ = mean_vote(img, img.shape, *field_votes(nnf, active), log_w, p)  # every hole pixel is covered
        img[hole] = filled[hole]
        init = nnf.field
    return nnf


def inpaint(
    image: np.ndarray,
    hole: np.ndarray,
    cfg: SynthesisConfig | None = None,
    *,
    excluded: np.ndarray | None = None,
    field_fn: FieldFn = patchmatch,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Fill ``hole`` (``H×W`` bool, True = unknown) of ``image`` (``H×W×C`` float) from the rest of the image.

    ``excluded`` (``H×W`` bool) marks known pixels that must not be copied from. Known pixels are returned
    unchanged. ``progress(n)`` is called after each level with the number of levels done.
    """
    cfg = cfg or SynthesisConfig()
    image = np.asarray(image, np.float32)
    hole = np.asarray(hole, bool)
    excluded = np.zeros_like(hole) if excluded is None else np.asarray(excluded, bool)
    if not hole.any():
        return image.copy()
    levels = min(count_levels(image.shape, cfg), hole_levels(hole, cfg.patch))
    images, holes, excl = [image], [hole], [excluded]
    for _ in range(levels - 1):
        images.append(downsample(images[-1], ~holes[-1]))
        holes.append(downsample_mask(holes[-1]))
        excl.append(downsample_mask(excl[-1]))
    field = None
    current = None
    for level in range(levels - 1, -1, -1):
        img, h = images[level].copy(), holes[level]
        if current is None:
            img = _fill_nearest(img, h)
        else:  # the coarser solution, upsampled, is the first guess inside the hole
            img[h] = resize(current, img.shape[:2])[h]
            field = upsample_nnf(field, grid_shape(img.shape, cfg.patch), grid_shape(img.shape, cfg.patch))
        nnf = _fill_level(
            img, h, excl[level], field, _em_steps(cfg, level, levels), cfg, field_fn, cfg.seed + 1000 * level
        )
        field, current = nnf.field, img
        if progress is not None:
            progress(levels - level)
    out = image.copy()
    out[hole] = current[hole]
    return out


# --- retargeting ------------------------------------------------------------------------------------------
def _bidirectional_step(
    source: np.ndarray,
    target: np.ndarray,
    coherent: np.ndarray | None,
    complete: np.ndarray | None,
    cfg: SynthesisConfig,
    field_fn: FieldFn,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One EM step of bidirectional similarity; returns the new target and both fields (T→S, S→T)."""
    p = cfg.patch
    t2s = field_fn(target, source, p, cfg.iterations, init=coherent, seed=seed)
    s2t = field_fn(source, target, p, cfg.iterations, init=complete, seed=seed + 1)
    n_t, n_s = t2s.dist.size, s2t.dist.size
    # coherence: each target patch votes its match in S, weight 1/N_T (Simakov eq. 2) × similarity
    coh_t, coh_s = field_votes(t2s)
    coh_w = log_similarity(t2s.dist).reshape(-1) - math.log(n_t)
    # completeness: each source patch votes itself at its match in T, weight 1/N_S × similarity
    com_t, com_s = s2t.field.reshape(-1, 2), np.indices(s2t.dist.shape).reshape(2, -1).T
    com_w = log_similarity(s2t.dist).reshape(-1) - math.log(n_s)
    out, _ = mean_vote(  # every target pixel is covered by a coherence vote
        source,
        target.shape,
        np.concatenate([coh_t, com_t]),
        np.concatenate([coh_s, com_s]),
        np.concatenate([coh_w, com_w]),
        p,
    )
    return out, t2s.field, s2t.field


def retarget(
    image: np.ndarray,
    height: int,
    width: int,
    cfg: SynthesisConfig | None = None,
    *,
    field_fn: FieldFn = patchmatch,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``image`` (``H×W×C``) resized to ``height×width`` keeping its content (bidirectional similarity)."""
    cfg = cfg or SynthesisConfig()
    image = np.asarray(image, np.float32)
    h0, w0 = image.shape[:2]
    if min(height, width) < cfg.patch:
        raise GenlabError(f"the output ({width}×{height}) must be at least --patch {cfg.patch} pixels on each side")
    if (height, width) == (h0, w0):
        return image.copy()
    levels = count_levels((min(h0, height), min(w0, width)), cfg)
    sources = [image]
    for _ in range(levels - 1):
        sources.append(downsample(sources[-1]))

    def target_shape(level: int) -> tuple[int, int]:
        s = sources[level].shape
        return max(cfg.patch, round(height * s[0] / h0)), max(cfg.patch, round(width * s[1] / w0))

    # coarsest level: change the size in small steps, a few EM steps each
    src = sources[-1]
    final = target_shape(levels - 1)
    n_steps = max(
        1, math.ceil(max(abs(final[0] / src.shape[0] - 1), abs(final[1] / src.shape[1] - 1)) / cfg.resize_step)
    )
    target, seed = src, cfg.seed
    coherent = complete = None
    for k in range(1, n_steps + 1):
        shape = (
            round(src.shape[0] + (final[0] - src.shape[0]) * k / n_steps),
            round(src.shape[1] + (final[1] - src.shape[1]) * k / n_steps),
        )
        target, coherent = resize(target, shape), None
        for _ in range(max(2, cfg.em_coarse // n_steps)):
            target, coherent, complete = _bidirectional_step(src, target, coherent, complete, cfg, field_fn, seed)
            seed += 2
    if progress is not None:
        progress(1)
    for level in range(levels - 2, -1, -1):  # finer levels: upsample, then EM
        src = sources[level]
        target = resize(target, target_shape(level))
        coherent = upsample_nnf(coherent, grid_shape(target.shape, cfg.patch), grid_shape(src.shape, cfg.patch))
        complete = upsample_nnf(complete, grid_shape(src.shape, cfg.patch), grid_shape(target.shape, cfg.patch))
        for _ in range(_em_steps(cfg, level, levels)):
            target, coherent, complete = _bidirectional_step(src, target, coherent, complete, cfg, field_fn, seed)
            seed += 2
        if progress is not None:
            progress(levels - level)
    return np.clip(target, 0.0, 1.0)


# --- reshuffling ------------------------------------------------------------------------------------------
def reshuffle(
    image: np.ndarray,
    region: tuple[int, int, int, int],
    to: tuple[int, int],
    cfg: SynthesisConfig | None = None,
    *,
    margin: int | None = None,
    field_fn: FieldFn = patchmatch,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Move ``region`` = ``(x0, y0, x1, y1)`` (x1, y1 exclusive) of ``image`` so its corner lands at ``to = (x, y)``.

    The moved pixels are kept as they are; the old place and a seam of ``margin`` pixels (default the patch size)
    around both places are re-synthesized from the rest of the image — never from the region itself, so the
    object is moved, not copied.
    """
    cfg = cfg or SynthesisConfig()
    image = np.asarray(image, np.float32)
    x0, y0, x1, y1 = region
    tx, ty = to
    rh, rw = y1 - y0, x1 - x0
    margin = cfg.patch if margin is None else margin
    out = image.copy()
    out[ty : ty + rh, tx : tx + rw] = image[y0:y1, x0:x1]
    old = np.zeros(image.shape[:2], bool)
    old[y0:y1, x0:x1] = True
    new = np.zeros_like(old)
    new[ty : ty + rh, tx : tx + rw] = True
    grow = np.ones((2 * margin + 1, 2 * margin + 1), bool)
    hole = (ndimage.binary_dilation(old, grow) | ndimage.binary_dilation(new, grow)) & ~new
    if (hole | new).all():
        raise GenlabError("the region and its new place leave nothing of the image to fill from")
    return inpaint(out, hole, cfg, excluded=new, field_fn=field_fn, progress=progress)
