"""PatchMatch: the field against brute force, monotone iterations, masks, coarse initialization, determinism."""

import numba
import numpy as np
import pytest
import torch

from genlab.data.images import bundled_image
from genlab.edit.patchmatch import (
    exact_nnf,
    grid_shape,
    nnf_to_rgb,
    patch_grid_mask,
    patchmatch,
    upsample_nnf,
    vote,
)
from genlab.edit.patchmatch_torch import patchmatch_torch
from genlab.edit.synthesis import downsample
from genlab.errors import GenlabError

BACKENDS = {"numba": patchmatch, "torch": patchmatch_torch}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These tensors are tiny: one thread avoids OpenMP overhead (and stalls when another job shares the cores)."""
    torch.set_num_threads(1)
    yield


def crop(name: str, y: int, x: int, size: int = 64) -> np.ndarray:
    return np.ascontiguousarray(bundled_image(name)[y : y + size, x : x + size], np.float32)


def pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Small natural image pairs: a photo and a noisy copy, and two photos of different scenes."""
    coffee = crop("coffee", 100, 200)
    noisy = np.clip(coffee + np.random.default_rng(0).normal(0, 0.03, coffee.shape), 0, 1).astype(np.float32)
    return {
        "coffee-noisy": (coffee, noisy),
        "coffee-chelsea": (coffee, crop("chelsea", 50, 100)),
        "astronaut-chelsea": (crop("astronaut", 100, 100), crop("chelsea", 100, 150)),
    }


def test_exact_field_is_the_brute_force_minimum():
    rng = np.random.default_rng(1)
    a, b = rng.random((9, 10, 3), np.float32), rng.random((8, 11, 3), np.float32)
    exact = exact_nnf(a, b, 3)
    for y in range(7):
        for x in range(8):
            d = [((a[y : y + 3, x : x + 3] - b[v : v + 3, u : u + 3]) ** 2).sum() for v in range(6) for u in range(9)]
            assert exact.dist[y, x] == pytest.approx(min(d), rel=1e-5)
            assert tuple(exact.field[y, x]) == divmod(int(np.argmin(d)), 9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pair", ["coffee-noisy", "coffee-chelsea", "astronaut-chelsea"])
def test_five_iterations_within_two_percent_of_exact(backend, pair):
    a, b = pairs()[pair]
    exact = exact_nnf(a, b, 7).mean_distance()
    field = BACKENDS[backend](a, b, 7, 5, seed=3)
    assert field.mean_distance() <= 1.02 * exact
    # the reported distances are the true SSDs of the reported matches
    y, x = 10, 20
    v, u = field.field[y, x]
    assert field.dist[y, x] == pytest.approx(((a[y : y + 7, x : x + 7] - b[v : v + 7, u : u + 7]) ** 2).sum(), rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_iteration_lowers_the_mean_distance(backend):
    a, b = crop("chelsea", 100, 150), crop("coffee", 150, 300)
    start = BACKENDS[backend](a, b, 7, 0, seed=0).mean_distance()
    means: list[float] = []
    BACKENDS[backend](a, b, 7, 5, seed=0, on_iteration=lambda i, nnf: means.append(nnf.mean_distance()))
    assert len(means) == 5
    assert all(later < earlier for earlier, later in zip([start, *means], means, strict=False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_masks_exclude_source_and_target_patches(backend):
    img = crop("coffee", 60, 60, 48)
    hole = np.zeros(img.shape[:2], bool)
    hole[15:30, 18:34] = True
    active = patch_grid_mask(hole, 5, touching=True)
    allowed = patch_grid_mask(hole, 5, touching=False)
    field = BACKENDS[backend](img, img, 5, 4, active=active, allowed=allowed, seed=0)
    matched = field.field[active]
    assert allowed[matched[:, 0], matched[:, 1]].all()  # never a patch that touches the hole
    assert np.isfinite(field.dist[active]).all() and np.isinf(field.dist[~active]).all()


def test_patch_grid_mask_counts_pixels_in_each_patch():
    pixels = np.zeros((6, 7), bool)
    pixels[2, 3] = True
    touching = patch_grid_mask(pixels, 3, touching=True)
    assert touching.shape == (4, 5)
    assert touching.sum() == 9 and touching[0:3, 1:4].all()
    assert (patch_grid_mask(pixels, 3, touching=False) == ~touching).all()


def test_initialization_from_a_coarser_level_starts_closer():
    a, b = crop("chelsea", 60, 100, 96), crop("chelsea", 64, 106, 96)  # a shifted view
    coarse = patchmatch(downsample(a), downsample(b), 7, 5, seed=0)
    init = upsample_nnf(coarse.field, grid_shape(a.shape, 7), grid_shape(b.shape, 7))
    from_coarse = patchmatch(a, b, 7, 0, init=init, seed=0).mean_distance()
    from_random = patchmatch(a, b, 7, 0, seed=0).mean_distance()
    assert from_coarse < 0.5 * from_random


def test_same_seed_same_field_whatever_the_threads():
    a, b = crop("coffee", 0, 0, 80), crop("chelsea", 0, 0, 80)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = patchmatch(a, b, 7, 3, seed=5)
        numba.set_num_threads(max(2, threads) if numba.config.NUMBA_NUM_THREADS > 1 else 1)
        many = patchmatch(a, b, 7, 3, seed=5)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(one.field, many.field)
    assert not np.array_equal(one.field, patchmatch(a, b, 7, 3, seed=6).field)


def test_reconstruction_and_colour_code():
    a = crop("coffee", 100, 200, 40)
    field = patchmatch(a, a, 5, 3, seed=0)
    acc, weight = vote(a, field, a.shape)
    rebuilt = acc / weight[..., None]
    assert field.mean_distance() < 1e-6 and np.allclose(rebuilt, a, atol=1e-5)  # A from itself: exact
    rgb = nnf_to_rgb(field, grid_shape(a.shape, 5))
    assert rgb.shape == (36, 36, 3) and rgb.min() >= 0 and rgb.max() <= 1 and (rgb[..., 1] == 0).all()


def test_bad_patch_sizes():
    a = np.zeros((10, 12, 3), np.float32)
    with pytest.raises(GenlabError, match="--patch 13 is larger than the image A"):
        patchmatch(a, a, 13)
    with pytest.raises(GenlabError, match="different numbers of channels"):
        patchmatch(a, a[..., 0], 3)
    with pytest.raises(GenlabError, match="no 3×3 patch of the source is allowed"):
        patchmatch(a, a, 3, allowed=np.zeros((8, 10), bool))
