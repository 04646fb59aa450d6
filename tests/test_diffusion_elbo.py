"""The diffusion model's variational bound (genlab.models.diffusion_elbo): near 0 bits for a point mass with its
exact ε-predictor, large for a predictor that knows nothing, never negative, and reported as a bound by the
model's likelihood hook (what eval image and compare image read)."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.models.diffusion_elbo import elbo_nats
from genlab.sampling.diffusion import beta_schedule

LEVELS = 17


def _point(n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    one = torch.randint(0, LEVELS, (1, 1, 8, 8), generator=g).float() / (LEVELS - 1) * 2 - 1
    return one.expand(n, -1, -1, -1).clone()


def _schedule() -> torch.Tensor:
    return torch.cumprod(1 - beta_schedule("linear", 1000), 0).float()


def test_a_point_mass_with_its_exact_noise_predictor_costs_almost_nothing():
    x0, ac = _point(), _schedule()

    def exact(x_t, i):  # for one point x0, ε = (x_t − √ᾱ x0) / √(1 − ᾱ) exactly
        a = ac[i].view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    nats = elbo_nats(exact, x0, ac, LEVELS, generator=torch.Generator().manual_seed(1))
    bits_per_dim = nats["total"] / (64 * math.log(2))
    assert torch.all(bits_per_dim < 0.01) and torch.all(bits_per_dim >= 0)
    assert torch.all(nats["diffusion"].abs() < 1e-3)


def test_a_predictor_that_knows_nothing_costs_more_than_the_uniform_code():
    x0, ac = _point(), _schedule()
    nats = elbo_nats(lambda x_t, i: torch.zeros_like(x_t), x0, ac, LEVELS, generator=torch.Generator().manual_seed(1))
    assert torch.all(nats["total"] / (64 * math.log(2)) > math.log2(LEVELS))
    for part in ("prior", "diffusion", "decoder"):
        assert torch.all(nats[part] >= 0), part


def test_the_stratified_estimate_is_unbiased_for_the_full_sum():
    x0, ac = _point(2), _schedule()[:40]

    def noisy(x_t, i):  # a predictor whose error depends on t, so the weighting over t matters
        return torch.sin(x_t * 3) * (i.view(-1, 1, 1, 1).float() / 40)

    def mean_over_seeds(strata: int) -> torch.Tensor:  # ε is random too: compare expectations
        runs = [elbo_nats(noisy, x0, ac, LEVELS, strata=strata, generator=torch.Generator().manual_seed(s))
                for s in range(300)]  # fmt: skip
        return torch.stack([r["diffusion"] for r in runs]).mean(0)

    full, few = mean_over_seeds(39), mean_over_seeds(3)
    assert few == pytest.approx(full, rel=0.05)


def test_likelihood_reports_the_bound_in_bits_per_dimension():
    from genlab.data.image_data import ImageSet
    from genlab.models.diffusion import DiffusionConfig, DiffusionModel

    torch.manual_seed(0)
    model = DiffusionModel(DiffusionConfig(image_size=8, base_channels=8, channel_mult="1,2", num_res_blocks=1,
                                           attn_resolutions="", timesteps=50, elbo_images=8))  # fmt: skip
    images = _point(8)
    val = ImageSet(images=images, labels=None, class_names=[])
    figures = model.likelihood(val)
    assert figures["likelihood"] == "bound" and figures["levels"] == LEVELS
    assert figures["bits_per_dim"] > figures["decoder_bits_per_dim"] > 0
    assert "bits_per_dim" not in model.evaluate(val, batches=1, batch_size=8)  # training-time figures stay cheap
    model.config.elbo_images = 0
    assert model.likelihood(val) == {"likelihood": "none"}
