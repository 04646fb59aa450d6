"""Editing with a text-to-image diffusion model: img2img (SDEdit) and prompt-driven inpainting (RePaint).

The model works at its training size (e.g. 32×32): a photo is resized to it, edited, and the result brought back to
the photo's size. Inpainting then keeps every known pixel of the photo exactly and replaces only the hole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def to_model_size(image: np.ndarray, size: int, channels: int = 3) -> torch.Tensor:
    """``H×W×3`` in [0, 1] → ``1×channels×size×size`` (antialiased resize; one channel: the mean of the three)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    x = x.mean(1, keepdim=True) if channels == 1 else x
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def _to_photo(x: torch.Tensor, h: int, w: int) -> np.ndarray:
    """``1×3×s×s`` → ``h×w×3`` in [0, 1]."""
    out = F.interpolate(x.float().cpu(), size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return out[0].permute(1, 2, 0).numpy()


def img2img(model: Any, image: np.ndarray, prompt: str, *, strength: float, **controls: Any) -> np.ndarray:
    """SDEdit on a photo: strength 0 returns it unchanged, 1 draws the prompt from scratch."""
    if not 0.0 <= strength <= 1.0:
        model.img2img(torch.zeros(1, 3, 1, 1), prompt, strength=strength)  # raises the one clear error
    if strength == 0:
        return image.copy()
    h, w = image.shape[:2]
    out = model.img2img(to_model_size(image, model.image_size), prompt, strength=strength, **controls)
    return _to_photo(out, h, w)


def inpaint(model: Any, image: np.ndarray, hole: np.ndarray, prompt: str, **controls: Any) -> np.ndarray:
    """Fill ``hole`` (``H×W`` bool) from the prompt; every pixel outside it is returned exactly as given."""
    h, w = image.shape[:2]
    x = to_model_size(image, model.image_size)
    m = torch.from_numpy(hole.astype(np.float32))[None, None]
    m_small = F.interpolate(m, size=x.shape[-2:], mode="area").gt(0).float()  # any part of a hole pixel: generate
    filled = _to_photo(model.inpaint(x, m_small, prompt, **controls), h, w)
    return np.where(hole[..., None], filled, image).astype(np.float32)
