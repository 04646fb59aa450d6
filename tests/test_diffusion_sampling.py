"""Schedules and samplers against closed forms: a Gaussian data distribution has an exact denoiser."""

import pytest
import torch

from genlab.errors import GenlabError
from genlab.sampling import diffusion as S

T = 1000
AC = torch.cumprod(1 - S.beta_schedule("linear", T).double(), 0)
M, SD = 0.3, 0.5  # data ~ N(M, SD²)


def exact_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[ε | x_t] for Gaussian data: √(1-ᾱ)(x − √ᾱ M) / (ᾱ SD² + 1 − ᾱ)."""
    a = AC[t].view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return (1 - a).sqrt() * (x - a.sqrt() * M) / (a * SD**2 + 1 - a)


def test_add_noise_matches_closed_form_and_the_markov_chain():
    x0 = torch.randn(4, 3, dtype=torch.float64)
    eps = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    expected = AC[t].sqrt()[:, None] * x0 + (1 - AC[t]).sqrt()[:, None] * eps
    torch.testing.assert_close(S.add_noise(x0, eps, t, AC), expected)
    # running q(x_t | x_{t-1}) step by step gives the same mean and variance as q(x_t | x_0)
    betas = S.beta_schedule("linear", T)
    g = torch.Generator().manual_seed(0)
    x = torch.full((50_000,), 1.0, dtype=torch.float64)
    for b in betas[:300]:
        x = (1 - b).sqrt() * x + b.sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
    assert x.mean().item() == pytest.approx(AC[299].sqrt().item(), abs=0.01)
    assert x.var().item() == pytest.approx(1 - AC[299].item(), abs=0.01)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_alpha_bar_is_monotone_and_ends_near_zero(kind):
    ac = torch.cumprod(1 - S.beta_schedule(kind, T), 0)
    assert (ac[1:] < ac[:-1]).all() and 0.99 < ac[0] < 1 and ac[-1] < 1e-3


def test_scaled_linear_is_stable_diffusions_schedule():
    betas = S.beta_schedule("scaled_linear", T)
    assert betas[0].item() == pytest.approx(0.00085) and betas[-1].item() == pytest.approx(0.012)
    ac = torch.cumprod(1 - betas, 0)
    assert (ac[1:] < ac[:-1]).all() and ac[-1].item() == pytest.approx(0.0047, abs=2e-4)
    # less noisy than linear in the middle: more of training sees latents with signal left
    assert ac[T // 2] > 2 * torch.cumprod(1 - S.beta_schedule("linear", T), 0)[T // 2]


def test_timestep_spacings():
    for spacing in ("uniform", "quadratic", "logsnr"):
        for n in (1, 2, 10, 50, T):
            ts = S.timesteps(T, n, spacing, AC)
            assert len(set(ts)) == n and ts == sorted(ts, reverse=True) and ts[0] == T - 1 and ts[-1] >= 0
    quad = S.timesteps(T, 10, "quadratic")
    assert quad[-2] - quad[-1] < quad[0] - quad[1]  # denser near t = 0
    with pytest.raises(GenlabError, match="--steps 0"):
        S.timesteps(T, 0)


@pytest.mark.parametrize(
    "name, run, tol",
    [
        ("ddpm-1000", lambda x, g: S.ddpm_sample(exact_eps, x, AC, S.timesteps(T, T), generator=g), 0.02),
        ("ddpm-100", lambda x, g: S.ddpm_sample(exact_eps, x, AC, S.timesteps(T, 100), generator=g), 0.03),
        ("ddim-200", lambda x, g: S.ddim_sample(exact_eps, x, AC, S.timesteps(T, 200)), 0.02),
        ("ddim-eta1", lambda x, g: S.ddim_sample(exact_eps, x, AC, S.timesteps(T, 200), eta=1.0, generator=g), 0.03),
        ("dpmpp-20", lambda x, g: S.dpmpp_2m_sample(exact_eps, x, AC, S.timesteps(T, 20, "logsnr", AC)), 0.02),
    ],
)
def test_samplers_reach_the_data_distribution(name, run, tol):
    g = torch.Generator().manual_seed(0)
    x = run(torch.randn(5_000, 2, generator=g, dtype=torch.float64), g)
    assert x.mean().item() == pytest.approx(M, abs=tol), name
    assert x.std().item() == pytest.approx(SD, abs=tol), name


def test_ddim_eta_zero_is_deterministic_and_inversion_reconstructs():
    x_T = torch.randn(8, 4, dtype=torch.float64)
    ts = S.timesteps(T, 100)
    a = S.ddim_sample(exact_eps, x_T, AC, ts, generator=torch.Generator().manual_seed(1))
    b = S.ddim_sample(exact_eps, x_T, AC, ts, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    x0 = torch.randn(8, 4, dtype=torch.float64) * SD + M
    recon = S.ddim_sample(exact_eps, S.ddim_invert(exact_eps, x0, AC, ts), AC, ts)
    assert (recon - x0).abs().max().item() < 0.05


def test_classifier_free_guidance_formula():
    def net(x, t, y):
        return x * 0 + y.float().view(-1, 1)  # "ε" equal to the class index: easy to check

    x, t = torch.zeros(3, 1), torch.zeros(3, dtype=torch.long)
    y, null = torch.tensor([2, 2, 2]), torch.tensor([5, 5, 5])
    assert torch.equal(S.cfg_denoiser(net, y, null, 0.0)(x, t), net(x, t, y))  # w = 0: the conditional model
    torch.testing.assert_close(S.cfg_denoiser(net, y, null, 3.0)(x, t), (1 + 3) * 2.0 - 3 * 5.0 + x)


def test_classifier_guidance_moves_samples_towards_the_class():
    target = torch.tensor([1.5, -1.0], dtype=torch.float64)

    def log_p(x, t):  # a "classifier" that prefers points near target
        return -((x - target) ** 2).sum(-1)

    guided = S.classifier_guided(exact_eps, log_p, AC, scale=3.0)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    plain = S.ddim_sample(exact_eps, x_T, AC, S.timesteps(T, 50))
    steered = S.ddim_sample(guided, x_T, AC, S.timesteps(T, 50))
    assert ((steered - target) ** 2).sum(-1).mean() < 0.5 * ((plain - target) ** 2).sum(-1).mean()


def test_slerp_keeps_the_endpoints_and_the_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=g), torch.randn(1000, generator=g)
    torch.testing.assert_close(S.slerp(a, b, 0.0), a)
    torch.testing.assert_close(S.slerp(a, b, 1.0), b)
    assert S.slerp(a, b, 0.5).norm() == pytest.approx(a.norm().item(), rel=0.1)
    assert (0.5 * (a + b)).norm() < 0.8 * a.norm()  # linear mixing would shrink it


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp"])
def test_callback_is_called_after_every_step_and_a_returned_tensor_replaces_x(sampler):
    ts = S.timesteps(T, 6, "logsnr" if sampler == "dpmpp" else "uniform", AC)
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seen, inputs = [], [x]

    def record(info: dict) -> None:
        seen.append((info["i"], info["t"], info["prev"]))
        x_in, a = inputs[-1], AC[info["t"]]  # x̂_0 is the one ε̂ implies at the step's input
        expected = (x_in - (1 - a).sqrt() * exact_eps(x_in, torch.full((4,), info["t"]))) / a.sqrt()
        torch.testing.assert_close(info["denoised"], expected)
        inputs.append(info["x"])

    g = torch.Generator().manual_seed(1)
    out = S.run_sampler(exact_eps, x, AC, sampler=sampler, steps=6, generator=g, callback=record)
    assert seen == [(i, t, p) for i, (t, p) in enumerate(zip(ts, [*ts[1:], -1], strict=True))]
    assert torch.equal(inputs[-1], out)

    pinned = torch.full_like(x, 0.25)
    last = S.run_sampler(
        exact_eps, x, AC, sampler=sampler, steps=6, callback=lambda i: pinned if i["prev"] < 0 else None
    )
    assert torch.equal(last, pinned)
    if sampler == "ddim":  # replacing x mid-way = sampling the remaining steps from the replacement
        got = S.run_sampler(exact_eps, x, AC, steps=6, callback=lambda info: pinned if info["i"] == 2 else None)
        torch.testing.assert_close(got, S.ddim_sample(exact_eps, pinned, AC, ts[3:]), rtol=0, atol=0)


def test_repaint_keeps_the_known_region_and_calls_back_once_per_step():
    ts = S.timesteps(T, 5, "uniform")
    known = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    mask[..., 1:3, 1:3] = 1
    calls = []
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = S.repaint_sample(
        exact_eps,
        x,
        AC,
        ts,
        known=known,
        mask=mask,
        resample=3,
        generator=torch.Generator().manual_seed(1),
        callback=lambda info: calls.append(info["t"]),
    )
    assert calls == ts
    assert torch.equal(out * (1 - mask), known * (1 - mask)) and not torch.equal(out * mask, known * mask)
