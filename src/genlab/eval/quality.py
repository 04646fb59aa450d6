"""Pixel-level image quality against a reference: PSNR and SSIM, for images in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def psnr(x: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over the whole batch: 10 log₁₀(1 / MSE)."""
    mse = float(((torch.as_tensor(x, dtype=torch.float64) - torch.as_tensor(ref, dtype=torch.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(x: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004, scikit-image's implementation) over ``N×C×H×W`` images."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.ndim == 3:
        a, b = a[None], b[None]
    win = min(7, a.shape[-1], a.shape[-2])
    win -= 1 - win % 2  # an odd window no larger than the image
    return float(
        np.mean(
            [
                structural_similarity(p, q, data_range=1.0, channel_axis=0, win_size=win)
                for p, q in zip(a, b, strict=True)
            ]
        )
    )
