"""Hole filling, retargeting and reshuffling on top of the PatchMatch field; the classic baselines."""

import numpy as np
import pytest
from scipy import ndimage

from genlab.data.images import bundled_image
from genlab.edit.baselines import INPAINT_BASELINES, bicubic_upscale, inpaint_baseline
from genlab.edit.patchmatch import exact_nnf, patchmatch
from genlab.edit.synthesis import (
    SynthesisConfig,
    _bidirectional_step,
    downsample,
    inpaint,
    reshuffle,
    resize,
    retarget,
)
from genlab.errors import GenlabError
from genlab.eval.fidelity import psnr


def periodic(h: int = 64, w: int = 64) -> np.ndarray:
    """A colour image made of periodic waves: every patch of it appears elsewhere."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [
            0.5 + 0.4 * np.sin(2 * np.pi * x / 8),
            0.5 + 0.4 * np.sin(2 * np.pi * (x + y) / 12),
            0.5 + 0.3 * np.cos(2 * np.pi * y / 6),
        ],
        -1,
    ).astype(np.float32)


def square_hole(shape: tuple[int, ...], y0: int, x0: int, side: int) -> np.ndarray:
    hole = np.zeros(shape[:2], bool)
    hole[y0 : y0 + side, x0 : x0 + side] = True
    return hole


def test_inpainting_keeps_known_pixels_and_continues_the_pattern():
    img = periodic()
    hole = square_hole(img.shape, 24, 24, 16)
    out = inpaint(img, hole, SynthesisConfig(patch=7))
    assert np.array_equal(out[~hole], img[~hole])  # bit for bit
    assert psnr(out, img, hole) > 40  # the waves continue through the hole
    for method in INPAINT_BASELINES:  # diffusion-style fills cannot invent the waves
        assert psnr(inpaint_baseline(img, hole, method), img, hole) < 20


def test_inpainting_a_photo_is_plausible_and_repeatable():
    img = np.ascontiguousarray(bundled_image("chelsea")[::3, ::3])  # 100×151
    hole = square_hole(img.shape, 40, 60, 20)
    a = inpaint(img, hole, SynthesisConfig(seed=1))
    assert np.array_equal(a, inpaint(img, hole, SynthesisConfig(seed=1)))
    assert np.array_equal(a[~hole], img[~hole]) and np.isfinite(a).all()
    assert psnr(a, img, hole) > 18
    assert a[hole].std() > 0.5 * img[hole].std()  # texture, not a flat blur


def test_excluded_pixels_are_never_copied():
    img = np.full((48, 48, 3), 0.5, np.float32)
    img += np.random.default_rng(0).normal(0, 0.02, img.shape).astype(np.float32)
    img[5:15, 5:15] = (1.0, 0.0, 0.0)  # a red square that must not be copied into the hole
    hole = square_hole(img.shape, 25, 25, 12)
    excluded = square_hole(img.shape, 5, 5, 10)
    out = inpaint(img, hole, SynthesisConfig(patch=5), excluded=excluded)
    assert out[hole][:, 0].max() < 0.75


def test_hole_leaving_no_source_patch_is_an_error():
    img = periodic(20, 20)
    hole = np.ones((20, 20), bool)
    hole[0, 0] = False
    with pytest.raises(GenlabError, match="no 7×7 patch lies outside the hole"):
        inpaint(img, hole, SynthesisConfig(patch=7))


@pytest.mark.parametrize("size", [(60, 40), (60, 90), (45, 64)])
def test_retargeting_yields_the_requested_size(size):
    img = np.ascontiguousarray(bundled_image("coffee")[::6, ::6][:60, :64])
    out = retarget(img, *size, SynthesisConfig(patch=5))
    assert out.shape == (*size, 3) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert abs(out.mean() - img.mean()) < 0.05  # made of the input's patches


def test_retargeting_keeps_the_content_of_a_pattern():
    img = periodic(48, 64)
    out = retarget(img, 48, 40, SynthesisConfig(patch=7))
    # its patches are found in the input (coherence) much better than those of a plain resize
    coherence = exact_nnf(out, img, 7).mean_distance()
    assert coherence < 0.75 * exact_nnf(resize(img, (48, 40)), img, 7).mean_distance()


def test_retarget_to_a_size_below_the_patch_is_an_error():
    with pytest.raises(GenlabError, match="at least --patch 7"):
        retarget(periodic(), 64, 5, SynthesisConfig(patch=7))


def test_reshuffling_moves_the_region_and_removes_it_from_its_old_place():
    img = np.ascontiguousarray(bundled_image("grass")[:64, :96, None].repeat(3, 2))
    img[20:36, 10:26] = (0.9, 0.1, 0.1)  # a red object on grass
    out = reshuffle(img, (10, 20, 26, 36), (60, 30), SynthesisConfig(patch=5))
    assert np.array_equal(out[30:46, 60:76], img[20:36, 10:26])  # moved as it was
    old = out[20:36, 10:26]
    assert (old[..., 0] - old[..., 1]).max() < 0.4  # no red left where it was
    far = np.ones(img.shape[:2], bool)
    far[10:46, 0:36] = far[20:56, 50:86] = False
    assert np.array_equal(out[far], img[far])  # away from both places nothing changes


def test_downsample_ignores_unknown_pixels():
    img = np.zeros((4, 4, 1), np.float32)
    img[0, 0] = 100.0  # a hole pixel with garbage
    known = np.ones((4, 4), bool)
    known[0, 0] = False
    assert downsample(img, known)[0, 0, 0] == 0.0 and downsample(img)[0, 0, 0] == 25.0


def test_baselines_keep_known_pixels_and_bicubic_scales():
    img = np.ascontiguousarray(bundled_image("coffee")[::8, ::8])
    hole = square_hole(img.shape, 10, 10, 8)
    for method in INPAINT_BASELINES:
        out = inpaint_baseline(img, hole, method)
        assert out.shape == img.shape and np.abs(out[~hole] - img[~hole]).max() < 1e-6
    up = bicubic_upscale(img, 4)
    assert up.shape == (img.shape[0] * 4, img.shape[1] * 4, 3)
    assert np.allclose(up[1::4, 1::4].mean(), img.mean(), atol=0.02)
    with pytest.raises(GenlabError, match="unknown inpainting method"):
        inpaint_baseline(img, hole, "magic")


# --- no holes: nothing comes out darker than the input near it ---------------------------------------------
def too_dark(image: np.ndarray, out: np.ndarray, block: int = 4, reach: int = 2, tol: float = 0.02) -> list:
    """The ``block×block`` blocks of ``out`` (a retargeting of ``image``) darker than everything near them.

    Near: the output block at rows ``[y, y+b)``, columns ``[x, x+b)`` is compared with the input's rows
    ``[y - reach, y + b + reach)`` and columns ``[x - max(0, w-W) - reach, x + b + max(0, W-w) + reach)`` (W, w the
    input's and output's widths): retargeting removes (or adds) ``|W-w|`` columns somewhere, so output column x
    shows input columns between x and x + W - w. Grey values; the block's mean must not be below the smallest
    ``b×b`` block mean of the input in that window by more than ``tol`` (5 grey levels: averaging votes may
    darken a little; a hole is black).
    """
    grey, out = image.mean(2), out.mean(2)
    means = ndimage.uniform_filter(grey.astype(np.float64), block, mode="nearest")
    W, (h, w) = grey.shape[1], out.shape
    bad = []
    for y in range(0, h - block + 1, block):
        for x in range(0, w - block + 1, block):
            rows = slice(max(0, y - reach), y + block + reach)
            cols = slice(max(0, x - max(0, w - W) - reach), x + block + max(0, W - w) + reach)
            if out[y : y + block, x : x + block].mean() < means[rows, cols].min() - tol:
                bad.append((y, x))
    return bad


def dark_photo(name: str) -> np.ndarray:
    """A bundled photo with dark regions at 128×128 (2×2 averaging twice), as RGB."""
    img = bundled_image(name)
    img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img
    return downsample(downsample(img))


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_voting_a_nearly_converged_output_leaves_no_black_pixels(name):
    # Late in EM most output patches are exact copies, so σ² (a percentile of the distances) collapses and the
    # few poor matches get weights exp(-d / 2σ²) far below float32's range. Where only such votes cover a
    # pixel (a corner is covered by one coherence patch) the old normalization divided ~0 by a floor: black.
    img = dark_photo(name)
    target = img[:, 16:112].copy()
    target[-4:, :4] = 0.5  # a grey corner found nowhere in the input
    out, _, _ = _bidirectional_step(img, target, None, None, SynthesisConfig(patch=7), patchmatch, 0)
    assert np.isfinite(out).all()
    assert too_dark(img, out) == []
    assert out[-4:, :4].mean() > 0.1  # the corner is made of the input's values, not a hole


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_retargeting_photos_with_dark_regions_leaves_no_holes(name):
    img = dark_photo(name)
    out = retarget(img, 128, 96, SynthesisConfig(patch=7))
    assert too_dark(img, out) == []


def test_filling_a_large_hole_leaves_no_black_centre():
    # 120 pixels deep the confidence γ^-depth is 2e-14: summed as float32 and divided by a floor it made the
    # centre of the hole black
    img = (0.5 + 0.05 * np.random.default_rng(0).standard_normal((280, 400, 3))).astype(np.float32)
    hole = square_hole(img.shape, 20, 20, 240)
    out = inpaint(img, hole, SynthesisConfig(patch=7, iterations=1, em_coarse=2, em_fine=1))
    assert out[hole].min() > img.min() - 0.05 and abs(out[hole].mean() - 0.5) < 0.02
