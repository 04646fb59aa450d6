"""Texture synthesis: the minimum-error boundary cut, image quilting and Efros–Leung."""

import numpy as np
import pytest

from genlab.edit.texture import efros_leung, min_error_boundary, quilt, seam_mask
from genlab.errors import GenlabError


def test_min_error_cut_follows_the_cheapest_path():
    rng = np.random.default_rng(0)
    err = rng.uniform(1.0, 2.0, (12, 6))
    path = np.array([0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 2, 1])  # a zig-zag of 8-connected steps
    err[np.arange(12), path] = 0.0
    assert np.array_equal(min_error_boundary(err), path)


def test_quilting_seams_follow_the_minimum_error_cut():
    """Constructed overlaps: the old and new blocks agree only along a known path, which the seam must follow."""
    rng = np.random.default_rng(1)
    block, overlap = 16, 5
    cols, rows = np.arange(block)[None, :], np.arange(block)[:, None]
    path = np.array([1, 2, 3, 3, 2, 1, 0, 1, 2, 3, 4, 4, 3, 2, 1, 1])
    old, new = rng.random((block, block, 3)), rng.random((block, block, 3))
    new[np.arange(block), path] = old[np.arange(block), path]  # left overlap: a vertical zero-error path
    assert np.array_equal(seam_mask(old, new, overlap, 0), np.broadcast_to(cols >= path[:, None], (block, block)))
    old, new = rng.random((block, block, 3)), rng.random((block, block, 3))
    new[path, np.arange(block)] = old[path, np.arange(block)]  # top overlap: a horizontal one
    assert np.array_equal(seam_mask(old, new, 0, overlap), np.broadcast_to(rows >= path[None, :], (block, block)))
    # with both overlaps a pixel comes from the new block only when it is past both cuts
    both = seam_mask(old, new, overlap, overlap)
    assert np.array_equal(both, seam_mask(old, new, overlap, 0) & seam_mask(old, new, 0, overlap))


def test_quilting_continues_a_periodic_texture_seamlessly():
    y, x = np.mgrid[0:64, 0:64]
    sample = np.stack([(x % 8) / 8, (y % 6) / 6, ((x + y) % 4) / 4], -1).astype(np.float32)
    out = quilt(sample, (100, 90), block=24, overlap=4, seed=0)
    assert out.shape == (100, 90, 3)
    # zero overlap error is always available, so the output is the same lattice (shifted): periods 8, 6, 4
    assert np.array_equal(out[:, 8:, 0], out[:, :-8, 0])
    assert np.array_equal(out[6:, :, 1], out[:-6, :, 1])


def test_quilting_copies_sample_pixels_and_repeats_with_a_seed():
    sample = np.random.default_rng(2).random((40, 40, 3)).astype(np.float32)
    out = quilt(sample, (70, 50), block=16, seed=3)
    colours = {tuple(c) for c in sample.reshape(-1, 3)}
    assert all(tuple(c) in colours for c in out.reshape(-1, 3))  # cuts, never blends
    assert np.array_equal(out, quilt(sample, (70, 50), block=16, seed=3))
    assert not np.array_equal(out, quilt(sample, (70, 50), block=16, seed=4))


def test_efros_leung_grows_from_sample_pixels():
    y, x = np.mgrid[0:24, 0:24]
    sample = np.stack([(x % 6) / 6, (y % 4) / 4, np.zeros_like(x, float)], -1).astype(np.float32)
    done: list[int] = []
    out = efros_leung(sample, (20, 28), window=5, seed=0, progress=done.append)
    assert out.shape == (20, 28, 3) and sum(done) == 20 * 28
    colours = {tuple(c) for c in sample.reshape(-1, 3)}
    assert all(tuple(c) in colours for c in out.reshape(-1, 3))
    # a periodic sample is continued periodically wherever windows match exactly
    assert np.mean(out[:, 6:, 0] == out[:, :-6, 0]) > 0.9
    assert np.array_equal(out, efros_leung(sample, (20, 28), window=5, seed=0))


def test_bad_texture_parameters():
    sample = np.zeros((20, 20, 3), np.float32)
    with pytest.raises(GenlabError, match="--window 4: must be odd"):
        efros_leung(sample, (10, 10), window=4)
    with pytest.raises(GenlabError, match="--window 21 is larger than the sample"):
        efros_leung(sample, (10, 10), window=21)
    with pytest.raises(GenlabError, match="--block 32 is larger than the sample"):
        quilt(sample, (50, 50), block=32)
    with pytest.raises(GenlabError, match="--overlap 10"):
        quilt(sample, (50, 50), block=10, overlap=10)
