"""Variational autoencoder (Kingma & Welling 2014) with the importance-weighted bound of Burda et al. 2016; β = 0 is
the plain autoencoder.

Formulation: a latent z ~ p(z) = N(0, I) of ``latent`` dimensions, and a decoder p(x | z, y) that gives each pixel a
categorical distribution over the data's ``levels`` discrete values (the same discrete scale as the PixelCNN, so
bits per dimension compare). The encoder q(z | x, y) = N(μ(x, y), diag σ²(x, y)) is trained with the decoder.
Objective: the negative ELBO, with the KL weighted by β (Higgins et al. 2017; β = 1 is the bound itself):
    loss = E_q[−log p(x | z, y)] + β · KL(q(z | x, y) ‖ N(0, I)),
a single reparameterised draw z = μ + σ ⊙ ε per image per step. β = 0 is the plain (deterministic) autoencoder:
z = μ(x), no KL, no prior to sample from.
Figures: the held-out ELBO as a bound (bits per dimension, −ELBO / (D · ln 2)) and the tighter importance-weighted
bound with k samples (``iwae_samples``, default 1,000):
    log p(x) ≥ log (1/k) Σ_i p(x | z_i) p(z_i) / q(z_i | x),  z_i ~ q(z | x),
both labelled "bound"; the reconstruction's bits per dimension.
Sampling: z ~ N(0, I) (``temperature`` scales its standard deviation), shown as the decoder's mean image.
Class-conditional when the data has labels: a learned class embedding enters encoder and decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import CLASSES, COUNT, IMAGE_CHANNELS, IMAGE_SIZE, NONNEGATIVE, WIDTH, Range, check_ranges
from genlab.data.image_data import quantize
from genlab.errors import GenlabError
from genlab.models.image import ImageModel, write_grid

EVAL_SEED = 1234
#: held-out images the IWAE bound is computed on (each costs ``iwae_samples`` decoder passes: 0.05 s for a digit,
#: 0.3 s for an 8×8 RGB image with 256 levels, on 2 CPU cores): all of the digits' 360, and a bounded cost beyond
IWAE_IMAGES = 400


@dataclass
class VAEConfig:
    image_size: int = 8
    channels: int = 1  # set from the data
    num_classes: int = 0  # set from the data: 0 = unconditional
    levels: int = 256  # set from the data: discrete values per channel (the digits have 17)
    width: int = 32  # channels after the first convolution; doubled at each halving
    downs: int = 2  # halvings of the image in the encoder (8 → 2 at the default)
    latent: int = 16  # dimensions of z
    beta: float = 1.0  # weight of the KL term; 0: the plain autoencoder
    iwae_samples: int = 1000  # k of the importance-weighted bound in held-out figures (0: not computed)

    def validate(self) -> None:
        check_ranges(
            self,
            "vae",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "num_classes": CLASSES,
                "levels": Range(2, 256),
                "width": WIDTH,
                "downs": Range(0, 8),
                "latent": WIDTH,
                "beta": NONNEGATIVE,
                "iwae_samples": COUNT,
            },
        )
        if self.image_size % 2**self.downs:
            raise GenlabError(f"vae: --size {self.image_size} must be a multiple of 2^downs = {2**self.downs}")
        if self.width * 2**self.downs > 16384:
            raise GenlabError(f"vae: width {self.width} doubled {self.downs} times is too wide")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(1, cout), nn.SiLU())


class VAE(ImageModel):
    family = "vae"
    modality = "image"
    Config = VAEConfig
    condition = "class"
    sampling_controls = frozenset({"temperature"})
    presets = {
        # the 8×8 digits at 17 levels: about a minute on 2 CPU cores; held-out IWAE is best near 1,000 steps (2.02
        # bits/dim) and worse by 3,000 (2.07: it starts to overfit 1,438 images)
        "tiny": dict(
            image_size=8,
            width=32,
            downs=2,
            latent=16,
            batch_size=64,
            lr=2e-3,
            min_lr=1e-4,
            steps=1000,
            warmup=100,
            weight_decay=0.0,
            eval_every=500,
            sample_every=500,
        ),  # fmt: skip
        "small": dict(
            image_size=32,
            width=64,
            downs=3,
            latent=64,
            batch_size=64,
            lr=1e-3,
            min_lr=5e-5,
            steps=20000,
            warmup=500,
            weight_decay=0.0,
            eval_every=4000,
            sample_every=4000,
        ),  # fmt: skip
        "base": dict(
            image_size=64,
            width=64,
            downs=4,
            latent=128,
            batch_size=128,
            lr=5e-4,
            min_lr=2e-5,
            steps=100000,
            warmup=1000,
            weight_decay=0.0,
            eval_every=10000,
            sample_every=10000,
        ),  # fmt: skip
    }

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        c = config
        self.side = c.image_size // 2**c.downs
        widths = [c.width * 2**i for i in range(c.downs + 1)]
        cond = c.width if c.num_classes else 0
        self.embed = nn.Embedding(c.num_classes, c.width) if c.num_classes else None
        enc: list[nn.Module] = [_block(c.channels + cond, widths[0])]
        for a, b in zip(widths, widths[1:], strict=False):
            enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.SiLU(), _block(b, b)]
        self.encoder = nn.Sequential(*enc)
        flat = widths[-1] * self.side**2
        self.to_posterior = nn.Linear(flat, 2 * c.latent)
        self.from_latent = nn.Linear(c.latent + cond, flat)
        dec: list[nn.Module] = []
        for a, b in zip(widths[::-1], widths[::-1][1:], strict=False):
            dec += [_block(a, a), nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.SiLU()]
        dec += [_block(widths[0], widths[0]), nn.Conv2d(widths[0], c.channels * c.levels, 1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def autoencoder(self) -> bool:
        """β = 0: the plain, deterministic autoencoder."""
        return self.config.beta == 0

    # --- the model ----------------------------------------------------------------------------------
    def _class(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if self.embed is None:
            return None
        if y is None:
            raise GenlabError("this VAE is class-conditional: give a class (--class)")
        return self.embed(y) if y.dtype == torch.long else y @ self.embed.weight  # soft (mixed) classes

    def encode(self, images: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] → the posterior's mean and log-variance, ``B×latent`` each."""
        e = self._class(y)
        x = images if e is None else torch.cat([images, e[:, :, None, None].expand(-1, -1, *images.shape[2:])], 1)
        mu, logvar = self.to_posterior(self.encoder(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``B×latent`` → logits ``B×C×levels×H×W`` of each pixel's categorical."""
        e = self._class(y)
        h = self.from_latent(z if e is None else torch.cat([z, e], 1))
        c = self.config
        out = self.decoder(h.view(z.shape[0], -1, self.side, self.side))
        return out.view(z.shape[0], c.channels, c.levels, c.image_size, c.image_size)

    def mean_image(self, logits: torch.Tensor) -> torch.Tensor:
        """The decoder's mean in [0, 1]: Σ_k p_k · k / (levels − 1)."""
        values = torch.linspace(0, 1, self.config.levels, device=logits.device).view(1, 1, -1, 1, 1)
        return (F.softmax(logits.float(), dim=2) * values).sum(2)

    def recon_nll(self, logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """−log p(x | z) in nats per image."""
        return F.cross_entropy(logits.transpose(1, 2).float(), q, reduction="none").flatten(1).sum(1)

    def terms(self, images: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction −log p(x|z), KL) per image, with one reparameterised draw (z = μ for the autoencoder)."""
        mu, logvar = self.encode(images, y)
        q = quantize(images, self.config.levels)
        if self.autoencoder:
            return self.recon_nll(self.decode_logits(mu, y), q), torch.zeros_like(mu[:, 0])
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return self.recon_nll(self.decode_logits(z, y), q), kl

    def loss(self, batch: Any) -> torch.Tensor:
        images, labels, _ = batch
        images = images.to(self.device)
        y = labels.to(self.device) if labels is not None and self.conditional else None
        recon, kl = self.terms(images, y)
        return (recon + self.config.beta * kl).mean() / images[0].numel()

    @torch.no_grad()
    def iwae(self, images: torch.Tensor, y: torch.Tensor | None, k: int, chunk: int = 1000) -> torch.Tensor:
        """The importance-weighted lower bound on log p(x) (nats) of each image, with ``k`` samples of q."""
        mu, logvar = self.encode(images, y)
        std = (0.5 * logvar).exp()
        q = quantize(images, self.config.levels)
        out = []
        for b in range(images.shape[0]):
            weights = []
            for s in range(0, k, chunk):
                m = min(chunk, k - s)
                eps = torch.randn(m, mu.shape[1], device=self.device)
                z = mu[b] + std[b] * eps
                yb = None if y is None else y[b : b + 1].expand(m)
                log_px = -self.recon_nll(self.decode_logits(z, yb), q[b : b + 1].expand(m, *q.shape[1:]))
                log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
                log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum(1) - (0.5 * logvar[b]).sum()
                weights.append(log_px + log_pz - log_qz)
            out.append(torch.logsumexp(torch.cat(weights), 0) - math.log(k))
        return torch.stack(out)

    def log_prob(self, x: Any, cond: Any = None) -> torch.Tensor:
        """A lower bound on log p(x | cond) (IWAE with ``iwae_samples``, at least 1): the VAE has no exact one."""
        return self.iwae(x, self.check_class(cond), max(1, self.config.iwae_samples))

    @torch.no_grad()
    def sample(
        self, n: int, cond: Any = None, *, generator: torch.Generator | None = None, temperature: float | None = None
    ) -> torch.Tensor:
        """``n`` decoder means in [0, 1] of z ~ N(0, temperature² I) (temperature default 1)."""
        if self.autoencoder:
            raise GenlabError(
                "a plain autoencoder (beta=0) has no prior to sample from; train with beta > 0, or --interpolate"
            )
        t = 1.0 if temperature is None else float(temperature)
        if t < 0 or not math.isfinite(t):
            raise GenlabError(f"--temperature {t}: must be a finite number ≥ 0")
        y = self.sample_classes(n, cond, generator)
        z = torch.randn(n, self.config.latent, generator=generator, device=self.device) * t
        return self._decode_mean(z, y)

    def _decode_mean(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        was = self.training
        self.eval()
        out = self.mean_image(self.decode_logits(z, y))
        self.train(was)
        return out

    @torch.no_grad()
    def interpolate(
        self,
        frames: int,
        *,
        through: str = "noise",
        images: torch.Tensor | None = None,
        classes: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """``frames`` decoder means along a straight line in latent space: between the posterior means of two
        ``images`` (``2×C×H×W`` in [0, 1]) when given, else between two draws of the prior; a conditional model's
        class embedding moves linearly from ``classes[0]`` to ``classes[1]``."""
        if frames < 2:
            raise GenlabError(f"--frames {frames}: need at least 2")
        lam = torch.linspace(0, 1, frames, device=self.device).view(-1, 1)
        y = None
        if self.conditional:
            if classes is None:
                raise GenlabError("this VAE is class-conditional: interpolate between two classes (--interpolate 0,1)")
            a, b = (F.one_hot(self.check_class(c), self.config.num_classes).float() for c in classes)
            y = (1 - lam) * a + lam * b
        if images is not None:
            ends_y = None if y is None else y[[0, -1]]
            self.eval()
            ends, _ = self.encode(images.to(self.device) * 2 - 1, ends_y)
        elif self.autoencoder:
            raise GenlabError("a plain autoencoder interpolates between two images: --interpolate a.png,b.png")
        else:
            t = 1.0 if temperature is None else float(temperature)
            ends = torch.randn(2, self.config.latent, generator=generator, device=self.device) * t
        return self._decode_mean((1 - lam) * ends[:1] + lam * ends[1:], y)

    def sampling_bytes(self, n: int, tokens: int = 0) -> int:
        c = self.config
        return n * c.image_size**2 * (4 * c.width + c.channels * c.levels) * 4 * 2

    # --- figures ------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """Held-out bits per dimension over the first ``batches × batch_size`` held-out images: the ELBO (a bound,
        one draw per image), the IWAE bound with ``iwae_samples`` draws (tighter; on the first
        :data:`IWAE_IMAGES` of them), and the reconstruction alone; the autoencoder has no likelihood."""
        devices = [self.device] if self.device.type != "cpu" else []
        n = min(len(val), batches * batch_size)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EVAL_SEED)
            recon_sum, kl_sum, iwae_sum, dims, iwae_dims, iwae_images = 0.0, 0.0, 0.0, 0, 0, 0
            for i in range(0, n, 256):
                j = min(n, i + 256)
                x = val.images[i:j].to(self.device)
                y = val.labels[i:j].to(self.device) if val.labels is not None and self.conditional else None
                recon, kl = self.terms(x, y)
                recon_sum, kl_sum = recon_sum + float(recon.sum()), kl_sum + float(kl.sum())
                m = max(0, min(len(x), IWAE_IMAGES - i))
                if self.config.iwae_samples > 0 and not self.autoencoder and m:
                    iwae_sum += float(self.iwae(x[:m], None if y is None else y[:m], self.config.iwae_samples).sum())
                    iwae_dims += x[0].numel() * m
                    iwae_images += m
                dims += x[0].numel() * x.shape[0]
        bits = 1 / (dims * math.log(2))
        figures: dict[str, Any] = {"recon_bits_per_dim": recon_sum * bits, "levels": self.config.levels}
        if self.autoencoder:
            return figures | {"likelihood": "none"}
        figures |= {"elbo_bits_per_dim": (recon_sum + kl_sum) * bits, "kl_bits_per_dim": kl_sum * bits}
        if self.config.iwae_samples > 0:
            figures |= {"bits_per_dim": -iwae_sum / (iwae_dims * math.log(2)), "iwae_samples": self.config.iwae_samples,
                        "iwae_images": iwae_images}  # fmt: skip
        else:
            figures |= {"bits_per_dim": (recon_sum + kl_sum) * bits}
        return figures | {"likelihood": "bound", "uniform_bits_per_dim": math.log2(self.config.levels)}

    def preview(self, path: Path, val: Any, seed: int) -> Path:
        """Samples (one row per class, up to 10), or for the autoencoder held-out images over their reconstructions."""
        if not self.autoencoder:
            return self.sample_grid(path, seed)
        x = val.images[:8].to(self.device)
        y = val.labels[:8].to(self.device) if val.labels is not None and self.conditional else None
        with torch.no_grad():
            rec = self._decode_mean(self.encode(x, y)[0], y)
        return write_grid(path, torch.cat([(x + 1) / 2, rec]), 8, self.config.image_size)
