"""The perceptual autoencoder of latent diffusion (Rombach et al. 2022, §3.1; Esser et al. 2021).

Formulation: an encoder E maps an image x (H×W×3) to a diagonal Gaussian over a latent z of size H/f × W/f × c
(f = 2^(levels−1)), a decoder D maps z back. Latent diffusion then runs in this f²·3/c times smaller space.
Objective (lecture 03: "a pixel loss, a patch-level adversarial critic for detail and a perceptual loss for global
likeness"):
    L = |x − D(z)|₁ + w_p · d_percep(x, D(z)) + w_kl · KL(q(z|x) ‖ N(0, I)) + w_d · L_G
with z ~ q(z|x) = N(μ(x), σ²(x)), d_percep from :class:`genlab.models.features.FeatureNet` (contrastive features),
and, after ``disc_start`` steps, a PatchGAN critic C with hinge losses
    L_C = E[max(0, 1 − C(x))] + E[max(0, 1 + C(D(z)))],  L_G = −E[C(D(z))].
The critic lives in this module so one optimizer trains both: its parameters are frozen while L_G is computed, and
it sees the reconstruction detached, so each loss only reaches its own network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import (
    COUNT,
    DEPTH,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    MULTIPLIER,
    NONNEGATIVE,
    WIDTH,
    Range,
    check_int_list,
    check_ranges,
)
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel, Optim, Part
from genlab.models.diffusion import parse_ints
from genlab.models.image import EVAL_IMAGES, ImageModel, write_grid
from genlab.nn.unet import ResBlock, group_norm


@dataclass
class AutoencoderConfig:
    image_size: int = 32
    channels: int = 3  # set from the data
    base_channels: int = 32
    channel_mult: str = "1,2,2"  # f = 2^(len - 1): "1,2,2" is f = 4, "1,2,2,4" is f = 8
    num_res_blocks: int = 1
    # latent channels: 16, as SD3's autoencoder (Esser et al. 2024), not SD 1's 4; at f = 4 on 32×32 shapes, 4
    # channels lose the outline of small objects (docs/text2image.md, "The autoencoder is the ceiling")
    z_channels: int = 16
    kl_weight: float = 1e-6
    perceptual_weight: float = 1.0
    disc_weight: float = 0.1
    disc_start: int = 1000  # steps before the critic starts
    disc_channels: int = 32
    # False fine-tunes the decoder alone (with --init): the latents stay the same, so a diffusion model trained on
    # them keeps working with the new decoder (Stable Diffusion's ft-EMA / ft-MSE decoders were made so)
    train_encoder: bool = True

    def validate(self) -> None:
        check_ranges(
            self,
            "autoencoder",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "base_channels": WIDTH,
                "num_res_blocks": DEPTH,
                "z_channels": Range(1, 1024),
                "kl_weight": NONNEGATIVE,
                "perceptual_weight": NONNEGATIVE,
                "disc_weight": NONNEGATIVE,
                "disc_start": COUNT,
                "disc_channels": WIDTH,
            },
        )
        mult = parse_ints(self.channel_mult, "channel_mult")
        check_int_list(mult, "autoencoder: channel_mult", MULTIPLIER)
        if not mult:
            raise GenlabError("autoencoder: channel_mult must name at least one level, e.g. 1,2")
        if self.image_size % (2 ** (len(mult) - 1)):
            raise GenlabError(f"--size {self.image_size}: must be a multiple of the downsampling factor {self.factor}")

    @property
    def factor(self) -> int:
        return 2 ** (len(parse_ints(self.channel_mult, "channel_mult")) - 1)


class Encoder(nn.Module):
    """``B×3×H×W`` → ``B×2c×H/f×W/f`` (mean and log-variance of q(z|x))."""

    def __init__(self, c: AutoencoderConfig) -> None:
        super().__init__()
        mult = parse_ints(c.channel_mult, "channel_mult")
        layers: list[nn.Module] = [nn.Conv2d(c.channels, c.base_channels, 3, padding=1)]
        ch = c.base_channels
        for level, m in enumerate(mult):
            for _ in range(c.num_res_blocks):
                layers.append(ResBlock(ch, c.base_channels * m))
                ch = c.base_channels * m
            if level < len(mult) - 1:
                layers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        layers += [ResBlock(ch, ch), group_norm(ch), nn.SiLU(), nn.Conv2d(ch, 2 * c.z_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """``B×c×H/f×W/f`` → ``B×3×H×W``."""

    def __init__(self, c: AutoencoderConfig) -> None:
        super().__init__()
        mult = parse_ints(c.channel_mult, "channel_mult")
        ch = c.base_channels * mult[-1]
        layers: list[nn.Module] = [nn.Conv2d(c.z_channels, ch, 3, padding=1), ResBlock(ch, ch)]
        for level, m in reversed(list(enumerate(mult))):
            for _ in range(c.num_res_blocks + 1):
                layers.append(ResBlock(ch, c.base_channels * m))
                ch = c.base_channels * m
            if level > 0:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)]
        layers += [group_norm(ch), nn.SiLU(), nn.Conv2d(ch, c.channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class PatchCritic(nn.Module):
    """PatchGAN (Isola et al. 2017): ``B×3×H×W`` → a map of real/fake logits, one per overlapping patch."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            group_norm(2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Autoencoder(ImageModel):
    family = "autoencoder"
    no_samples = "it does not generate images by itself; train text2image on its latents"
    modality = "autoencoder"
    Config = AutoencoderConfig
    ddp_find_unused_parameters = True  # the critic gets no gradient before disc_start
    presets = {
        "tiny": dict(
            base_channels=32,
            channel_mult="1,2,2",
            num_res_blocks=1,
            disc_start=1500,
            batch_size=32,
            lr=1e-3,
            min_lr=1e-4,
            steps=4000,
            warmup=200,
            weight_decay=0.0,
            eval_every=500,
            beta2=0.99,
        ),
        "small": dict(
            base_channels=64,
            channel_mult="1,2,2",
            num_res_blocks=2,
            disc_start=5000,
            batch_size=32,
            lr=5e-4,
            min_lr=5e-5,
            steps=20000,
            warmup=500,
            weight_decay=0.0,
            eval_every=1000,
        ),
        "base": dict(
            base_channels=128,
            channel_mult="1,2,4,4",
            num_res_blocks=2,
            disc_start=20000,
            batch_size=64,
            lr=2e-4,
            min_lr=2e-5,
            steps=100000,
            warmup=1000,
            weight_decay=0.0,
            eval_every=5000,
        ),
    }

    parts = {
        "perceptual": Part(
            "features",
            "feature network for the perceptual loss (default: the shipped features-shapes)",
            default="features",
            on_resume=True,
            needed=lambda c: c.perceptual_weight > 0,
        )
    }

    # --- training hooks ----------------------------------------------------------------------------
    def attach_parts(self, parts: dict[str, GenerativeModel]) -> None:
        if "perceptual" in parts:
            self.attach_perceptual(parts["perceptual"])

    def optimizers(self) -> dict[str, Optim]:
        """The autoencoder and its PatchGAN critic step separately, each with its own AdamW state."""
        trainable = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("critic.")]
        return {"model": Optim(trainable), "critic": Optim(list(self.critic.parameters()))}

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, float]:
        """PSNR and SSIM (on [0, 1] images) and L1 of held-out reconstructions through the latent mean."""
        from genlab.eval.fidelity import batch_ssim, psnr

        x = (val.images[:EVAL_IMAGES] + 1) / 2
        rec = self.reconstruct(x)
        return {
            "val_psnr": psnr(rec.numpy(), x.numpy()),
            "val_ssim": batch_ssim(rec.numpy(), x.numpy()),
            "val_l1": (rec - x).abs().mean().item(),
        }

    def preview(self, path: Path, val: Any, seed: int) -> Path:
        """Held-out images (odd rows) above their reconstructions (even rows)."""
        x = (val.images[:32] + 1) / 2
        rec = self.reconstruct(x)
        rows = torch.cat([torch.stack([x[i : i + 8], rec[i : i + 8]]) for i in range(0, 32, 8)]).flatten(0, 1)
        return write_grid(path, rows, 8, self.config.image_size, fill=64)

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__(config)
        config.validate()
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.critic = PatchCritic(config.channels, config.disc_channels)
        if not config.train_encoder:
            self.encoder.requires_grad_(False)
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self._perceptual: list[GenerativeModel] = []  # attached for training; not part of the checkpoint

    def attach_perceptual(self, features: GenerativeModel) -> None:
        """Use ``features`` (a frozen :class:`FeatureNet`) for the perceptual term."""
        features.eval().requires_grad_(False)
        self._perceptual[:] = [features]

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x) for images in [-1, 1]."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(
        self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        mean, logvar = self.posterior(x)
        if not sample:
            return mean
        return mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator, device=mean.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def loss(self, batch: tuple[torch.Tensor, object]) -> torch.Tensor:
        return sum(self.losses(batch).values())

    def losses(self, batch: tuple[torch.Tensor, object]) -> dict[str, torch.Tensor]:
        """``model``: L1 + perceptual + KL (+ the adversarial term once the critic has started); ``critic``: the
        hinge loss of the PatchGAN on real images and detached reconstructions. The critic is frozen while the
        adversarial term is computed, so each loss reaches only its own optimizer's parameters."""
        x = batch[0]
        c = self.config
        with torch.set_grad_enabled(c.train_encoder and torch.is_grad_enabled()):
            mean, logvar = self.posterior(x)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        rec = self.decoder(z)
        loss = (x - rec).abs().mean()
        if c.perceptual_weight > 0:
            if not self._perceptual:
                raise GenlabError("autoencoder: no perceptual network attached (train one: genlab train features)")
            loss = loss + c.perceptual_weight * self._perceptual[0].perceptual_distance(x, rec).mean()
        if c.train_encoder:  # with a frozen encoder the KL term is a constant
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
            loss = loss + c.kl_weight * kl
        if self.training:
            self.steps_seen += 1
        if c.disc_weight > 0 and int(self.steps_seen) > c.disc_start:
            self.critic.requires_grad_(False)
            gen_loss = -self.critic(rec).mean()
            self.critic.requires_grad_(True)
            critic_loss = F.relu(1 - self.critic(x)).mean() + F.relu(1 + self.critic(rec.detach())).mean()
            return {"model": loss + c.disc_weight * gen_loss, "critic": critic_loss}
        return {"model": loss}

    @torch.no_grad()
    def reconstruct(self, images01: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """Images in [0, 1] → their reconstructions through the latent mean, in [0, 1]."""
        out = []
        for i in range(0, images01.shape[0], batch_size):
            x = images01[i : i + batch_size].to(self.device) * 2 - 1
            out.append(((self.decode(self.encode(x)) + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(out)
