"""Promptable segmentation in the Segment-Anything style (Kirillov et al. 2023), trained from scratch.

Formulation: x is a mask, y an image plus a prompt — foreground/background points, a box, a previous mask. The model
gives p(mask | image, prompt) pixel by pixel (sigmoid of the logits) and, for an ambiguous prompt, three candidate
masks (whole, part, subpart) with a predicted IoU each.
Representation: :class:`~genlab.nn.sam.image_encoder.ImageEncoder` (run once per image),
:class:`~genlab.nn.sam.prompt_encoder.PromptEncoder`, :class:`~genlab.nn.sam.mask_decoder.MaskDecoder` (a
two-way transformer, upsampling to the image's side, hypernetwork heads, an IoU head).
Objective: a simulated interactive session per target mask (clicks in the error region, the previous answer fed
back), focal + Dice mask losses and an MSE on the predicted IoU (:mod:`genlab.nn.sam.session`; SAM §3, appendix A).
Inference: :class:`genlab.segment.predictor.SegmentPredictor` and the automatic mask generator.

Symbols: S image side, h = S / stride the embedding side, m = ``mask_upscale``·h the side of the mask logits (SAM's
4h by default; S with ``mask_upscale`` = stride), P prompts (masks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from genlab.config import (
    DEPTH,
    FRACTION,
    IMAGE_SIZE,
    NONNEGATIVE,
    WIDTH,
    Range,
    check_int_list,
    check_ranges,
)
from genlab.data.masks import MaskBatches, mask_sources
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel, TrainingData, TrainOptions
from genlab.models.diffusion import parse_ints
from genlab.nn.sam.image_encoder import ImageEncoder, ImageFeatures
from genlab.nn.sam.mask_decoder import NUM_MULTIMASK, MaskDecoder
from genlab.nn.sam.prompt_encoder import PromptEncoder
from genlab.nn.sam.session import session_loss
from genlab.nn.sam.transformer import TwoWayTransformer

VAL_SCENES = 200  # held-out generated images for the evaluation while training (about 700 object and part masks)


@dataclass
class SamConfig:
    image_size: int = 64  # the model's input side; the predictor resizes any image to it
    stage_channels: str = "32,64"  # convolution stages (each halves the resolution)
    encoder_dim: int = 128
    encoder_depth: int = 4
    encoder_heads: int = 4
    prompt_dim: int = 128  # width of the embedding, the prompt tokens and the decoder (SAM: 256)
    decoder_depth: int = 2
    decoder_heads: int = 4
    decoder_mlp: int = 512
    mask_in_chans: int = 16
    # the mask logits' side over the embedding's: 4 is SAM's (a quarter of the input side, upsampled bilinearly);
    # the stride (8 for two stages; presets tiny and small) draws masks at the image's own resolution, with a
    # full-resolution skip map (docs/segment.md, "Masks at full resolution")
    mask_upscale: int = 4
    # data and the simulated interactive training
    max_objects: int = 4  # generated data: objects per image
    part_prob: float = 0.5  # generated data: chance that an object holds a part
    masks_per_image: int = 4  # target masks trained per image and step (the encoder runs once for all)
    rounds: int = 8  # decoder calls per target: first prompt, clicks, a last round without a new point (SAM: 11)
    every_round_loss: bool = False  # True: SAM's loss on every round; False: the first round and one random later one
    box_prob: float = 0.5  # chance that the first prompt is a box rather than a point
    box_noise: float = 0.1  # box corner noise, a fraction of the box side (SAM: 0.1)
    distractor_prob: float = 0.0  # chance that a later click is a negative one on background already left out
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    # where mask losses are taken: "full" upsamples the m×m logits to S×S (as inference does; SAM 2's training),
    # "low" pools the targets to m×m (4× fewer pixels, but a part a few pixels wide cannot be drawn exactly)
    loss_resolution: str = "full"
    augment: bool = True
    # 0: the IoU token scores the masks (SAM); > 0: a mask-quality head of this width that sees the mask it scores
    # (genlab.nn.sam.quality) does, and its output is the predicted IoU
    quality_width: int = 0

    @property
    def stride(self) -> int:
        return 2 ** (len(parse_ints(self.stage_channels, "stage_channels")) + 1)

    def validate(self) -> None:
        check_ranges(
            self,
            "sam",
            {
                "image_size": IMAGE_SIZE,
                "encoder_dim": WIDTH,
                "encoder_depth": DEPTH,
                "encoder_heads": DEPTH,
                "prompt_dim": WIDTH,
                "decoder_depth": DEPTH,
                "decoder_heads": DEPTH,
                "decoder_mlp": Range(1, 65536),
                "mask_in_chans": Range(1, 1024),
                "mask_upscale": Range(1, 1024),
                "max_objects": Range(1, 256),
                "part_prob": FRACTION,
                "masks_per_image": Range(1, 1024),
                "rounds": Range(1, 1024),
                "box_prob": FRACTION,
                "box_noise": FRACTION,
                "distractor_prob": FRACTION,
                "focal_weight": NONNEGATIVE,
                "dice_weight": NONNEGATIVE,
                "iou_weight": NONNEGATIVE,
                "quality_width": Range(0, 4096),
            },
        )
        stages = parse_ints(self.stage_channels, "stage_channels")
        check_int_list(stages, "sam: stage_channels", WIDTH)
        if len(stages) < 2 or min(stages) < 1:
            raise GenlabError("sam: stage_channels needs at least two positive widths, e.g. 32,64")
        if self.image_size < self.stride or self.image_size % self.stride:
            raise GenlabError(f"--size {self.image_size}: must be a multiple of the encoder stride {self.stride}")
        if self.prompt_dim % 16 or self.prompt_dim % (2 * self.decoder_heads):
            raise GenlabError(f"sam: prompt_dim={self.prompt_dim} must be a multiple of 16 and of 2 × decoder_heads")
        if self.encoder_dim % self.encoder_heads:
            raise GenlabError(f"sam: encoder_dim={self.encoder_dim} must be a multiple of encoder_heads")
        if self.mask_upscale < 4 or self.mask_upscale & (self.mask_upscale - 1) or self.mask_upscale > self.stride:
            raise GenlabError(
                f"sam: mask_upscale={self.mask_upscale} must be a power of 2 from 4 to the encoder stride {self.stride}"
            )
        if self.mask_in_chans % 4 or self.mask_in_chans < 4:
            raise GenlabError("sam: mask_in_chans must be a positive multiple of 4")
        if self.loss_resolution not in ("full", "low"):
            raise GenlabError(f"sam: loss_resolution={self.loss_resolution!r}; choose full or low")


class SamModel(GenerativeModel):
    family = "sam"
    no_samples = "it answers prompts; use genlab.SegmentPredictor or `genlab segment`"
    modality = "segment"
    fine_tunes = True  # --init: e.g. add a quality head to a trained model (the head starts untrained)
    Config = SamConfig
    trains_on = "segment"
    data_help = "shapes, blobs, scenes (the data engine), a mixture (scenes,shapes) or a folder with images/ and masks/"
    unit = "img"
    presets = {
        # 64×64 scenes on a 2-core CPU in about an hour and a half (docs/segment.md; the shipped sam-scenes: two runs)
        "tiny": dict(
            mask_upscale=8,  # masks at the image's side (docs/segment.md, "Masks at full resolution")
            steps=6000,
            batch_size=16,
            masks_per_image=4,
            rounds=8,
            lr=1e-3,
            min_lr=5e-5,
            warmup=200,
            weight_decay=0.05,
            eval_every=1000,
            eval_batches=8,
            ckpt_every=500,
        ),
        # a wider encoder and the full 8-round sessions: a GPU (8.2 s a step on 2 CPU cores: ~46 hours)
        "small": dict(
            image_size=64,
            stage_channels="32,64",
            encoder_dim=192,
            encoder_depth=6,
            encoder_heads=6,
            prompt_dim=160,
            decoder_mlp=640,
            mask_upscale=8,
            steps=20000,
            batch_size=32,
            masks_per_image=8,
            rounds=8,
            every_round_loss=True,
            lr=8e-4,
            min_lr=4e-5,
            warmup=500,
            weight_decay=0.1,
            eval_every=2000,
            eval_batches=16,
            ckpt_every=1000,
        ),
        # 128×128, SAM's widths in the decoder and SAM's 4× masks (32×32 logits, resized): a GPU
        "base": dict(
            image_size=128,
            stage_channels="32,64,128",
            encoder_dim=256,
            encoder_depth=8,
            encoder_heads=8,
            prompt_dim=256,
            decoder_heads=8,
            decoder_mlp=2048,
            max_objects=6,
            steps=60000,
            batch_size=64,
            masks_per_image=16,
            rounds=11,
            every_round_loss=True,
            lr=8e-4,
            min_lr=4e-5,
            warmup=1000,
            weight_decay=0.1,
            eval_every=5000,
            eval_batches=32,
            ckpt_every=2500,
        ),
    }

    def __init__(self, config: SamConfig) -> None:
        super().__init__(config)
        config.validate()
        c = config
        stages = parse_ints(c.stage_channels, "stage_channels")
        self.image_encoder = ImageEncoder(
            image_size=c.image_size,
            stage_channels=stages,
            dim=c.encoder_dim,
            depth=c.encoder_depth,
            heads=c.encoder_heads,
            out_dim=c.prompt_dim,
            stem_channels=c.prompt_dim // 8 if c.mask_upscale == c.stride else 0,  # a stride-1 skip map
        )
        self.prompt_encoder = PromptEncoder(
            embed_dim=c.prompt_dim,
            embedding_size=c.image_size // c.stride,
            input_size=c.image_size,
            mask_in_chans=c.mask_in_chans,
            mask_upscale=c.mask_upscale,
        )
        transformer = TwoWayTransformer(
            depth=c.decoder_depth, embedding_dim=c.prompt_dim, num_heads=c.decoder_heads, mlp_dim=c.decoder_mlp
        )
        self.mask_decoder = MaskDecoder(
            transformer_dim=c.prompt_dim,
            transformer=transformer,
            skip_channels=tuple(self.image_encoder.high_res_channels),
            upscale=c.mask_upscale,
        )
        self.quality = None
        if c.quality_width:
            from genlab.nn.sam.quality import MaskQualityHead

            skip = c.prompt_dim // 4  # the projected stride-4 map (MaskDecoder.skip_coarse)
            self.quality = MaskQualityHead(embed_dim=c.prompt_dim, skip_dim=skip, width=c.quality_width)

    def init_from(self, source: GenerativeModel) -> None:
        """``--init``: every weight of ``source``; a quality head it lacks starts from its initialisation."""
        state = {k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()}
        if self.quality is not None and not any(k.startswith("quality.") for k in state):
            state |= {k: v.detach().clone() for k, v in self.state_dict().items() if k.startswith("quality.")}
        self.init_from_state(state)

    @property
    def mask_size(self) -> int:
        """Side m of the low-resolution logits (and of a mask prompt)."""
        return self.prompt_encoder.mask_input_size

    # --- inference building blocks -----------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> ImageFeatures:
        """``B×3×S×S`` images in [0, 1] → the features every prompt on them reuses (skips already projected)."""
        return self.mask_decoder.project_skips(self.image_encoder(images))

    def decode(
        self,
        features: ImageFeatures,
        image_index: torch.Tensor | None,
        *,
        coords: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Answer ``P`` prompts on encoded images: prompt p is on image ``image_index[p]`` (``None``: the features
        already hold one row per prompt).

        coords ``P×N×2`` (model frame, see :mod:`~genlab.nn.sam.prompt_encoder`) with labels ``P×N``; boxes ``P×4``
        (NaN rows: none); mask_input ``P×1×m×m`` logits. Returns (logits ``P×K×m×m``, predicted IoU ``P×K``) with
        K = 3 (``multimask``), 1 (the single-mask token), or all 4 (``multimask=None``: token 0 first).
        """
        count = len(image_index) if image_index is not None else features.embedding.shape[0]
        sparse, dense = self.prompt_encoder(coords, labels, boxes, mask_input, count=count)
        if image_index is not None:
            features = features.select(image_index)
        logits, iou = self.mask_decoder(features, self.prompt_encoder.dense_pe(), sparse, dense)
        if self.quality is not None:
            iou = self.quality(features, logits.detach())
        if multimask is None:
            return logits, iou
        keep = slice(1, 1 + NUM_MULTIMASK) if multimask else slice(0, 1)
        return logits[:, keep], iou[:, keep]

    def upsample(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``P×K×m×m`` → ``P×K×S×S`` (bilinear, as SAM's postprocessing; unchanged when m = S)."""
        s = self.config.image_size
        if logits.shape[-1] == s:
            return logits  # drawn at full resolution already (mask_upscale = stride)
        return F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False)

    # --- the objective: one simulated interactive session per target mask (genlab.nn.sam.session) ----------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return session_loss(self, batch)

    # --- training hooks: masks from a generator or a folder; held-out mIoU for clicks and boxes --------------
    @classmethod
    def prepare_data(
        cls, source: str, config: SamConfig, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        train, val = mask_sources(
            source,
            size=config.image_size,
            val_count=VAL_SCENES,
            val_fraction=cls.val_fraction if options.val_fraction is None else options.val_fraction,
            seed=options.seed,
            strict=options.strict,
            max_pixels=options.max_pixels,
            max_objects=config.max_objects,
            part_prob=config.part_prob,
        )
        held = sum(len(s.masks) for s in val.samples or [])
        size = "an endless stream" if train.endless else f"{len(train)} images"
        side = f"{config.image_size}×{config.image_size}"
        describe = f"{source} at {side}, {size} for training; {len(val)} held out ({held} masks)"
        return TrainingData(train, val, describe, size=config.image_size)

    def batches(self, data: TrainingData, *, batch_size: int, seed: int, rank: int) -> Callable[[int], Any]:
        c = self.config
        return MaskBatches(
            data.train, batch_size=batch_size, masks_per_image=c.masks_per_image, seed=seed, rank=rank,
            augmentation=c.augment,
        )  # fmt: skip

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """Held-out mIoU after one click, three clicks and a box (SAM's interactive protocol)."""
        from genlab.eval.segment import evaluate_prompts

        if not len(val):
            return {}
        figures = evaluate_prompts(self, val.samples, clicks=(1, 3), batch_size=128)
        return {k: v for k, v in figures.items() if k != "masks"}
