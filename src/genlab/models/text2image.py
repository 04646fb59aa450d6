"""Latent text-to-image diffusion in the Stable Diffusion style (Rombach et al. 2022).

Formulation: p(x | prompt) through a latent z = s · E(x) of a perceptual autoencoder (:mod:`autoencoder`), scaled by
s so the latents have about unit variance; diffusion (the forward process and DDPM objective of
:mod:`diffusion`) runs on z; the prompt conditions the denoiser through cross-attention to the per-token features
of a frozen text encoder (CLIP's text tower, :mod:`clip`).
Representation: the UNet of :mod:`genlab.nn.unet` with cross-attention after each self-attention (eq. 3 of the
paper: Attention(Q = W_Q φ(z_t), K = W_K τ(y), V = W_V τ(y))); the autoencoder and the text encoder ride along
frozen, so one checkpoint holds the whole pipeline.
Objective: E ‖ε − ε_θ(z_t, t, τ(y))‖², with the caption replaced by the empty prompt with probability
``caption_drop`` so one network also learns the unconditional model (classifier-free guidance).
Inference: every sampler of :mod:`genlab.sampling.diffusion`; guidance ε̃ = (1 + w) ε(z, c) − w ε(z, c⁻), where c⁻
is the empty prompt or a negative prompt; the decoder maps the final latent to pixels. Editing: img2img (SDEdit:
noise the image's latent to strength·T, then denoise with the prompt), inpainting (RePaint: at every step the known
region is replaced by the noised original, with resampling), and interpolation between prompts.
The model is the diffusion model of :class:`~genlab.models.diffusion_base.DiffusionBase` (schedule, loss, guidance,
clipping, sampling, img2img, inpainting) over the latent codec z = s · E(x), x = D(z / s), with a text condition.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genlab.config import (
    DEPTH,
    IMAGE_SIZE,
    MULTIPLIER,
    NONNEGATIVE,
    POSITIVE,
    PROBABILITY,
    TIMESTEPS,
    WIDTH,
    check_int_list,
    check_ranges,
    from_dict,
    to_dict,
)
from genlab.data.tokenizers import load_tokenizer, save_tokenizer
from genlab.errors import GenlabError
from genlab.models.autoencoder import Autoencoder, AutoencoderConfig
from genlab.models.base import GenerativeModel, Part, TrainingData, load_state_strict
from genlab.models.clip import CLIP, CLIPConfig, TextFeatures
from genlab.models.diffusion import parse_ints
from genlab.models.diffusion_base import DiffusionBase
from genlab.models.image import EVAL_IMAGES, EVAL_SEED, write_grid
from genlab.nn.unet import UNet
from genlab.sampling import diffusion as S

#: prompts drawn every ``sample_every`` steps while a text-to-image model trains
PREVIEW_PROMPTS = (
    "a large red circle in the center",
    "a small blue square at the top left",
    "a medium green triangle at the bottom",
    "a large yellow star at the right",
    "a small purple diamond at the bottom right",
    "a medium orange cross at the top",
    "a large blue circle on a striped background",
    "",
)


@dataclass
class TextToImageConfig:
    base_channels: int = 64
    channel_mult: str = "1,2"
    num_res_blocks: int = 2
    attn_resolutions: str = "8,4"
    dropout: float = 0.0
    caption_drop: float = 0.1  # probability of training on the empty prompt (enables classifier-free guidance)
    timesteps: int = 1000
    schedule: str = "scaled_linear"  # Stable Diffusion's (see sampling.diffusion.beta_schedule)
    latent_scale: float = 1.0  # s: 1 / std of the autoencoder's latents, measured when training starts
    # sampling clips the implied x̂_0 to ±x0_clip (scaled latents have unit variance; 0 = off): see guarded()
    x0_clip: float = 3.0
    autoencoder: dict = field(default_factory=dict)  # the frozen autoencoder's config
    text_encoder: dict = field(default_factory=dict)  # the frozen CLIP's config
    autoencoder_fingerprint: str = ""  # what the UNet's latents belong to (see fingerprint())
    text_encoder_fingerprint: str = ""

    def validate(self) -> None:
        check_ranges(
            self,
            "text2image",
            {
                "base_channels": WIDTH,
                "num_res_blocks": DEPTH,
                "dropout": PROBABILITY,
                "caption_drop": PROBABILITY,
                "timesteps": TIMESTEPS,
                "latent_scale": POSITIVE,
                "x0_clip": NONNEGATIVE,
            },
        )
        check_int_list(parse_ints(self.channel_mult, "channel_mult"), "text2image: channel_mult", MULTIPLIER)
        check_int_list(
            parse_ints(self.attn_resolutions, "attn_resolutions"), "text2image: attn_resolutions", IMAGE_SIZE
        )


def fingerprint(model: torch.nn.Module, dtype: torch.dtype | None = None) -> str:
    """A short hash of a model's weights (as cast to ``dtype`` when given, the precision they are saved in): two
    checkpoints with the same fingerprint hold the same weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        h.update(t.contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


class TextToImage(DiffusionBase):
    family = "text2image"
    modality = "image"
    Config = TextToImageConfig
    presets = {
        "tiny": dict(
            base_channels=64,
            channel_mult="1,2",
            num_res_blocks=2,
            attn_resolutions="8,4",
            batch_size=64,
            lr=5e-4,
            min_lr=5e-5,
            steps=15000,
            warmup=500,
            ema=0.999,
            weight_decay=0.0,
            eval_every=1000,
            sample_every=2500,
        ),
        "small": dict(
            base_channels=96,
            channel_mult="1,2,2",
            num_res_blocks=2,
            attn_resolutions="16,8,4",
            batch_size=64,
            lr=2e-4,
            min_lr=2e-5,
            steps=50000,
            warmup=1000,
            ema=0.9995,
            weight_decay=0.0,
            eval_every=2500,
            sample_every=5000,
        ),
        "base": dict(
            base_channels=192,
            channel_mult="1,2,3,4",
            num_res_blocks=2,
            attn_resolutions="16,8,4",
            batch_size=128,
            lr=1e-4,
            min_lr=1e-5,
            steps=200000,
            warmup=2000,
            ema=0.9999,
            weight_decay=0.0,
            eval_every=5000,
            sample_every=10000,
        ),
    }

    needs = "captions"
    fine_tunes = False  # its tokenizer and frozen parts come with the data and the parts
    condition = "text"
    sampling_controls = frozenset(
        {"sampler", "steps", "eta", "spacing", "variance", "guidance", "negative_prompt", "progress"}
    )
    parts = {
        "autoencoder": Part("autoencoder", "text2image: the trained autoencoder whose latents it models"),
        "text_encoder": Part("clip", "text2image: the trained CLIP whose text tower conditions it"),
    }

    # --- training hooks: the frozen parts, the latent scale; held-out loss and a grid of preview prompts -------
    @classmethod
    def training_size(cls, config: TextToImageConfig, parts: dict[str, GenerativeModel]) -> int:
        """The autoencoder's image size (a resumed run reads it from its own config)."""
        return parts["autoencoder"].config.image_size if "autoencoder" in parts else config.autoencoder["image_size"]

    @classmethod
    def build(cls, config: TextToImageConfig, data: TrainingData, parts: dict[str, GenerativeModel]) -> TextToImage:
        """The UNet around the frozen ``parts``; s = 1 / std of the training images' latents."""
        ae, clip = parts["autoencoder"], parts["text_encoder"]
        images = data.train.images
        if ae.config.channels != images.shape[1]:
            raise GenlabError(
                f"--autoencoder: it works on {ae.config.channels}-channel images, the data has {images.shape[1]}"
            )
        with torch.no_grad():
            z = torch.cat([ae.encode(images[i : i + 256]) for i in range(0, min(len(images), 2048), 256)])
        config.latent_scale = float(1.0 / z.std())
        config.autoencoder, config.text_encoder = to_dict(ae.config), to_dict(clip.config)
        config.autoencoder_fingerprint, config.text_encoder_fingerprint = fingerprint(ae), fingerprint(clip)
        config.validate()
        model = cls(config)
        model.autoencoder.load_state_dict(ae.state_dict())
        model.clip.load_state_dict(clip.state_dict())
        model.clip.tokenizer = clip.tokenizer
        return model

    @classmethod
    def parameter_bytes(cls, config: TextToImageConfig) -> int | None:
        """Before ``build`` the parts' configs are unknown: the default autoencoder and CLIP stand in for them."""
        config = dataclasses.replace(
            config,
            autoencoder=config.autoencoder or to_dict(AutoencoderConfig()),
            text_encoder=config.text_encoder or to_dict(CLIPConfig(vocab_size=256)),
        )
        return super().parameter_bytes(config)

    @classmethod
    def rebuild(cls, config: TextToImageConfig, directory: Path, parts: dict[str, GenerativeModel]) -> TextToImage:
        model = cls(config)  # the parts' weights come with the training state: no fingerprint check yet
        model.clip.tokenizer = load_tokenizer(directory, vocab_size=model.clip.config.vocab_size)
        return model

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, float]:
        torch.manual_seed(EVAL_SEED)  # on the Trainer's forked RNG: the same t, ε and dropout at every evaluation
        x = val.images[:EVAL_IMAGES].to(self.device)
        return {"val_loss": self.loss((x, None, val.captions[:EVAL_IMAGES])).item()}

    def preview(self, path: Path, val: Any, seed: int, *, steps: int = 50, guidance: float = 3.0) -> Path:
        """One row per preview prompt, four samples each."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        prompts = [p for p in PREVIEW_PROMPTS for _ in range(4)]
        images = self.sample(len(prompts), prompts, generator=g, steps=steps, guidance=guidance)
        return write_grid(path, images, 4, self.image_size, fill=64)

    def replace_part(self, name: str, source: GenerativeModel, precision: torch.dtype) -> None:
        """``genlab export --decoder AE``: put the decoder (and critic) of autoencoder ``source`` into the pipeline,
        after checking that its encoder is the one the UNet's latents come from (compared at ``precision``, the
        one this pipeline's weights were saved in)."""
        if name != "decoder":
            super().replace_part(name, source, precision)
        ours, theirs = self.autoencoder.encoder.state_dict(), source.encoder.state_dict()
        differ = [k for k in ours if k not in theirs or ours[k].shape != theirs[k].shape
                  or not torch.equal(ours[k].to(precision), theirs[k].to(ours[k].device, precision))]  # fmt: skip
        if differ:
            raise GenlabError(
                f"--decoder: its encoder is not this model's (first difference: {differ[0]}); fine-tune the "
                "decoder from the model's own autoencoder with --init and --set train_encoder=false"
            )
        for part in ("decoder", "critic"):
            state = getattr(source, part).state_dict()
            load_state_strict(getattr(self.autoencoder, part), state, f"--decoder: its {part} does not fit")
        self.config.autoencoder = to_dict(source.config)

    def __init__(self, config: TextToImageConfig) -> None:
        super().__init__(config)
        if not config.autoencoder or not config.text_encoder:
            raise GenlabError("text2image: train it with --autoencoder DIR and --text-encoder DIR")
        self.autoencoder = Autoencoder(
            from_dict(AutoencoderConfig, config.autoencoder, source="text2image: autoencoder")
        )
        self.clip = CLIP(from_dict(CLIPConfig, config.text_encoder, source="text2image: text_encoder"))
        self.autoencoder.requires_grad_(False)
        self.clip.requires_grad_(False)
        ae = self.autoencoder.config
        self.latent_channels, self.latent_size = ae.z_channels, ae.image_size // ae.factor
        self.unet = UNet(
            in_channels=self.latent_channels,
            base_channels=config.base_channels,
            channel_mult=parse_ints(config.channel_mult, "channel_mult"),
            num_res_blocks=config.num_res_blocks,
            attn_resolutions=parse_ints(config.attn_resolutions, "attn_resolutions"),
            image_size=self.latent_size,
            dropout=config.dropout,
            context_dim=self.clip.config.text_width,
        )

    def train(self, mode: bool = True) -> TextToImage:
        super().train(mode)
        self.autoencoder.eval()  # frozen parts never switch to training behaviour
        self.clip.eval()
        return self

    @property
    def image_size(self) -> int:
        return self.autoencoder.config.image_size

    # --- DiffusionBase's hooks: scaled latents, CLIP text features with the empty prompt as "no prompt" -------
    @property
    def cond_drop(self) -> float:
        return self.config.caption_drop

    @property
    def clip_limit(self) -> float:
        """Sampling clips x̂_0 to ±``x0_clip`` (0 = off).

        At high noise x̂_0 = (z − √(1−ᾱ)ε)/√ᾱ magnifies ε errors by 1/√ᾱ: with the linear schedule (ᾱ_T ≈ 4e-5)
        an ε error of 0.1 moves x̂_0 by about 16 standard deviations, with the scaled-linear one (ᾱ_T ≈ 0.0047)
        by 1.5. Pixel diffusion hides this by clipping x̂_0 to the image range [-1, 1]; scaled latents have no
        hard range, but they have unit variance and almost all lie within ±3 (99% within ±2.9 for the shipped
        autoencoder), so clipping there (static thresholding) keeps early steps on the data's scale. Without it
        a linear-schedule model's samples drift into saturated noise (docs/text2image.md)."""
        return self.config.x0_clip

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.latent_channels, self.latent_size, self.latent_size)

    def network(self, z_t: torch.Tensor, t: torch.Tensor, cond: TextFeatures) -> torch.Tensor:
        return self.unet(z_t, t, context=cond.tokens, context_mask=cond.mask)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_latent(images)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return self.from_latent(x0)

    def training_example(self, batch: tuple) -> tuple[torch.Tensor, list[str]]:
        images, _, captions = batch
        return self.to_latent(images, sample=True), captions

    def training_condition(self, captions: list[str], drop: torch.Tensor) -> TextFeatures:
        return self.text(["" if d else c for d, c in zip(drop.tolist(), captions, strict=True)])

    def null_condition(self, cond: TextFeatures) -> TextFeatures:
        return self.text([""] * cond.tokens.shape[0])

    def text(self, prompts: list[str]) -> TextFeatures:
        with torch.no_grad():
            return self.clip.encode_text(prompts)

    @staticmethod
    def join(a: TextFeatures, b: TextFeatures) -> TextFeatures:
        """Stack two batches of token features, padding the shorter sequence (masked out)."""
        L = max(a.tokens.shape[1], b.tokens.shape[1])

        def pad(f: TextFeatures) -> tuple[torch.Tensor, torch.Tensor]:
            extra = L - f.tokens.shape[1]
            return F.pad(f.tokens, (0, 0, 0, extra)), F.pad(f.mask, (0, extra), value=False)

        (ta, ma), (tb, mb) = pad(a), pad(b)
        return TextFeatures(torch.cat([ta, tb]), torch.cat([ma, mb]), torch.cat([a.pooled, b.pooled]))

    def denoiser_for(
        self, n: int, cond: str | list[str] | None, *, guidance: float = 0.0, negative_prompt: str = ""
    ) -> S.Denoiser:
        """For ``sample`` / ``img2img`` / ``inpaint``: ``cond`` is one prompt or ``n`` (the empty prompt or None:
        the unconditional model); ``negative_prompt`` replaces the empty prompt in the guidance's unconditional
        branch. The ε-function is clipped as :attr:`clip_limit` says."""
        return self.guarded(self.denoiser(self._prompts(n, cond), guidance=guidance, negative=negative_prompt))

    def denoiser(self, prompts: list[str], *, guidance: float = 0.0, negative: str = "") -> S.Denoiser:
        """The guided ε-prediction (classifier-free guidance; ``negative`` replaces the empty prompt)."""
        return self.guided(self.text(prompts), guidance, self.text([negative] * len(prompts)))

    def _prompts(self, n: int, cond: str | list[str] | None) -> list[str]:
        if cond is None or isinstance(cond, str):
            return [cond or ""] * n
        if len(cond) != n:
            raise GenlabError(f"got {len(cond)} prompts for {n} images")
        return list(cond)

    # --- latents ---------------------------------------------------------------------------------
    @torch.no_grad()
    def to_latent(self, images: torch.Tensor, *, sample: bool = False) -> torch.Tensor:
        """Images in [-1, 1] → scaled latents s · E(x)."""
        return self.config.latent_scale * self.autoencoder.encode(images, sample=sample)

    @torch.no_grad()
    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents → images in [0, 1]."""
        return ((self.autoencoder.decode(z / self.config.latent_scale) + 1) / 2).clamp(0, 1)

    # --- generation: sample, img2img and inpaint are DiffusionBase's ------------------------------
    @torch.no_grad()
    def interpolate_prompts(
        self,
        a: str,
        b: str,
        frames: int,
        *,
        generator: torch.Generator | None = None,
        guidance: float = 0.0,
        **sampling: Any,
    ) -> torch.Tensor:
        """One noise, the prompt's token features mixed linearly from ``a`` to ``b`` over ``frames`` images."""
        if frames < 2:
            raise GenlabError(f"--frames {frames}: need at least 2")
        fa, fb = self.text([a]), self.text([b])
        both = self.join(fa, fb)
        lam = torch.linspace(0, 1, frames, device=self.device).view(-1, 1, 1)
        tokens = (1 - lam) * both.tokens[:1] + lam * both.tokens[1:]
        cond = TextFeatures(
            tokens, (both.mask[:1] | both.mask[1:]).expand(frames, -1), both.pooled[:1].expand(frames, -1)
        )
        fn = self.guarded(self.guided(cond, guidance))
        z = self.initial_noise(1, generator).expand(frames, -1, -1, -1).contiguous()
        return self.decode(S.run_sampler(fn, z, self.alphas_cumprod, generator=generator, **sampling))

    # --- the pipeline's parts --------------------------------------------------------------------
    def check_parts(self) -> None:
        """The frozen parts must be the ones the UNet was trained with."""
        for part, expected, name in (
            (self.autoencoder, self.config.autoencoder_fingerprint, "autoencoder"),
            (self.clip, self.config.text_encoder_fingerprint, "text encoder"),
        ):
            got = fingerprint(part)
            if expected and got != expected:
                raise GenlabError(
                    f"the {name} does not belong with this diffusion model: its weights' fingerprint is {got}, "
                    f"the model was trained with {expected}"
                )

    def prepare_export(self, dtype: torch.dtype) -> None:
        """``genlab export`` casts the weights: the parts' fingerprints are those of the weights as saved."""
        self.config.autoencoder_fingerprint = fingerprint(self.autoencoder, dtype)
        self.config.text_encoder_fingerprint = fingerprint(self.clip, dtype)

    def save_extras(self, directory: Path) -> None:
        save_tokenizer(self.clip.tokenizer, directory)

    def load_extras(self, directory: Path) -> None:
        self.clip.tokenizer = load_tokenizer(directory, vocab_size=self.clip.config.vocab_size)
        self.check_parts()
