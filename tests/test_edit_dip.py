"""Deep Image Prior: the fit lowers its data term, any size, each task, early stopping."""

import numpy as np
import pytest
import torch

from genlab.edit.dip import DIPConfig, deep_image_prior, downsample, padded_size
from genlab.errors import GenlabError
from genlab.nn.skipnet import SkipEncoderDecoder

TINY = dict(width=8, depth=3, skip=2, input_channels=8, threads=1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These tensors are tiny: one thread avoids OpenMP overhead (and stalls when another job shares the cores)."""
    torch.set_num_threads(1)
    yield


def smooth_image(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), 0.3 + 0.5 * x * y], -1).astype(np.float32)


@pytest.mark.slow
def test_fitting_lowers_the_mse_to_its_target():
    target = smooth_image(32, 32)
    result = deep_image_prior("denoise", target, DIPConfig(iterations=120, log_every=20, **TINY), reference=target)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 6 and losses[-1] < 0.3 * losses[0]
    assert result.history[-1]["psnr"] > result.history[0]["psnr"] + 3
    assert result.image.shape == target.shape and result.stopped == "iterations"


@pytest.mark.slow
def test_denoising_beats_the_noisy_input():
    clean = smooth_image(32, 32)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    result = deep_image_prior("denoise", noisy, DIPConfig(iterations=150, width=16, depth=3, threads=1))
    mse = lambda x: float(((x - clean) ** 2).mean())  # noqa: E731
    assert mse(result.image) < 0.5 * mse(noisy)


def test_any_size_is_padded_and_cropped_back():
    img = smooth_image(19, 27)
    assert deep_image_prior("dejpeg", img, DIPConfig(iterations=2, **TINY)).image.shape == (19, 27, 3)
    tiny = deep_image_prior("denoise", img[:5, :3], DIPConfig(iterations=2, width=8, threads=1))  # depth 5
    assert tiny.image.shape == (5, 3, 3)
    assert padded_size(5, 3, 32) == (64, 64) and padded_size(65, 100, 32) == (96, 128)
    sr = deep_image_prior("superres", img, DIPConfig(iterations=2, **TINY), scale=4)
    assert sr.image.shape == (76, 108, 3)
    net = SkipEncoderDecoder(c_in=8, width=8, depth=3, skip=2)
    assert net.multiple == 8 and net(torch.rand(1, 8, 16, 24)).shape == (1, 3, 16, 24)


@pytest.mark.slow
def test_superresolution_fits_through_the_downsampler():
    hr = smooth_image(32, 32)
    lr = downsample(torch.from_numpy(hr.transpose(2, 0, 1))[None], (8, 8))[0].numpy().transpose(1, 2, 0)
    result = deep_image_prior("superres", lr, DIPConfig(iterations=150, log_every=50, **TINY), scale=4, reference=hr)
    assert result.history[-1]["loss"] < 0.3 * result.history[0]["loss"]
    assert result.history[-1]["psnr"] > 20


@pytest.mark.slow
def test_inpainting_fits_only_known_pixels():
    img = smooth_image(24, 24)
    hole = np.zeros((24, 24), bool)
    hole[8:16, 8:16] = True
    damaged = img.copy()
    damaged[hole] = 1.0  # white: must not be fitted
    result = deep_image_prior("inpaint", damaged, DIPConfig(iterations=150, **TINY), mask=hole)
    assert result.image[hole].mean() < 0.9
    with pytest.raises(GenlabError, match="needs a mask"):
        deep_image_prior("inpaint", damaged, DIPConfig(iterations=1, **TINY))


@pytest.mark.slow
def test_early_stopping_options():
    img = smooth_image(16, 16)
    assert deep_image_prior("denoise", img, DIPConfig(iterations=50, min_loss=10.0, **TINY)).stopped == "min_loss"
    timed = deep_image_prior("denoise", img, DIPConfig(iterations=10_000, time_budget=0.5, **TINY))
    assert timed.stopped == "time_budget" and timed.iterations < 10_000
    patient = deep_image_prior("denoise", img, DIPConfig(iterations=400, patience=5, window=4, reg_noise=0.3, **TINY))
    assert patient.stopped == "patience" and patient.iterations < 400


def test_same_seed_same_result_and_bad_inputs():
    img = smooth_image(16, 16)
    a = deep_image_prior("denoise", img, DIPConfig(iterations=5, seed=1, **TINY)).image
    assert np.array_equal(a, deep_image_prior("denoise", img, DIPConfig(iterations=5, seed=1, **TINY)).image)
    with pytest.raises(GenlabError, match="unknown task"):
        deep_image_prior("colorize", img)
    with pytest.raises(GenlabError, match="--reference is 8×8 but the output is 16×16"):
        deep_image_prior("denoise", img, DIPConfig(iterations=1, **TINY), reference=img[:8, :8])
