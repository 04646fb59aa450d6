"""Fidelity and coverage of samples as separate figures, and memorisation.

FID mixes two failures into one number: samples that look wrong (fidelity) and parts of the data that are never
drawn (coverage, mode collapse). The k-nearest-neighbour estimates separate them, in a feature space:

- precision and recall (Kynkäänniemi et al. 2019): the real manifold is the union of balls around each real feature
  with radius its distance to its k-th nearest real neighbour; precision is the share of samples inside it, recall
  the share of real images inside the samples' manifold (built the same way);
- density and coverage (Naeem et al. 2020), less swayed by outliers: density counts how many real balls hold each
  sample (divided by k; 1 on average when samples are distributed as the data), coverage is the share of real balls
  that hold at least one sample.

Memorisation: each sample's distance to its nearest training image in pixels, beside the same distance for held-out
real images (which the model never saw): a model that copies its training set has samples far closer than that.
"""

from __future__ import annotations

import numpy as np
import torch

K = 3  # neighbours, as both papers recommend


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest other row."""
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # the 1st is the row itself (distance 0)


def prdc(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = K) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` features against ``real`` (``N×D`` and ``M×D``)."""
    real_t = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    fake_t = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if real_t.shape[0] <= k or fake_t.shape[0] <= k:
        raise ValueError(f"precision/recall need more than k = {k} real and generated images")
    r_real, r_fake = _kth_neighbour_radius(real_t, k), _kth_neighbour_radius(fake_t, k)
    d = torch.cdist(real_t, fake_t)  # N×M
    inside_real = d <= r_real[:, None]  # sample j in the ball of real i
    return {
        "precision": float(inside_real.any(0).double().mean()),
        "recall": float((d <= r_fake[None, :]).any(1).double().mean()),
        "density": float(inside_real.double().sum(0).mean() / k),
        "coverage": float((d.min(1).values <= r_real).double().mean()),
    }


def nearest_train_distance(images: torch.Tensor, train: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """For each image (``N×C×H×W`` in [0, 1]), the root-mean-square pixel distance to its nearest training image."""
    flat_train = train.flatten(1).double()
    out = []
    for i in range(0, images.shape[0], batch):
        d = torch.cdist(images[i : i + batch].flatten(1).double(), flat_train)
        out.append(d.min(1).values / flat_train.shape[1] ** 0.5)
    return torch.cat(out)


def memorisation(samples: torch.Tensor, held_out: torch.Tensor, train: torch.Tensor) -> dict[str, float]:
    """Median nearest-training-image distance of samples and of held-out real images, and the share of samples
    nearer to a training image than 95% of held-out images are (a copy is at 0)."""
    s, h = nearest_train_distance(samples, train), nearest_train_distance(held_out, train)
    floor = float(torch.quantile(h, 0.05))
    return {
        "nearest_train_median": float(s.median()),
        "nearest_train_median_held_out": float(h.median()),
        "closer_than_held_out_5pct": float((s < floor).double().mean()),
    }
