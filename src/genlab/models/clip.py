"""CLIP: a joint text–image space learned contrastively (Radford et al. 2021), and zero-shot classification.

Formulation: an image encoder f and a text encoder g map matching image–caption pairs to nearby unit vectors.
Representation: image tower = a convolutional trunk + linear projection; text tower = a small causal transformer over
byte-level BPE tokens, read at the end-of-text token (as CLIP) + linear projection. The text tower's per-token
outputs are also the token-level features that condition text-to-image diffusion through cross-attention.
Objective (the paper's Figure 3): for a batch of N pairs, logits = exp(t) · f(x_i)·g(y_j), and the symmetric
cross-entropy of matching each image to its caption and each caption to its image; the temperature t is learned.
Inference: zero-shot classification — embed the candidate labels ("a circle", "a star", ...) and pick the one whose
embedding is most similar to the image's (lecture 02: "create dataset classifier from label text").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import (
    CONTEXT,
    DEPTH,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    MULTIPLIER,
    VOCAB,
    WIDTH,
    check_int_list,
    check_ranges,
)
from genlab.data.tokenizers import BPETokenizer, Tokenizer, load_tokenizer, save_tokenizer
from genlab.errors import GenlabError, GenlabWarning
from genlab.models.base import GenerativeModel, TrainingData, TrainOptions
from genlab.models.diffusion import parse_ints
from genlab.models.image import EVAL_IMAGES, ImageModel
from genlab.nn.convnet import ConvTrunk
from genlab.nn.transformer import Block


@dataclass
class CLIPConfig:
    image_size: int = 32
    channels: int = 3  # set from the data
    vocab_size: int = 0  # set from the tokenizer (2 more ids follow: padding and end-of-text)
    base_channels: int = 32
    channel_mult: str = "1,2,2"
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    context_length: int = 32  # tokens, end-of-text included; longer prompts are cut with a warning
    embed_dim: int = 128

    def validate(self) -> None:
        check_ranges(
            self,
            "clip",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "vocab_size": VOCAB,
                "base_channels": WIDTH,
                "text_width": WIDTH,
                "text_layers": DEPTH,
                "text_heads": DEPTH,
                "context_length": CONTEXT,
                "embed_dim": WIDTH,
            },
        )
        check_int_list(parse_ints(self.channel_mult, "channel_mult"), "clip: channel_mult", MULTIPLIER)
        if self.text_width % self.text_heads:
            raise GenlabError("clip: text_width must be a multiple of text_heads")
        if self.context_length < 2:
            raise GenlabError("clip: context_length must be at least 2")


@dataclass
class TextFeatures:
    tokens: torch.Tensor  # B×L×D per-token features (cross-attention context)
    mask: torch.Tensor  # B×L, True for real tokens (the end-of-text token included)
    pooled: torch.Tensor  # B×E unit vectors in the joint space


class CLIP(ImageModel):
    family = "clip"
    no_samples = "it scores image–text pairs"
    modality = "clip"
    Config = CLIPConfig
    presets = {
        "tiny": dict(
            base_channels=32,
            text_width=128,
            text_layers=3,
            embed_dim=128,
            batch_size=128,
            lr=1e-3,
            min_lr=5e-5,
            steps=3000,
            warmup=200,
            weight_decay=0.1,
            eval_every=500,
        ),
        "small": dict(
            base_channels=64,
            text_width=256,
            text_layers=4,
            embed_dim=256,
            batch_size=256,
            lr=5e-4,
            min_lr=2e-5,
            steps=10000,
            warmup=500,
            weight_decay=0.1,
            eval_every=1000,
        ),
        "base": dict(
            base_channels=128,
            channel_mult="1,2,2,2",
            text_width=512,
            text_layers=6,
            text_heads=8,
            embed_dim=512,
            batch_size=512,
            lr=3e-4,
            min_lr=1e-5,
            steps=50000,
            warmup=2000,
            weight_decay=0.1,
            eval_every=5000,
        ),
    }

    needs = "captions"
    fine_tunes = False  # its tokenizer comes with the data

    # --- training hooks: a BPE tokenizer trained on the captions; held-out retrieval and zero-shot accuracy -----
    @classmethod
    def prepare_data(
        cls, source: str, config: Any, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        data = super().prepare_data(source, config, options, parts)
        if options.resume_from is None:
            tok = caption_tokenizer([c for c in data.train.captions or [] if c])
            config.vocab_size = tok.vocab_size
            data.cache["tokenizer"] = tok
        return data

    @classmethod
    def build(cls, config: Any, data: TrainingData, parts: dict[str, GenerativeModel]) -> CLIP:
        config.validate()
        return cls(config, data.cache["tokenizer"])

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, float]:
        """Held-out image→caption retrieval accuracy among 128 candidates, and zero-shot accuracy on the class
        names."""
        n = min(len(val), 128)
        img = self.encode_image(val.images[:n].to(self.device))
        txt = self.encode_text(val.captions[:n]).pooled
        hits = (img @ txt.T).argmax(-1).tolist()  # a duplicate caption counts as a hit
        out = {"val_retrieval_top1": sum(val.captions[h] == val.captions[i] for i, h in enumerate(hits)) / n}
        if val.labels is not None and val.class_names:
            probs = self.zero_shot((val.images[:EVAL_IMAGES] + 1) / 2, [f"a {c}" for c in val.class_names])
            out["val_zero_shot_accuracy"] = (probs.argmax(-1) == val.labels[:EVAL_IMAGES]).float().mean().item()
        return out

    def __init__(self, config: CLIPConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(config)
        config.validate()
        c = config
        if c.vocab_size < 1:
            raise GenlabError("clip: vocab_size must be set (it comes from the tokenizer)")
        self.tokenizer = tokenizer
        self.image_trunk = ConvTrunk(
            in_channels=c.channels,
            base_channels=c.base_channels,
            channel_mult=parse_ints(c.channel_mult, "channel_mult"),
        )
        self.image_proj = nn.Linear(self.image_trunk.feature_dim, c.embed_dim, bias=False)
        self.token_emb = nn.Embedding(c.vocab_size + 2, c.text_width)
        self.pos_emb = nn.Parameter(torch.randn(c.context_length, c.text_width) * 0.01)
        self.blocks = nn.ModuleList(Block(n_embd=c.text_width, n_head=c.text_heads) for _ in range(c.text_layers))
        self.ln_final = nn.LayerNorm(c.text_width)
        self.text_proj = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def pad_id(self) -> int:
        return self.config.vocab_size

    @property
    def eot_id(self) -> int:
        return self.config.vocab_size + 1

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts → ids ``B×L`` (tokens, end-of-text, padding) and their lengths ``B``; an empty prompt is just
        the end-of-text token. Prompts longer than ``context_length`` are cut, with a warning."""
        if self.tokenizer is None:
            raise GenlabError("clip: no tokenizer attached")
        L = self.config.context_length
        rows = []
        for p in prompts:
            ids = self.tokenizer.encode(p) if p else []
            if len(ids) > L - 1:
                warnings.warn(
                    f"the prompt has {len(ids)} tokens; keeping the first {L - 1}: {p[:60]!r}…", GenlabWarning, 2
                )
                ids = ids[: L - 1]
            rows.append(ids + [self.eot_id])
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return out.to(self.device), torch.tensor([len(r) for r in rows], device=self.device)

    def encode_text(self, prompts: list[str]) -> TextFeatures:
        ids, lengths = self.tokenize(prompts)
        x = self.token_emb(ids) + self.pos_emb[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)  # causal: the end-of-text token has seen the whole prompt, padding sees nothing after it
        x = self.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), lengths - 1]
        mask = torch.arange(ids.shape[1], device=x.device)[None] < lengths[:, None]
        return TextFeatures(x, mask, F.normalize(self.text_proj(eot), dim=-1))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``B×C×H×W`` in [-1, 1] → ``B×E`` unit vectors."""
        return F.normalize(self.image_proj(self.image_trunk(images)[0]), dim=-1)

    def loss(self, batch: tuple) -> torch.Tensor:
        images, _, captions = batch
        img = self.encode_image(images)
        txt = self.encode_text(list(captions)).pooled
        logits = self.logit_scale.clamp(max=math.log(100)).exp() * img @ txt.T
        target = torch.arange(len(captions), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    @torch.no_grad()
    def zero_shot(self, images01: torch.Tensor, labels: list[str]) -> torch.Tensor:
        """Probabilities ``B×K`` of each label for each image (in [0, 1]): softmax of scaled cosine similarities."""
        if len(labels) < 2:
            raise GenlabError("--labels: give at least two labels, separated by commas")
        img = self.encode_image(images01.to(self.device) * 2 - 1)
        txt = self.encode_text(labels).pooled
        return (self.logit_scale.exp() * img @ txt.T).softmax(-1).cpu()

    def save_extras(self, directory: Path) -> None:
        save_tokenizer(self.tokenizer, directory)

    def load_extras(self, directory: Path) -> None:
        self.tokenizer = load_tokenizer(directory, vocab_size=self.config.vocab_size)


def caption_tokenizer(captions: list[str], vocab_size: int = 512) -> Tokenizer:
    """Byte-level BPE trained on the captions: whole words become single tokens, any prompt stays encodable."""
    return BPETokenizer.train("\n".join(c for c in captions if c), vocab_size)
