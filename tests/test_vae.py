"""VAE: the ELBO and the importance-weighted bound are lower bounds of the true log-likelihood (computed here by
integrating over a one-dimensional latent), IWAE tightens with k, β = 0 is the deterministic autoencoder, and the
commands a user runs (train, eval, generate with --interpolate)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from genlab.errors import GenlabError
from genlab.models.vae import VAE, VAEConfig


def _tiny(**kw) -> VAE:
    torch.manual_seed(0)
    cfg = VAEConfig(**({"image_size": 2, "levels": 3, "width": 4, "downs": 1, "latent": 1} | kw))
    return VAE(cfg).eval()


def _all_images() -> torch.Tensor:
    """Every 2×2 grey image of 3 levels, in [-1, 1]."""
    q = torch.tensor(list(itertools.product(range(3), repeat=4)), dtype=torch.float32).view(-1, 1, 2, 2)
    return q - 1


def _exact_log_prob(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log ∫ p(x | z) N(z; 0, 1) dz, by the trapezoid rule on a fine grid (a 1-D latent)."""
    from genlab.data.image_data import quantize

    z = torch.linspace(-9, 9, 4001)
    with torch.no_grad():
        logits = model.decode_logits(z[:, None])
        q = quantize(x, 3)
        log_px_z = torch.stack([-model.recon_nll(logits, qi.expand(len(z), *qi.shape)) for qi in q])  # N×Z
    log_prior = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    dz = float(z[1] - z[0])
    return torch.logsumexp(log_px_z + log_prior + math.log(dz), dim=1)


def test_the_decoder_and_prior_define_a_normalised_distribution_and_both_bounds_lie_below_it():
    model = _tiny()
    x = _all_images()
    exact = _exact_log_prob(model, x)
    assert math.isclose(float(exact.exp().sum()), 1.0, rel_tol=1e-3)  # every image: total probability 1
    torch.manual_seed(1)
    elbo_draws = -torch.stack([sum(model.terms(x, None)) for _ in range(200)]).detach()  # E_q[log p(x|z)] − KL
    iwae_draws = torch.stack([model.iwae(x, None, 10) for _ in range(100)])
    for draws in (elbo_draws, iwae_draws):  # below log p(x), up to 4 standard errors of Monte Carlo noise
        se = draws.std(0) / len(draws) ** 0.5
        assert torch.all(draws.mean(0) <= exact + 4 * se + 1e-3)
    gap_elbo, gap_iwae = float((exact - elbo_draws.mean(0)).mean()), float((exact - iwae_draws.mean(0)).mean())
    assert gap_elbo > 0.05 and gap_iwae < gap_elbo / 4  # k = 10 is a much tighter bound than the ELBO
    assert float((exact - model.iwae(x, None, 2000)).abs().max()) < 0.05  # and a large k closes in on log p(x)


def test_beta_zero_is_the_deterministic_autoencoder():
    model = _tiny(beta=0.0)
    x = _all_images()[:8]
    first = model.loss((x, None, None))
    assert torch.equal(first, model.loss((x, None, None)))  # no sampling in the autoencoder
    with pytest.raises(GenlabError, match="no prior to sample from"):
        model.sample(2)
    figures = model.evaluate(type("Val", (), {"images": x, "labels": None, "__len__": lambda self: 8})())
    assert figures["likelihood"] == "none" and "bits_per_dim" not in figures


def test_interpolation_ends_at_the_two_images_posterior_means():
    model = _tiny(image_size=8, levels=17, width=8, downs=2, latent=4, num_classes=3)
    images = torch.rand(2, 1, 8, 8)
    frames = model.interpolate(5, images=images, classes=(0, 2))
    assert frames.shape == (5, 1, 8, 8) and 0 <= float(frames.min()) and float(frames.max()) <= 1
    mu, _ = model.encode(images * 2 - 1, torch.tensor([0, 2]))
    ends = model.mean_image(model.decode_logits(mu, torch.tensor([0, 2])))
    assert torch.allclose(frames[[0, -1]], ends, atol=1e-5)
    with pytest.raises(GenlabError, match="class-conditional"):
        model.interpolate(4)


@pytest.mark.slow
def test_train_eval_generate_on_digits(cli, tmp_path):
    out = tmp_path / "vae"
    r = cli("train", "image", "--data", "digits", "--model", "vae", "--steps", "150", "--set", "iwae_samples=200",
            "--out", out, "--json")  # fmt: skip
    assert r.code == 0, r
    held = json.loads(r.out)["held_out"]
    assert held["likelihood"] == "bound" and held["levels"] == 17
    assert held["bits_per_dim"] <= held["elbo_bits_per_dim"]  # IWAE is the tighter bound
    assert held["bits_per_dim"] < held["uniform_bits_per_dim"]
    r = cli("eval", "image", out, "--data", "digits", "--json")
    assert r.code == 0 and json.loads(r.out)["likelihood"] == "bound", r
    r = cli("generate", "image", "--model", out, "--interpolate", "0,1", "--frames", "6", "--out",
            tmp_path / "morph.png", "--json")  # fmt: skip
    assert r.code == 0 and (tmp_path / "morph.png").is_file(), r
    r = cli("generate", "image", "--model", out, "--class", "4", "--n", "8", "--out", tmp_path / "fours.png")
    assert r.code == 0 and (tmp_path / "fours.png").is_file(), r
