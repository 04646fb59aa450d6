"""The variational bound of a pixel-space diffusion model in bits per dimension (Ho et al. 2020, §3.3; Nichol &
Dhariwal 2021, eq. 4–5), on the discrete pixel scale the PixelCNN and the VAE report, so the three compare.

With x_0 on ``levels`` evenly spaced values in [-1, 1] and T steps (t = 1 … T, ᾱ_t the cumulative product):

    −log p(x_0) ≤ L_T + Σ_{t=2..T} L_{t−1} + L_0
    L_T     = KL(q(x_T | x_0) ‖ N(0, I))                                   (no parameters; closed form)
    L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) = β_t / (2 α_t (1 − ᾱ_{t−1})) ‖ε − ε_θ(x_t, t)‖²
    L_0     = −log p_θ(x_0 | x_1)

p_θ(x_{t−1} | x_t) has the posterior's variance β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), which makes the KL the one
weighted ε-error above. The decoder L_0 is Ho et al.'s discretised Gaussian: N(μ_θ(x_1, 1), β_1) integrated over the
bin of each pixel's level (width 2 / (levels − 1); the two end bins open to ±∞). The sum over t is estimated without
bias by stratified sampling — one t drawn in each of ``strata`` equal parts of 2 … T, each term weighted by the
part's length — with L_T and L_0 computed exactly; each term draws its own ε.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t as 0-based indices) → ε̂


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


@torch.no_grad()
def elbo_nats(
    eps_fn: EpsFn,
    x0: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    levels: int,
    *,
    strata: int = 32,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Each image's bound in nats (``B``), with its parts: ``prior`` (L_T), ``diffusion`` (Σ L_{t−1}, estimated) and
    ``decoder`` (L_0). ``eps_fn`` takes x_t and 0-based step indices (index i is t = i + 1)."""
    ac = alphas_cumprod.double()
    T, B, dev = len(ac), x0.shape[0], x0.device
    prev = torch.cat([ac.new_ones(1), ac[:-1]])
    betas = 1 - ac / prev
    x = x0.double()

    def noised(i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(x.shape, generator=generator, device=dev, dtype=torch.float64)
        a = ac[i].view(-1, 1, 1, 1)
        return a.sqrt() * x + (1 - a).sqrt() * noise, noise

    def eps_hat(x_t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return eps_fn(x_t.to(x0.dtype), i).double()

    a_T = ac[-1]
    prior = 0.5 * (a_T * x**2 + (1 - a_T) - 1 - torch.log(1 - a_T)).flatten(1).sum(1)

    first = torch.zeros(B, dtype=torch.long, device=dev)
    x1, _ = noised(first)
    mean = (x1 - betas[0] / (1 - ac[0]).sqrt() * eps_hat(x1, first)) / (1 - betas[0]).sqrt()
    sd, half = betas[0].sqrt(), 1.0 / (levels - 1)
    upper = torch.where(x > 1 - half / 2, torch.full_like(x, math.inf), x + half)
    lower = torch.where(x < -1 + half / 2, torch.full_like(x, -math.inf), x - half)
    p = _normal_cdf((upper - mean) / sd) - _normal_cdf((lower - mean) / sd)
    decoder = -torch.log(p.clamp_min(1e-30)).flatten(1).sum(1)

    diffusion = torch.zeros(B, dtype=torch.float64, device=dev)
    if T > 1:
        edges = torch.linspace(1, T, min(strata, T - 1) + 1, dtype=torch.float64)  # indices 1 … T−1 (t = 2 … T)
        for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
            u = torch.rand(B, generator=generator, device=dev, dtype=torch.float64)
            i = (lo + u * (hi - lo)).long().clamp(1, T - 1)
            x_t, noise = noised(i)
            weight = (betas[i] / (2 * (1 - betas[i]) * (1 - prev[i]))).view(-1)
            err = (eps_hat(x_t, i) - noise).pow(2).flatten(1).sum(1)
            diffusion += (hi - lo) * weight * err
    return {"prior": prior, "diffusion": diffusion, "decoder": decoder, "total": prior + diffusion + decoder}
