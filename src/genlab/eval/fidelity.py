"""Image fidelity: PSNR and SSIM, over a whole image or inside a mask (e.g. an inpainted hole)."""

from __future__ import annotations

import numpy as np

from genlab.errors import GenlabError


def _check(x: np.ndarray, ref: np.ndarray) -> None:
    if x.shape != ref.shape:
        raise GenlabError(f"the reference is {ref.shape[1]}×{ref.shape[0]} but the output is {x.shape[1]}×{x.shape[0]}")


def psnr(x: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB of ``x`` against ``ref`` (same shape, values in [0, 1]).

    ``mask`` (``H×W`` bool): only those pixels count. Identical images give ``inf``.
    """
    _check(x, ref)
    diff = (np.asarray(x, np.float64) - np.asarray(ref, np.float64)) ** 2
    if mask is not None:
        diff = diff[mask]
    mse = float(diff.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(x: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity (Wang et al. 2004; 7×7 windows, scikit-image) of ``x`` against ``ref``.

    ``mask``: the mean of the SSIM map over those pixels only.
    """
    from skimage.metrics import structural_similarity

    _check(x, ref)
    channel_axis = -1 if x.ndim == 3 else None
    _, full = structural_similarity(x, ref, data_range=1.0, channel_axis=channel_axis, full=True)
    full = full.mean(-1) if full.ndim == 3 else full
    return float(full[mask].mean() if mask is not None else full.mean())


def batch_ssim(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean SSIM over a batch ``N×C×H×W`` (values in [0, 1]); images smaller than the 7×7 window use the
    largest odd window that fits."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    _check(a, b)
    win = min(7, a.shape[-1], a.shape[-2])
    win -= 1 - win % 2
    return float(
        np.mean(
            [
                structural_similarity(p, q, data_range=1.0, channel_axis=0, win_size=win)
                for p, q in zip(a, b, strict=True)
            ]
        )
    )
