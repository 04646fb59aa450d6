"""Generative adversarial network: a DCGAN-style generator and critic (Goodfellow et al. 2014; Radford et al. 2016).

Formulation: a generator G maps z ~ N(0, I) (and a class y) to an image in one network evaluation; a critic D scores
images. There is no likelihood: the model is judged by its samples (FID, precision/recall, class coverage).
Representation: G is a linear layer to a small feature map and ``downs`` transposed convolutions that double it,
each followed by a LayerNorm-style GroupNorm and ReLU, and a tanh. D mirrors it with strided convolutions,
BatchNorm (``critic_norm``, as DCGAN) and LeakyReLU, optionally spectrally normalised (Miyato et al. 2018;
``spectral_norm``); a class-conditional D is a projection critic, D(x, y) = ψ(φ(x)) + ⟨e_y, φ(x)⟩ (Miyato &
Koyama 2018), and G takes a class embedding with z.
Objectives (``loss``):
    hinge (SNGAN)   L_D = E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))],   L_G = −E[D(G(z))]
    ns (the original non-saturating)   L_D = E[softplus(−D(x))] + E[softplus(D(G(z)))],   L_G = E[softplus(−D(G(z)))]
    wgan-gp (Gulrajani et al. 2017)   L_D = E[D(G(z))] − E[D(x)] + λ E[(‖∇D(x̂)‖ − 1)²],   L_G = −E[D(G(z))]
with x̂ on straight lines between real and fake images. The critic's BatchNorm sees real and fake images in
separate batches, so it can tell a batch of near-identical fakes from a real one: on the 8×8 digits a critic without
it (spectral norm, hinge or non-saturating loss alike) lets G collapse to one digit within a few hundred steps, and
with it G keeps the diversity of the data (docs/image-families.md). The gradient penalty is per image, so wgan-gp
needs ``critic_norm=none`` (Gulrajani et al. use none or layer norm). G and D step together, each with its own
optimizer (the Trainer's several-optimizer step): D is frozen while L_G is computed and sees the fakes detached. The
generator is sampled through the Trainer's EMA of the weights (``--set ema=…``; the presets use 0.999).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.config import CLASSES, IMAGE_CHANNELS, IMAGE_SIZE, NONNEGATIVE, WIDTH, Range, check_ranges
from genlab.errors import GenlabError
from genlab.models.base import Optim
from genlab.models.image import EVAL_SEED, ImageModel

LOSSES = ("ns", "hinge", "wgan-gp")
CRITIC_NORMS = ("batch", "none")


@dataclass
class GANConfig:
    image_size: int = 8
    channels: int = 1  # set from the data
    num_classes: int = 0  # set from the data: 0 = unconditional
    latent: int = 64  # dimensions of z
    width: int = 64  # channels at full resolution; doubled at each halving
    downs: int = 2  # halvings between the image and the smallest feature map (8 → 2 at the default)
    loss: str = "ns"  # ns | hinge | wgan-gp
    gp_weight: float = 10.0  # λ of wgan-gp's gradient penalty
    spectral_norm: bool = False  # spectrally normalise the critic's layers
    critic_norm: str = "batch"  # batch (DCGAN) | none: normalisation after the critic's strided convolutions

    def validate(self) -> None:
        check_ranges(
            self,
            "gan",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "num_classes": CLASSES,
                "latent": WIDTH,
                "width": WIDTH,
                "downs": Range(0, 8),
                "gp_weight": NONNEGATIVE,
            },
        )
        if self.loss not in LOSSES:
            raise GenlabError(f"gan: loss={self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.critic_norm not in CRITIC_NORMS:
            raise GenlabError(f"gan: critic_norm={self.critic_norm!r}; choose one of {', '.join(CRITIC_NORMS)}")
        if self.loss == "wgan-gp" and self.critic_norm == "batch":
            raise GenlabError("gan: wgan-gp's gradient penalty is per image; add --set critic_norm=none")
        if self.image_size % 2**self.downs:
            raise GenlabError(f"gan: --size {self.image_size} must be a multiple of 2^downs = {2**self.downs}")
        if self.width * 2**self.downs > 16384:
            raise GenlabError(f"gan: width {self.width} doubled {self.downs} times is too wide")


class Generator(nn.Module):
    def __init__(self, c: GANConfig) -> None:
        super().__init__()
        self.side = c.image_size // 2**c.downs
        widths = [c.width * 2**i for i in range(c.downs + 1)][::-1]
        self.embed = nn.Embedding(c.num_classes, c.latent) if c.num_classes else None
        self.stem = nn.Linear(c.latent * (2 if c.num_classes else 1), widths[0] * self.side**2)
        layers: list[nn.Module] = [nn.GroupNorm(1, widths[0]), nn.ReLU()]
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.GroupNorm(1, b), nn.ReLU()]
        layers += [nn.Conv2d(widths[-1], c.channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:
            e = self.embed(y) if y.dtype == torch.long else y @ self.embed.weight  # soft (mixed) classes
            z = torch.cat([z, e], dim=1)
        return self.body(self.stem(z).view(z.shape[0], -1, self.side, self.side))


class Critic(nn.Module):
    def __init__(self, c: GANConfig) -> None:
        super().__init__()
        sn = spectral_norm if c.spectral_norm else (lambda m: m)
        widths = [c.width * 2**i for i in range(c.downs + 1)]
        layers: list[nn.Module] = [sn(nn.Conv2d(c.channels, widths[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for a, b in zip(widths, widths[1:], strict=False):
            norm = nn.BatchNorm2d(b) if c.critic_norm == "batch" else nn.Identity()
            layers += [sn(nn.Conv2d(a, b, 4, stride=2, padding=1)), norm, nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        features = widths[-1] * (c.image_size // 2**c.downs) ** 2
        self.head = sn(nn.Linear(features, 1))
        self.embed = sn(nn.Embedding(c.num_classes, features)) if c.num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.body(x).flatten(1)
        out = self.head(h).squeeze(1)
        if self.embed is not None and y is not None:
            out = out + (self.embed(y) * h).sum(1)  # the projection term
        return out


class GAN(ImageModel):
    family = "gan"
    modality = "image"
    Config = GANConfig
    condition = "class"
    presets = {
        # the 8×8 digits: a few minutes on 2 CPU cores; Adam with β1 = 0.5 as DCGAN, a generator EMA
        "tiny": dict(
            image_size=8,
            latent=64,
            width=64,
            downs=2,
            batch_size=64,
            lr=2e-4,
            min_lr=2e-4,
            steps=4000,
            warmup=0,
            beta1=0.5,
            beta2=0.999,
            weight_decay=0.0,
            ema=0.999,
            eval_every=1000,
            sample_every=1000,
        ),  # fmt: skip
        "small": dict(
            image_size=32,
            latent=128,
            width=64,
            downs=3,
            batch_size=64,
            lr=2e-4,
            min_lr=2e-4,
            steps=40000,
            warmup=0,
            beta1=0.5,
            beta2=0.999,
            weight_decay=0.0,
            ema=0.999,
            eval_every=5000,
            sample_every=5000,
        ),  # fmt: skip
        "base": dict(
            image_size=64,
            latent=128,
            width=64,
            downs=4,
            batch_size=128,
            lr=2e-4,
            min_lr=2e-4,
            steps=100000,
            warmup=0,
            beta1=0.0,
            beta2=0.9,
            weight_decay=0.0,
            ema=0.9999,
            eval_every=10000,
            sample_every=10000,
        ),  # fmt: skip
    }

    def __init__(self, config: GANConfig) -> None:
        super().__init__(config)
        self.generator = Generator(config)
        self.critic = Critic(config)

    def optimizers(self) -> dict[str, Optim]:
        """The generator and the critic step separately, each with its own Adam state."""
        return {"model": Optim(list(self.generator.parameters())), "critic": Optim(list(self.critic.parameters()))}

    def _latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.config.latent, generator=generator, device=self.device)

    def loss(self, batch: Any) -> torch.Tensor:
        return sum(self.losses(batch).values())

    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """``model``: the generator's loss (the critic frozen); ``critic``: the critic's, on detached fakes."""
        images, labels, _ = batch
        x = images.to(self.device)
        y = labels.to(self.device) if labels is not None and self.conditional else None
        fake = self.generator(self._latents(x.shape[0]), y)
        self.critic.requires_grad_(False)
        d_gen = self.critic(fake, y)
        self.critic.requires_grad_(True)
        d_real, d_fake = self.critic(x, y), self.critic(fake.detach(), y)
        loss = self.config.loss
        if loss == "hinge":
            g, d = -d_gen.mean(), F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        elif loss == "ns":
            g, d = F.softplus(-d_gen).mean(), F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        else:
            g, d = -d_gen.mean(), d_fake.mean() - d_real.mean() + self.config.gp_weight * self._penalty(x, fake, y)
        return {"model": g, "critic": d}

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """WGAN-GP: E[(‖∇_x̂ D(x̂)‖₂ − 1)²] at x̂ uniformly between real and (detached) fake images."""
        t = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mixed = (t * real + (1 - t) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(mixed, y).sum(), mixed, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    @torch.no_grad()
    def sample(self, n: int, cond: Any = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images in [0, 1], one generator evaluation each (a conditional model draws each sample's class
        uniformly when none is given)."""
        y = self.sample_classes(n, cond, generator)
        z = self._latents(n, generator)
        return self._draw(z, y)

    def _draw(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        was = self.training
        self.eval()
        out = ((self.generator(z, y) + 1) / 2).clamp(0, 1)
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
        **_: Any,
    ) -> torch.Tensor:
        """``frames`` images along a great circle between two latents (slerp), a conditional model's class
        embedding moving linearly from ``classes[0]`` to ``classes[1]``. A GAN has no encoder: no image ends."""
        if frames < 2:
            raise GenlabError(f"--frames {frames}: need at least 2")
        if classes is None:
            raise GenlabError("a GAN has no encoder: interpolate between two classes (--interpolate 0,1), not images")
        z = self._latents(2, generator)
        lam = torch.linspace(0, 1, frames, device=self.device).view(-1, 1)
        omega = torch.arccos((F.normalize(z[0], dim=0) * F.normalize(z[1], dim=0)).sum().clamp(-1 + 1e-7, 1 - 1e-7))
        path = (torch.sin((1 - lam) * omega) * z[:1] + torch.sin(lam * omega) * z[1:]) / torch.sin(omega)
        y = None
        if self.conditional:
            a, b = (F.one_hot(self.check_class(c), self.config.num_classes).float() for c in classes)
            y = (1 - lam) * a + lam * b
        return self._draw(path, y)

    def sampling_bytes(self, n: int, tokens: int = 0) -> int:
        return n * self.config.image_size**2 * self.config.width * 4 * 4

    # --- figures ------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """No likelihood ("none"); the critic's mean score of held-out images and of as many samples (their gap
        is what the critic still tells apart)."""
        g = torch.Generator(device=self.device).manual_seed(EVAL_SEED)
        n = min(len(val), batches * batch_size)
        x = val.images[:n].to(self.device)
        y = val.labels[:n].to(self.device) if val.labels is not None and self.conditional else None
        was = self.training
        self.eval()  # the critic's BatchNorm with its running statistics, which this leaves as they are
        fake = self.generator(self._latents(n, g), y)
        real_score, fake_score = float(self.critic(x, y).mean()), float(self.critic(fake, y).mean())
        self.train(was)
        return {"likelihood": "none", "critic_real": real_score, "critic_fake": fake_score}

    def preview(self, path: Path, val: Any, seed: int) -> Path:
        return self.sample_grid(path, seed)
