"""Gated PixelCNN: causal without a blind spot, an exact and normalised likelihood, levels found from the data, and
the commands a user runs (train, eval, generate with a temperature and a class)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from genlab.data.image_data import data_levels, load_image_set
from genlab.models.pixelcnn import PixelCNN, PixelCNNConfig

from .test_cli import one_line_error


def _tiny(**kw) -> PixelCNN:
    torch.manual_seed(0)
    cfg = PixelCNNConfig(**({"image_size": 6, "levels": 5, "width": 8, "layers": 4, "kernel": 3, "head": 16} | kw))
    return PixelCNN(cfg).eval()


def _dependencies(model: PixelCNN, i: int, j: int, y: torch.Tensor | None = None) -> set[tuple[int, int]]:
    """The pixels whose input the logits of pixel (i, j) have a gradient with respect to."""
    s = model.config.image_size
    x = torch.rand(1, model.config.channels, s, s, requires_grad=True)
    v, h = model.stem_v(x), model.stem_h(x)
    for layer in model.layers:
        v, h = layer(v, h, y)
    model.out(h)[0, :, i, j].sum().backward()
    return {tuple(p) for p in (x.grad[0].abs().sum(0) > 0).nonzero().tolist()}


@pytest.mark.parametrize("num_classes", [0, 3])
def test_a_pixel_depends_only_on_the_pixels_before_it_and_on_all_of_them_in_reach(num_classes):
    model = _tiny(num_classes=num_classes, channels=2)
    y = torch.tensor([1]) if num_classes else None
    s = model.config.image_size
    for i, j in itertools.product(range(s), range(s)):
        deps = _dependencies(model, i, j, y)
        assert all((a, b) < (i, j) for a, b in deps), ((i, j), sorted(deps))  # raster order: never itself or later
    # no blind spot: (3, 2) sees the pixel up and to the right that a masked-convolution PixelCNN cannot reach
    deps = _dependencies(model, 3, 2, y)
    assert {(2, 3), (2, 4), (3, 0), (3, 1), (0, 2)} <= deps


def test_the_likelihood_is_exact_it_sums_to_one_over_every_image():
    model = _tiny(image_size=2, levels=3, num_classes=2)
    images = torch.tensor(list(itertools.product(range(3), repeat=4)), dtype=torch.float32).view(-1, 1, 2, 2)
    x = images / 2 * 2 - 1  # levels 0 … 2 → [-1, 1]
    for c in range(2):
        with torch.no_grad():
            total = model.log_prob(x, torch.full((81,), c)).exp().sum()
        assert math.isclose(float(total), 1.0, rel_tol=1e-4), float(total)


def test_levels_come_from_the_data():
    assert data_levels(load_image_set("digits", 8).images) == 17  # 0 … 16
    eight_bit = torch.randint(0, 256, (4, 3, 5, 5)).float() / 255 * 2 - 1
    assert data_levels(eight_bit) == 256
    assert data_levels(torch.tensor([-1.0, 1.0])) == 2


def test_sampling_is_on_the_level_grid_repeatable_and_greedy_at_temperature_zero():
    model = _tiny(num_classes=3)
    a = model.sample(4, 2, generator=torch.Generator().manual_seed(1))
    b = model.sample(4, 2, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 1, 6, 6) and torch.equal(a, b)
    assert torch.allclose(a * 4, (a * 4).round())  # values k / (levels - 1)
    greedy = model.sample(3, torch.tensor([0, 0, 0]), temperature=0)
    assert torch.equal(greedy[0], greedy[1]) and torch.equal(greedy[1], greedy[2])
    with pytest.raises(Exception, match="classes are 0"):
        model.sample(2, 5)


@pytest.mark.slow
def test_train_eval_generate_on_digits(cli, tmp_path):
    out = tmp_path / "pcnn"
    r = cli("train", "image", "--data", "digits", "--model", "pixelcnn", "--steps", "60", "--set", "width=32",
            "--set", "layers=4", "--set", "head=64", "--out", out, "--json")  # fmt: skip
    assert r.code == 0, r
    summary = json.loads(r.out)
    held = summary["held_out"]
    assert held["likelihood"] == "exact" and held["levels"] == 17
    assert held["bits_per_dim"] < 0.75 * held["uniform_bits_per_dim"]  # 4.09 bits for 17 levels
    r = cli("eval", "image", out, "--data", "digits", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["bits_per_dim"] == pytest.approx(held["bits_per_dim"], rel=1e-5)
    r = cli("generate", "image", "--model", out, "--class", "3", "--n", "4", "--temperature", "0.5", "--seed", "0",
            "--out", tmp_path / "threes.png", "--json")  # fmt: skip
    assert r.code == 0, r
    assert (tmp_path / "threes.png").is_file()
    # a sampling option the family does not take is refused, and the diffusion model takes no temperature
    one_line_error(cli("generate", "image", "--model", out, "--steps", "20", "--out", tmp_path / "x.png"), "--steps")
    one_line_error(cli("generate", "image", "--temperature", "0.5", "--out", tmp_path / "y.png"), "--temperature")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_a_conditional_model_asked_for_no_class_draws_one_per_sample():
    model = _tiny(num_classes=3)
    drawn = model.sample_classes(200, None, torch.Generator().manual_seed(0))
    assert drawn.shape == (200,) and set(drawn.tolist()) == {0, 1, 2}  # never the untrained "no class" path
    assert torch.equal(model.sample_classes(4, 2), torch.full((4,), 2))
    assert _tiny().sample_classes(4, None) is None
    with pytest.raises(Exception, match="unconditional"):
        _tiny().sample_classes(4, 1)
