"""Denoising diffusion: learn to reverse a gradual noising of the data (Ho et al. 2020).

Formulation: a fixed forward process adds Gaussian noise over T steps, q(x_t | x_0) = N(√ᾱ_t x_0, (1-ᾱ_t) I),
until x_T is pure noise; the model learns the reverse steps p_θ(x_{t-1} | x_t), conditioned on a class y when the
data has labels. Maximizing the variational bound reduces, up to weighting, to predicting the added noise.
Representation: the UNet of :mod:`genlab.nn.unet` (timestep and class embeddings, self-attention).
Objective (DDPM Algorithm 1): t ~ U{0 … T-1}, ε ~ N(0, I), minimize ‖ε − ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t, y)‖²;
or, with ``prediction="v"``, ‖v − v_θ‖² with v = √ᾱ_t ε − √(1-ᾱ_t) x_0 (Salimans & Ho 2022). With probability
``cond_drop`` the class is replaced by "no class", so one network learns p(x | y) and p(x) for classifier-free
guidance.
Inference: the samplers of :mod:`genlab.sampling.diffusion` (DDPM ancestral, DDIM, DPM-Solver++(2M)); editing:
img2img (SDEdit) and inpainting (RePaint).

All of the above is written once in :class:`~genlab.models.diffusion_base.DiffusionBase`, over an "x_0 space"
and a condition that a family defines: :class:`DiffusionModel` diffuses pixels with class labels,
:class:`~genlab.models.text2image.TextToImage` an autoencoder's latents with CLIP text features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genlab.config import (
    CLASSES,
    DEPTH,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    MULTIPLIER,
    PROBABILITY,
    TIMESTEPS,
    WIDTH,
    Range,
    check_int_list,
    check_ranges,
)
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel
from genlab.models.diffusion_base import DiffusionBase
from genlab.models.image import EVAL_SEED
from genlab.nn.unet import UNet
from genlab.sampling import diffusion as S


def parse_ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise GenlabError(f"{name}={text!r}: expected comma-separated integers, e.g. 1,2,2") from None
    return values


@dataclass
class DiffusionConfig:
    image_size: int = 16
    channels: int = 1  # set from the data
    num_classes: int = 0  # set from the data: 0 = unconditional
    base_channels: int = 32
    channel_mult: str = "1,2,2"
    num_res_blocks: int = 2
    attn_resolutions: str = "8"
    dropout: float = 0.1
    cond_drop: float = 0.1  # probability of training without the class (enables classifier-free guidance)
    timesteps: int = 1000
    schedule: str = "linear"  # linear | scaled_linear | cosine
    prediction: str = "eps"  # eps | v
    elbo_images: int = 256  # held-out images whose variational bound (bits/dim) each evaluation estimates; 0: none

    def validate(self) -> None:
        check_ranges(
            self,
            "diffusion",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "num_classes": CLASSES,
                "base_channels": WIDTH,
                "num_res_blocks": DEPTH,
                "dropout": PROBABILITY,
                "cond_drop": PROBABILITY,
                "timesteps": TIMESTEPS,
                "elbo_images": Range(0, 1_000_000),
            },
        )
        mult = parse_ints(self.channel_mult, "channel_mult")
        check_int_list(mult, "diffusion: channel_mult", MULTIPLIER)
        check_int_list(parse_ints(self.attn_resolutions, "attn_resolutions"), "diffusion: attn_resolutions", IMAGE_SIZE)
        if not mult or min(mult) < 1 or self.base_channels < 1 or self.num_res_blocks < 1:
            raise GenlabError("diffusion: channel_mult, base_channels and num_res_blocks must be positive")
        factor = 2 ** (len(mult) - 1)
        if self.image_size < factor or self.image_size % factor:
            lo, hi = max(factor, self.image_size // factor * factor), (self.image_size // factor + 1) * factor
            raise GenlabError(
                f"--size {self.image_size}: this UNet halves the image {len(mult) - 1} times, so the size must be a "
                f"multiple of {factor} (try {lo} or {hi})"
            )
        if self.schedule not in ("linear", "scaled_linear", "cosine"):
            raise GenlabError(f"diffusion: schedule={self.schedule!r}; choose linear, scaled_linear or cosine")
        if self.prediction not in ("eps", "v"):
            raise GenlabError(f"diffusion: prediction={self.prediction!r}; choose eps or v")


class DiffusionModel(DiffusionBase):
    family = "diffusion"
    modality = "image"
    Config = DiffusionConfig
    presets = {
        # bundled digits at 16×16: a few minutes on 2 CPU cores
        "tiny": dict(
            image_size=16,
            base_channels=32,
            channel_mult="1,2,2",
            attn_resolutions="8",
            num_res_blocks=1,
            batch_size=64,
            lr=1e-3,
            min_lr=1e-4,
            steps=3000,
            warmup=200,
            ema=0.995,
            weight_decay=0.0,
            eval_every=500,
            sample_every=1000,
        ),
        "small": dict(
            image_size=32,
            base_channels=64,
            channel_mult="1,2,2",
            attn_resolutions="8",
            num_res_blocks=2,
            batch_size=64,
            lr=5e-4,
            min_lr=5e-5,
            steps=20000,
            warmup=500,
            ema=0.999,
            weight_decay=0.0,
            eval_every=1000,
            sample_every=2000,
        ),
        "base": dict(
            image_size=64,
            base_channels=128,
            channel_mult="1,2,2,2",
            attn_resolutions="16,8",
            num_res_blocks=2,
            batch_size=128,
            lr=2e-4,
            min_lr=2e-5,
            steps=100000,
            warmup=1000,
            ema=0.9999,
            weight_decay=0.0,
            eval_every=5000,
            sample_every=5000,
        ),
    }

    condition = "class"
    sampling_controls = frozenset(
        {"sampler", "steps", "eta", "spacing", "variance", "guidance", "classifier", "classifier_scale", "progress"}
    )

    # --- training hooks: held-out denoising loss; a grid of samples ------------------------------------------
    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """Mean denoising loss on held-out images at fixed random (t, ε): comparable from one evaluation to the
        next."""
        g = torch.Generator(device=self.device).manual_seed(EVAL_SEED)
        total, n = 0.0, 0
        for i in range(0, min(len(val), batches * batch_size), batch_size):
            x = val.images[i : i + batch_size].to(self.device)
            y = val.labels[i : i + batch_size].to(self.device) if val.labels is not None else None
            total += self.loss((x, y), generator=g).item() * x.shape[0]
            n += x.shape[0]
        return {"val_loss": total / n}

    @torch.no_grad()
    def likelihood(self, val: Any, *, batch_size: int = 64) -> dict[str, Any]:
        """The variational bound of the first ``elbo_images`` held-out images in bits per dimension on the data's
        discrete pixel scale (:mod:`genlab.models.diffusion_elbo`), labelled a bound; "none" with ``elbo_images=0``.
        33 network evaluations an image: measured by ``eval image`` and ``compare image``, not while training."""
        count = self.config.elbo_images
        if count <= 0:
            return {"likelihood": "none"}
        from genlab.data.image_data import data_levels
        from genlab.models.diffusion_elbo import elbo_nats

        was = self.training
        self.eval()
        g = torch.Generator(device=self.device).manual_seed(EVAL_SEED + 1)
        images = val.images[:count]
        levels = data_levels(images)
        parts: dict[str, float] = {}
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(self.device)
            y = val.labels[i : i + batch_size].to(self.device) if val.labels is not None and self.conditional else None
            nats = elbo_nats(lambda x_t, t, y=y: self.eps(x_t, t, y), x, self.alphas_cumprod, levels, generator=g)
            for k, v in nats.items():
                parts[k] = parts.get(k, 0.0) + float(v.sum())
        self.train(was)
        bits = 1.0 / (len(images) * images[0].numel() * math.log(2))
        return {
            "bits_per_dim": parts["total"] * bits,
            "likelihood": "bound",
            "prior_bits_per_dim": parts["prior"] * bits,
            "decoder_bits_per_dim": parts["decoder"] * bits,
            "levels": levels,
        }

    def preview(self, path: Path, val: Any, seed: int, *, steps: int = 50) -> Path:
        """A grid from DDIM: one row per class (up to 10) or 8×8 unconditional samples."""
        return self.sample_grid(path, seed, steps=steps)

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__(config)
        c = config
        self.unet = UNet(
            in_channels=c.channels,
            base_channels=c.base_channels,
            channel_mult=parse_ints(c.channel_mult, "channel_mult"),
            num_res_blocks=c.num_res_blocks,
            attn_resolutions=parse_ints(c.attn_resolutions, "attn_resolutions"),
            image_size=c.image_size,
            dropout=c.dropout,
            num_classes=c.num_classes,
        )

    # --- DiffusionBase's hooks: pixels in [-1, 1], class labels with a "no class" index ---------------------
    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    @property
    def cond_drop(self) -> float:
        return self.config.cond_drop

    @property
    def prediction(self) -> str:
        return self.config.prediction

    @property
    def clip_limit(self) -> float:
        return 1.0  # the image range (DDPM's clip_denoised)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.config.channels, self.config.image_size, self.config.image_size)

    def network(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.unet(x_t, t, cond if self.conditional else None)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return ((x0 + 1) / 2).clamp(0, 1)

    def training_example(self, batch: tuple[torch.Tensor, torch.Tensor | None]) -> tuple[torch.Tensor, Any]:
        return batch[0], batch[1]

    def training_condition(self, y: torch.Tensor | None, drop: torch.Tensor) -> torch.Tensor:
        null = self.null_class(drop.shape[0])
        return torch.where(drop, null, null if y is None else y)

    def null_condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return None if y is None else self.null_class(y.shape[0], soft=y.is_floating_point())

    def null_class(self, n: int, soft: bool = False) -> torch.Tensor:
        """The "no class" input for ``n`` samples: an index, or (``soft``) a one-hot weight vector."""
        null = torch.full((n,), self.config.num_classes, dtype=torch.long, device=self.device)
        return F.one_hot(null, self.config.num_classes + 1).float() if soft else null

    def denoiser_for(
        self,
        n: int,
        cond: torch.Tensor | int | None,
        *,
        guidance: float = 0.0,
        classifier: GenerativeModel | None = None,
        classifier_scale: float = 0.0,
        clip: bool = True,
    ) -> S.Denoiser:
        """For ``sample`` / ``img2img`` / ``inpaint``: ``cond`` is a class (int) or ``n`` classes (None:
        unconditional); ``classifier``/``classifier_scale`` add classifier guidance with a noisy-image classifier;
        ``clip`` clips x̂_0 to the image range."""
        y = self.check_class(cond)
        if y is not None and y.dim() == 0:
            y = y.expand(n)
        return self.denoiser(y, guidance=guidance, classifier=classifier, classifier_scale=classifier_scale, clip=clip)

    def denoiser(
        self,
        y: torch.Tensor | None,
        *,
        guidance: float = 0.0,
        classifier: GenerativeModel | None = None,
        classifier_scale: float = 0.0,
        clip: bool = True,
    ) -> S.Denoiser:
        """The ε-function the samplers call: class-conditional, guided and clipped as asked."""
        if guidance > 0 and (not self.conditional or self.config.cond_drop == 0):
            raise GenlabError("--guidance: this model was not trained for classifier-free guidance (no class dropout)")
        if guidance > 0 and y is None:
            raise GenlabError("--guidance needs a --class to guide towards")
        fn = self.guided(y, guidance)
        if classifier is not None and classifier_scale > 0:
            if y is None:
                raise GenlabError("--classifier-scale needs a --class to guide towards")
            fn = S.classifier_guided(fn, classifier.noisy_log_prob(y, self), self.alphas_cumprod, classifier_scale)
        return self.guarded(fn, clip)

    @torch.no_grad()
    def interpolate(
        self,
        frames: int,
        *,
        through: str = "diffused",
        images: torch.Tensor | None = None,
        classes: tuple[int, int] | None = None,
        strength: float = 0.5,
        generator: torch.Generator | None = None,
        guidance: float = 0.0,
        **sampling,  # noqa: ANN003 - sampler, steps, eta, spacing, variance
    ) -> torch.Tensor:
        """``frames`` images in [0, 1] morphing from A to B.

        ``through="diffused"`` (lecture 02, after Ho et al. 2020 §4.3): diffuse the two ``images`` (``2×C×H×W`` in
        [0, 1]) to x_t and x'_t with t = strength·T, mix x̄_t = (1 − λ) x_t + λ x'_t, and run the reverse process
        from t (unconditionally). ``through="noise"``: slerp between two Gaussian noises and sample each, with the
        class embedding mixed linearly from ``classes[0]`` to ``classes[1]`` for a conditional model.
        """
        if frames < 2:
            raise GenlabError(f"--frames {frames}: need at least 2")
        lam = torch.linspace(0, 1, frames, device=self.device).view(-1, 1, 1, 1)
        steps = sampling.pop("steps", 50)
        if through == "diffused":
            if images is None or images.shape[0] != 2:
                raise GenlabError("interpolation through diffused images needs two images")
            if not 0.0 < strength <= 1.0:
                raise GenlabError(f"--strength {strength}: must be in (0, 1]")
            x0 = self.encode(images.to(self.device) * 2 - 1)
            x_t, start, run_steps = self.noised(x0, strength, steps, generator, lowest=1)
            mixed = (1 - lam) * x_t[:1] + lam * x_t[1:]
            fn, ac = self.denoiser(None), self.alphas_cumprod
            x = S.run_sampler(fn, mixed, ac, generator=generator, start=start, steps=run_steps, **sampling)
        elif through == "noise":
            z = self.initial_noise(2, generator, None)
            mixed = torch.cat([S.slerp(z[0], z[1], float(v)) for v in lam.flatten()]).view(frames, *z.shape[1:])
            y = None
            if classes is not None and self.conditional:
                a, b = (F.one_hot(self.check_class(c), self.config.num_classes + 1).float() for c in classes)
                y = (1 - lam.view(-1, 1)) * a + lam.view(-1, 1) * b
            fn = self.denoiser(y, guidance=guidance if y is not None else 0.0)
            x = S.run_sampler(fn, mixed, self.alphas_cumprod, generator=generator, steps=steps, **sampling)
        else:
            raise GenlabError(f"--through {through}: choose diffused or noise")
        return self.decode(x)
