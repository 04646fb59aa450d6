"""Small SAM-style models and scenes shared by the segmentation tests."""

from __future__ import annotations

import numpy as np

# A model small enough to train a few steps in a second: 32×32 inputs, a 4×4 embedding.
TINY_SAM = {
    "image_size": 32,
    "stage_channels": "8,16",
    "encoder_dim": 32,
    "encoder_depth": 1,
    "encoder_heads": 2,
    "prompt_dim": 32,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "decoder_mlp": 64,
    "mask_in_chans": 8,
    "masks_per_image": 2,
    "rounds": 3,
}


def tiny_sam(**overrides):
    import torch

    from genlab.models.sam import SamConfig, SamModel

    torch.manual_seed(0)
    return SamModel(SamConfig(**(TINY_SAM | overrides))).eval()


def one_object_scene(seed: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A held-out shapes scene with a single object and no part → (image, mask)."""
    from genlab.data.shapes import make_scene

    for index in range(1000):
        s = make_scene(9000 + seed, index, size=size, max_objects=1, part_prob=0.0)
        if s.objects[0].size != "small":
            return s.image, s.objects[0].mask
    raise AssertionError("no scene")
