"""The one implementation of a DDPM-family model (Ho et al. 2020), shared by pixel and latent diffusion.

:class:`DiffusionBase` diffuses an "x_0 space" that a family maps images into (pixels in [-1, 1]; an autoencoder's
scaled latents) under a condition the family defines (class labels; CLIP text features): the β schedule, the
training loss (ε- or v-prediction, with condition dropout), classifier-free guidance, x̂_0 clipping, sampling with
every sampler of :mod:`genlab.sampling.diffusion`, img2img (SDEdit) and RePaint inpainting are written here once.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from genlab.errors import GenlabError
from genlab.models.image import ImageModel
from genlab.sampling import diffusion as S

#: run_sampler's options; the other controls of sample / img2img go to the family's ``denoiser_for``
SAMPLER_OPTIONS = frozenset({"sampler", "steps", "eta", "spacing", "variance", "progress", "callback"})


def _split(controls: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    sampling = {k: v for k, v in controls.items() if k in SAMPLER_OPTIONS}
    return sampling, {k: v for k, v in controls.items() if k not in SAMPLER_OPTIONS}


class DiffusionBase(ImageModel):
    """The one implementation of a DDPM-family model, in an "x_0 space" a family maps images into: the β schedule,
    the training loss, classifier-free guidance, x̂_0 clipping, sampling, img2img (SDEdit) and RePaint inpainting.
    The config has ``schedule`` and ``timesteps``.

    Hooks a family provides:
        network(x_t, t, cond)          the raw network output (ε, or v when ``prediction == "v"``)
        encode(images in [-1, 1])      → x_0 space; ``decode(x_0)`` → images in [0, 1]
        noise_shape                    the shape of one x_T
        training_example(batch)        → (x_0, the condition as the batch holds it)
        training_condition(c, drop)    → the network's condition, the ``drop`` rows replaced by "no condition"
        null_condition(cond)           "no condition" for a batch like ``cond`` (guidance's ∅)
        join(a, b)                     two conditions stacked for the doubled guidance batch
        denoiser_for(n, cond, *, guidance, **options)   the guided, clipped ε-function for ``n`` samples
    and settings: ``conditional``, ``cond_drop`` (the probability of training without the condition),
    ``prediction`` (eps | v) and ``clip_limit`` (sampling clips x̂_0 to ±clip_limit; 0 = off).
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        config.validate()
        betas = S.beta_schedule(config.schedule, config.timesteps)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)

    @property
    def conditional(self) -> bool:
        return True

    @property
    def prediction(self) -> str:
        return "eps"

    @property
    def clip_limit(self) -> float:
        return 0.0

    @property
    def cond_drop(self) -> float:
        raise NotImplementedError

    @property
    def noise_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def sampling_bytes(self, n: int, tokens: int = 0) -> int:
        # the UNet's activations at the noise's resolution: measured at about 70 bytes per pixel and base channel
        # per sample (DDIM, the shipped digits model), budgeted at 96, and twice that for the second batch that
        # classifier-free guidance runs (counted always: the estimate must not be below what a request takes)
        _, h, w = self.noise_shape
        return n * 2 * 96 * h * w * getattr(self.config, "base_channels", 64) + n * 64 * self.image_size**2

    def network(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_example(self, batch: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def training_condition(self, cond: Any, drop: torch.Tensor) -> Any:
        raise NotImplementedError

    def null_condition(self, cond: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def join(a: Any, b: Any) -> Any:
        return torch.cat([a, b])

    def denoiser_for(self, n: int, cond: Any, *, guidance: float = 0.0, **options: Any) -> S.Denoiser:
        raise NotImplementedError

    # --- training -------------------------------------------------------------------------------
    def loss(self, batch: Any, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """DDPM Algorithm 1 (ε-prediction) or its v-prediction form, with condition dropout. ``generator``
        draws t, ε and the dropout, in that order (evaluation uses its own, so it never disturbs training)."""
        x0, cond = self.training_example(batch)
        B, dev = x0.shape[0], x0.device
        t = torch.randint(0, self.config.timesteps, (B,), device=dev, generator=generator)
        noise = torch.randn(x0.shape, device=dev, generator=generator, dtype=x0.dtype)
        x_t = S.add_noise(x0, noise, t, self.alphas_cumprod)
        if self.conditional:
            drop = torch.rand(B, device=dev, generator=generator) < self.cond_drop
            cond = self.training_condition(cond, drop)
        else:
            cond = None
        pred = self.network(x_t, t, cond)
        if self.prediction == "eps":
            target = noise
        else:
            a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
            target = a.sqrt() * noise - (1 - a).sqrt() * x0
        return F.mse_loss(pred.float(), target.float())

    # --- the ε-function the samplers call ---------------------------------------------------------
    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """ε̂(x_t, t, cond), converting a v-prediction: ε = √ᾱ v + √(1-ᾱ) x_t."""
        out = self.network(x_t, t, cond)
        if self.prediction == "eps":
            return out
        a = self.alphas_cumprod[t].to(out.dtype).view(-1, 1, 1, 1)
        return a.sqrt() * out + (1 - a).sqrt() * x_t

    def guided(self, cond: Any, guidance: float, null: Any = None) -> S.Denoiser:
        """Classifier-free guidance with scale w = ``guidance`` towards ``cond``, away from ``null`` (default: no
        condition, :meth:`null_condition`)."""
        if not guidance >= 0 or guidance == float("inf"):  # NaN fails every comparison
            raise GenlabError(f"--guidance {guidance}: must be a finite number ≥ 0")
        null = self.null_condition(cond) if null is None else null
        return S.cfg_denoiser(self.eps, cond, null, guidance, self.join)

    def guarded(self, fn: S.Denoiser, clip: bool = True) -> S.Denoiser:
        """``fn`` with the implied x̂_0 clipped to ±``clip_limit`` (``fn`` itself when off)."""
        limit = self.clip_limit if clip else 0.0
        return S.clipped(fn, self.alphas_cumprod, limit) if limit > 0 else fn

    # --- generation -----------------------------------------------------------------------------
    def initial_noise(
        self, n: int, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x_T for ``n`` samples: ``noise`` when given, else drawn from ``generator``."""
        if noise is not None:
            return noise.to(self.device)
        return torch.randn((n, *self.noise_shape), generator=generator, device=self.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: Any = None,
        *,
        generator: torch.Generator | None = None,
        guidance: float = 0.0,
        noise: torch.Tensor | None = None,
        **controls: Any,
    ) -> torch.Tensor:
        """``n`` images in [0, 1] for the condition ``cond`` (None: unconditional). ``guidance`` w is the
        classifier-free scale (0 = the plain conditional model); ``noise`` fixes x_T. ``controls``: the sampler's
        (sampler ddpm | ddim | dpmpp, steps, eta, spacing uniform | quadratic | logsnr | auto, variance beta |
        beta_tilde, progress, callback) and the family's (see ``denoiser_for``)."""
        sampling, options = _split(controls)
        fn = self.denoiser_for(n, cond, guidance=guidance, **options)
        x = self.initial_noise(n, generator, noise)
        return self.decode(S.run_sampler(fn, x, self.alphas_cumprod, generator=generator, **sampling))

    def network_evals(self, **controls: Any) -> int:
        """One denoiser call per sampler step (the default 50), two with classifier-free guidance."""
        steps = controls.get("steps", inspect.signature(S.run_sampler).parameters["steps"].default)
        return int(steps) * (2 if controls.get("guidance", 0.0) else 1)

    def noised(
        self, x0: torch.Tensor, strength: float, steps: int, generator: torch.Generator | None, lowest: int = 0
    ) -> tuple[torch.Tensor, int, int]:
        """SDEdit's start: x_0 noised to t = strength·(T-1) (at least ``lowest``), t, and the steps to run from t."""
        start = max(lowest, round(strength * (self.config.timesteps - 1)))
        noise = torch.randn(x0.shape, generator=generator, device=self.device)
        x_t = S.add_noise(x0, noise, torch.full((x0.shape[0],), start, device=self.device), self.alphas_cumprod)
        return x_t, start, max(1, min(start + 1, round(steps * strength)))

    @torch.no_grad()
    def img2img(
        self,
        images01: torch.Tensor,
        cond: Any = None,
        *,
        strength: float = 0.6,
        generator: torch.Generator | None = None,
        guidance: float = 0.0,
        steps: int = 50,
        **controls: Any,
    ) -> torch.Tensor:
        """SDEdit (Meng et al. 2022): noise the images (in x_0 space) to t = strength·T and denoise them towards
        ``cond``. strength 0 returns the input unchanged; 1 ignores it."""
        if not 0.0 <= strength <= 1.0:
            raise GenlabError(f"--strength {strength}: must be in [0, 1]")
        if strength == 0:
            return images01.clone()
        n = images01.shape[0]
        x, start, run_steps = self.noised(self.encode(images01.to(self.device) * 2 - 1), strength, steps, generator)
        sampling, options = _split(controls)
        fn = self.denoiser_for(n, cond, guidance=guidance, **options)
        x = S.run_sampler(fn, x, self.alphas_cumprod, start=start, steps=run_steps, generator=generator, **sampling)
        return self.decode(x)

    @torch.no_grad()
    def inpaint(
        self,
        images01: torch.Tensor,
        mask: torch.Tensor,
        cond: Any = None,
        *,
        generator: torch.Generator | None = None,
        guidance: float = 0.0,
        steps: int = 50,
        resample: int = 2,
        progress: bool = False,
        callback: S.Callback | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Fill ``mask`` (``B×1×H×W``, 1 = to generate) towards ``cond`` with RePaint (Lugmayr et al. 2022,
        :func:`genlab.sampling.diffusion.repaint_sample`) in x_0 space over ``steps`` DDIM steps, each redone
        ``resample`` times. A hole anywhere in an x_0 cell generates the cell; the known pixels are then copied
        from the input, exactly."""
        n = images01.shape[0]
        x = images01.to(self.device)
        m = mask.to(self.device).float()
        x0 = self.encode(x * 2 - 1)
        m0 = F.interpolate(m, size=x0.shape[-2:], mode="area").clamp(0, 1).gt(0).float()
        fn = self.denoiser_for(n, cond, guidance=guidance, **options)
        ts = S.timesteps(self.config.timesteps, steps, "uniform")
        z = S.repaint_sample(
            fn,
            self.initial_noise(n, generator),
            self.alphas_cumprod,
            ts,
            known=x0,
            mask=m0,
            resample=resample,
            generator=generator,
            progress=progress,
            callback=callback,
        )
        return m * self.decode(z) + (1 - m) * x  # known pixels exactly as given
