"""Precision, recall, density and coverage tell fidelity from coverage; memorisation spots copies."""

from __future__ import annotations

import pytest
import torch

from genlab.eval.manifold import memorisation, prdc


def _clusters(n: int, centres: list[float], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    parts = [torch.randn(n, 8, generator=g) * 0.3 + c for c in centres]
    return torch.cat(parts)


def test_the_same_distribution_scores_near_one_and_a_distant_one_zero():
    real, fake = _clusters(200, [0.0], 0), _clusters(200, [0.0], 1)
    same = prdc(real, fake)
    assert same["precision"] > 0.75 and same["recall"] > 0.75 and same["coverage"] > 0.75  # k-NN: biased low
    assert 0.7 < same["density"] < 1.3
    far = prdc(real, fake + 10)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_mode_collapse_keeps_precision_and_loses_recall_and_coverage():
    real = _clusters(200, [0.0, 5.0], 0)  # two modes
    collapsed = _clusters(400, [0.0], 1)  # every sample in the first
    m = prdc(real, collapsed)
    assert m["precision"] > 0.75
    assert 0.35 < m["recall"] <= 0.55 and 0.35 < m["coverage"] <= 0.55  # at most the first mode's half


def test_too_few_images_are_refused():
    with pytest.raises(ValueError, match="more than k"):
        prdc(torch.zeros(3, 2), torch.zeros(10, 2))


def test_copies_of_training_images_are_flagged_as_memorised():
    g = torch.Generator().manual_seed(0)
    train, held_out = torch.rand(100, 1, 8, 8, generator=g), torch.rand(200, 1, 8, 8, generator=g)
    copied = memorisation(train[:20], held_out, train)
    assert copied["nearest_train_median"] == 0.0 and copied["closer_than_held_out_5pct"] == 1.0
    fresh = memorisation(torch.rand(200, 1, 8, 8, generator=g), held_out, train)  # as new as the held-out images
    assert fresh["nearest_train_median"] > 0.2 and fresh["closer_than_held_out_5pct"] < 0.15  # about 5%
