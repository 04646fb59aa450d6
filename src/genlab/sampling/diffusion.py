"""Diffusion noise schedules and samplers, each a short function over a denoiser.

Notation (Ho et al. 2020; Song et al. 2021; Lu et al. 2022):
    β_t                 noise added at step t (t = 0 … T-1 here; the papers count 1 … T)
    ᾱ_t = Π_{s≤t}(1-β_s) signal kept after t steps; ``alphas_cumprod`` in code
    q(x_t | x_0) = N(√ᾱ_t x_0, (1-ᾱ_t) I)                       (DDPM eq. 4) — ``add_noise``
    ε_θ(x_t, t)         the network's noise estimate; x̂_0 = (x_t − √(1-ᾱ_t) ε_θ) / √ᾱ_t
    α_t = √ᾱ_t, σ_t = √(1-ᾱ_t), λ_t = log(α_t / σ_t)            (DPM-Solver's half log-SNR)

A *denoiser* is ``fn(x, t) -> ε̂`` for a batch ``x`` (B×C×H×W) at integer timesteps ``t`` (B). Guidance wraps the
denoiser (see :func:`cfg_denoiser`, :func:`classifier_guided`), so every sampler works with every kind of guidance.
Each sampler evaluates the denoiser once per entry of ``timesteps`` (its number of function evaluations) and ends
at the clean image (ᾱ = 1 after the last step). After every step it calls ``callback`` (k-diffusion's shape) with
``{"i", "t", "prev", "x", "denoised"}`` (the step's index, timestep, next timestep (-1: clean), the new x and the
x̂_0 it came from); a tensor returned replaces x, which is how :func:`repaint_sample` pastes the known region in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from genlab.errors import GenlabError

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict], torch.Tensor | None]
SAMPLERS = ("ddpm", "ddim", "dpmpp")
SPACINGS = ("uniform", "quadratic", "logsnr")


def beta_schedule(kind: str, T: int) -> torch.Tensor:
    """β_1 … β_T (float64): ``linear`` 1e-4 → 0.02 (DDPM), ``cosine`` (Nichol & Dhariwal 2021, eq. 17), or
    ``scaled_linear``: √β linear from √0.00085 to √0.012 (Stable Diffusion's latent schedule; ᾱ_T ≈ 0.0047 instead
    of linear's 4e-5, so fewer training steps are spent on latents that are almost pure noise)."""
    scale = 1000 / T
    if kind == "linear":
        return torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64)
    if kind == "scaled_linear":
        return torch.linspace((scale * 0.00085) ** 0.5, (scale * 0.012) ** 0.5, T, dtype=torch.float64) ** 2
    if kind == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise GenlabError(f"unknown noise schedule {kind!r}; choose linear, scaled_linear or cosine")


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Sample q(x_t | x_0) = √ᾱ_t x_0 + √(1-ᾱ_t) ε (DDPM eq. 4) for a batch of timesteps ``t``."""
    a = alphas_cumprod[t].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def timesteps(T: int, steps: int, spacing: str = "uniform", alphas_cumprod: torch.Tensor | None = None) -> list[int]:
    """``steps`` distinct timesteps from T-1 down to 0, spaced ``uniform`` in t, ``quadratic`` in t (dense near
    t = 0; the DDIM paper's choice for CIFAR-10), or ``logsnr``: uniform in λ_t = log(α_t/σ_t), DPM-Solver's
    choice for small images (needs ``alphas_cumprod``)."""
    if not 1 <= steps <= T:
        raise GenlabError(f"--steps {steps}: must be between 1 and {T} (the model's number of timesteps)")
    if steps == 1:
        return [T - 1]
    if spacing == "uniform":
        pos = torch.linspace(0, T - 1, steps, dtype=torch.float64)
    elif spacing == "quadratic":
        pos = torch.linspace(0, math.sqrt(T - 1), steps, dtype=torch.float64) ** 2
    elif spacing == "logsnr":
        if alphas_cumprod is None:
            raise GenlabError("logsnr spacing needs the noise schedule")
        ac = alphas_cumprod[:T].double()
        lam = 0.5 * torch.log(ac / (1 - ac))  # decreasing in t
        targets = torch.linspace(float(lam[0]), float(lam[-1]), steps, dtype=torch.float64)
        pos = torch.tensor([float((lam - v).abs().argmin()) for v in targets], dtype=torch.float64)
    else:
        raise GenlabError(f"unknown timestep spacing {spacing!r}; choose {', '.join(SPACINGS)}")
    ts = pos.round().long().tolist()
    ts = sorted(ts)
    for i in range(1, steps):  # make them distinct: push collisions up ...
        ts[i] = max(ts[i], ts[i - 1] + 1)
    for i in range(steps - 1, -1, -1):  # ... without passing T-1
        ts[i] = min(ts[i], T - 1 - (steps - 1 - i))
    return ts[::-1]


def _at(values: torch.Tensor, t: int, like: torch.Tensor) -> torch.Tensor:
    return values[t].to(like.dtype) if t >= 0 else torch.ones((), dtype=like.dtype)


def _steps(ts: list[int], progress: bool, desc: str):  # noqa: ANN202
    return enumerate(tqdm(list(zip(ts, ts[1:] + [-1], strict=True)), desc=desc, disable=not progress, leave=False))


def _x0(x: torch.Tensor, eps: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
    return (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()


def _report(callback: Callback | None, i: int, t: int, prev: int, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Call ``callback`` after a step; the tensor it returns (if any) replaces x."""
    if callback is None:
        return x
    out = callback({"i": i, "t": t, "prev": prev, "x": x, "denoised": x0})
    return x if out is None else out


@torch.no_grad()
def ddpm_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    ts: list[int],
    *,
    variance: str = "beta",
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Ancestral sampling (DDPM Algorithm 2): x_{t-1} = (x_t − β_t/√(1-ᾱ_t) ε̂)/√α_t + σ_t z.

    σ_t² = β_t (``variance="beta"``) or β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t) β_t (``"beta_tilde"``). On a subsequence of
    timesteps, β is respaced: β'_t = 1 − ᾱ_t/ᾱ_prev (Nichol & Dhariwal 2021); on all T steps this is Algorithm 2.
    """
    for i, (t, prev) in _steps(ts, progress, "ddpm"):
        a_t, a_prev = _at(alphas_cumprod, t, x), _at(alphas_cumprod, prev, x)
        beta = 1 - a_t / a_prev
        eps = denoise(x, torch.full((x.shape[0],), t, device=x.device))
        x0 = _x0(x, eps, a_t)
        x = (x - beta / (1 - a_t).sqrt() * eps) / (1 - beta).sqrt()
        if prev >= 0:
            var = beta if variance == "beta" else beta * (1 - a_prev) / (1 - a_t)
            x = x + var.sqrt() * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = _report(callback, i, t, prev, x, x0)
    return x


@torch.no_grad()
def ddim_step(
    denoise: Denoiser,
    x: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    t: int,
    prev: int,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step (Song et al. 2021, eq. 12) from timestep ``t`` to ``prev`` (< 0: the clean image):
    x_prev = √ᾱ_prev x̂_0 + √(1-ᾱ_prev-σ²) ε̂ + σ z, with σ = η √((1-ᾱ_prev)/(1-ᾱ_t)) √(1-ᾱ_t/ᾱ_prev).
    Returns (x_prev, x̂_0)."""
    a_t, a_prev = _at(alphas_cumprod, t, x), _at(alphas_cumprod, prev, x)
    eps = denoise(x, torch.full((x.shape[0],), t, device=x.device))
    x0 = _x0(x, eps, a_t)
    sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
    x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0 and prev >= 0:
        x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x, x0


@torch.no_grad()
def ddim_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    ts: list[int],
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DDIM: :func:`ddim_step` over ``ts``. η = 0 is deterministic; η = 1 is DDPM-like."""
    for i, (t, prev) in _steps(ts, progress, "ddim"):
        x, x0 = ddim_step(denoise, x, alphas_cumprod, t, prev, eta=eta, generator=generator)
        x = _report(callback, i, t, prev, x, x0)
    return x


@torch.no_grad()
def repaint_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    ts: list[int],
    *,
    known: torch.Tensor,
    mask: torch.Tensor,
    resample: int = 1,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """RePaint (Lugmayr et al. 2022) over deterministic DDIM steps: after every step the known region
    (``mask`` = 0; ``known`` is the clean x_0) is replaced by ``known`` noised to the new level, q(x_prev | x_0),
    and each step is redone ``resample`` times — jumping back up one step, q(x_t | x_prev), with fresh noise — so
    the generated and the known regions agree. ``callback`` is called once per timestep, after its last redo."""

    def paste(info: dict) -> torch.Tensor:
        prev, keep = info["prev"], known
        if prev >= 0:
            eps = torch.randn(known.shape, generator=generator, device=known.device, dtype=known.dtype)
            keep = add_noise(known, eps, torch.full((known.shape[0],), prev, device=known.device), alphas_cumprod)
        return mask * info["x"] + (1 - mask) * keep

    for i, (t, prev) in _steps(ts, progress, "repaint"):
        for r in range(resample):
            x_prev, x0 = ddim_step(denoise, x, alphas_cumprod, t, prev)
            x_prev = paste({"i": i, "t": t, "prev": prev, "x": x_prev, "denoised": x0})
            if r < resample - 1 and prev >= 0:  # go back up one step: q(x_t | x_prev)
                a = alphas_cumprod[t] / alphas_cumprod[prev]
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = a.sqrt() * x_prev + (1 - a).sqrt() * noise
            else:
                x = x_prev
        x = _report(callback, i, t, prev, x, x0)
    return x


@torch.no_grad()
def ddim_invert(
    denoise: Denoiser, x0: torch.Tensor, alphas_cumprod: torch.Tensor, ts: list[int], *, progress: bool = False
) -> torch.Tensor:
    """Deterministic DDIM run backwards, clean → noise: the x_T that :func:`ddim_sample` (η = 0) maps back to ≈ x0.

    Each step reuses eq. 12 with the roles of t and t_prev swapped; ε̂ is evaluated at the current point with the
    next timestep (the usual approximation ε(x_prev) ≈ ε(x_t), exact as the steps shrink)."""
    up = sorted(ts)
    x = x0
    for prev, t in tqdm(list(zip([-1, *up[:-1]], up, strict=True)), desc="ddim inversion", disable=not progress):
        a_prev, a_t = _at(alphas_cumprod, prev, x), _at(alphas_cumprod, t, x)
        eps = denoise(x, torch.full((x.shape[0],), t, device=x.device))
        x0_hat = (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
        x = a_t.sqrt() * x0_hat + (1 - a_t).sqrt() * eps
    return x


@torch.no_grad()
def dpmpp_2m_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    ts: list[int],
    *,
    progress: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver of the diffusion ODE in
    data-prediction form. With h_i = λ_{t_i} − λ_{t_{i-1}} and r = h_{i-1}/h_i:
        D_i = (1 + 1/(2r)) x̂_0(t_{i-1}) − 1/(2r) x̂_0(t_{i-2})          (first step and last step: D_i = x̂_0)
        x_{t_i} = (σ_{t_i}/σ_{t_{i-1}}) x_{t_{i-1}} − α_{t_i} (e^{−h_i} − 1) D_i
    """
    previous: tuple[torch.Tensor, torch.Tensor] | None = None  # (x̂_0, h) of the step before
    for i, (t, prev) in _steps(ts, progress, "dpm-solver++"):
        a_t, a_prev = _at(alphas_cumprod, t, x), _at(alphas_cumprod, prev, x)
        eps = denoise(x, torch.full((x.shape[0],), t, device=x.device))
        x0 = _x0(x, eps, a_t)
        if prev < 0:  # the last step lands on the clean image: take the data prediction
            return _report(callback, i, t, prev, x0, x0)
        lam_t = 0.5 * torch.log(a_t / (1 - a_t))
        lam_prev = 0.5 * torch.log(a_prev / (1 - a_prev))
        h = lam_prev - lam_t
        d = x0
        if previous is not None:
            r = previous[1] / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * previous[0]
        x = ((1 - a_prev) / (1 - a_t)).sqrt() * x - a_prev.sqrt() * torch.expm1(-h) * d
        x = _report(callback, i, t, prev, x, x0)
        previous = (x0, h)
    return x


def cfg_denoiser(
    net: Callable, cond: object, null: object, w: float, cat: Callable[[object, object], object] | None = None
) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2021): ε̃ = (1 + w) ε(x, c) − w ε(x, ∅); w = 0 is the plain
    conditional model. ``net(x, t, c)`` is evaluated once on a doubled batch; ``cat(c, ∅)`` joins the two
    conditions (default: ``torch.cat`` of class labels)."""
    join = cat or (lambda a, b: torch.cat([a, b]))

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if w == 0:
            return net(x, t, cond)
        eps_c, eps_u = net(torch.cat([x, x]), torch.cat([t, t]), join(cond, null)).chunk(2)
        return eps_c + w * (eps_c - eps_u)

    return denoise


def classifier_guided(
    denoise: Denoiser,
    log_prob_y: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    alphas_cumprod: torch.Tensor,
    scale: float,
) -> Denoiser:
    """Classifier guidance in noise form (Dhariwal & Nichol 2021, eq. 14):
    ε̂ ← ε̂ − s √(1-ᾱ_t) ∇_{x_t} log p_φ(y | x_t), where ``log_prob_y(x, t)`` is the classifier's log p(y | x_t)."""

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = denoise(x, t)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            grad = torch.autograd.grad(log_prob_y(xg, t).sum(), xg)[0]
        a = alphas_cumprod[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return eps - scale * (1 - a).sqrt() * grad

    return guided


def clipped(denoise: Denoiser, alphas_cumprod: torch.Tensor, limit: float = 1.0) -> Denoiser:
    """Clip the implied x̂_0 to [-limit, limit] and return the ε consistent with it (DDPM's ``clip_denoised``;
    Imagen's static thresholding)."""

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = denoise(x, t)
        a = alphas_cumprod[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-limit, limit)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    return fn


def run_sampler(
    denoise: Denoiser,
    x: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "auto",
    variance: str = "beta",
    start: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Denoise ``x`` (pure noise, or noised to timestep ``start``) with one of :data:`SAMPLERS` in ``steps``
    model evaluations. ``spacing="auto"``: uniform in t for ddpm/ddim (their papers), log-SNR for dpmpp."""
    if sampler not in SAMPLERS:
        raise GenlabError(f"--sampler {sampler}: choose one of {', '.join(SAMPLERS)}")
    if variance not in ("beta", "beta_tilde"):
        raise GenlabError(f"--variance {variance}: choose beta or beta_tilde")
    T = len(alphas_cumprod) if start is None else start + 1
    if spacing == "auto":
        spacing = "logsnr" if sampler == "dpmpp" else "uniform"
    ts = timesteps(T, steps, spacing, alphas_cumprod)
    common = dict(progress=progress, callback=callback)
    if sampler == "ddpm":
        return ddpm_sample(denoise, x, alphas_cumprod, ts, variance=variance, generator=generator, **common)
    if sampler == "ddim":
        return ddim_sample(denoise, x, alphas_cumprod, ts, eta=eta, generator=generator, **common)
    return dpmpp_2m_sample(denoise, x, alphas_cumprod, ts, **common)


def slerp(z0: torch.Tensor, z1: torch.Tensor, lam: float) -> torch.Tensor:
    """Spherical interpolation between two Gaussian noises (keeps the norm a Gaussian sample would have)."""
    a, b = z0.flatten(), z1.flatten()
    omega = torch.arccos((a @ b / (a.norm() * b.norm())).clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - lam) * z0 + lam * z1
    return (torch.sin((1 - lam) * omega) * z0 + torch.sin(lam * omega) * z1) / torch.sin(omega)
