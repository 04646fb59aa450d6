"""``genlab edit style``: neural style transfer (Gatys et al. 2016) — the Gram matrix, the optimization, the CLI and
its bad inputs."""

import json

import numpy as np
import pytest
import torch

import genlab.edit.style as style_mod
import genlab.eval.fid as fid_mod
from genlab.data.images import bundled_image, write_image
from genlab.edit.style import InceptionLayers, StyleConfig, gram, resized_shape, style_transfer, to_tensor

from .test_cli import one_line_error


def crop(name: str, side: int) -> np.ndarray:
    """A ``side×side`` RGB view of a bundled photo (every fourth pixel, top-left)."""
    img = bundled_image(name)
    img = img if img.ndim == 3 else np.repeat(img[..., None], 3, 2)
    return np.ascontiguousarray(img[::4, ::4][:side, :side])


@pytest.fixture(scope="module")
def net() -> InceptionLayers:
    return InceptionLayers("cpu")


@pytest.fixture
def images(tmp_path):
    """content.png (a 64×64 view of chelsea) and style.png (64×64 of coffee), in the returned folder."""
    write_image(tmp_path / "content.png", crop("chelsea", 64))
    write_image(tmp_path / "style.png", crop("coffee", 64))
    return tmp_path


def test_gram_of_a_known_tensor():
    """F = [[1, 2], [3, 4]] (2 channels, 1×2 positions): F Fᵀ = [[5, 11], [11, 25]], divided by C·H·W = 4."""
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    assert torch.allclose(gram(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)
    g = gram(torch.randn(2, 5, 3, 4))  # symmetric, one matrix per image, size-independent scale
    assert g.shape == (2, 5, 5) and torch.allclose(g, g.transpose(1, 2))
    ones = gram(torch.ones(1, 3, 7, 9))
    assert torch.allclose(ones, torch.full((1, 3, 3), 1 / 3))


def test_resized_shape_keeps_the_aspect_ratio():
    assert resized_shape(300, 451, 256) == (170, 256)
    assert resized_shape(512, 512, 256) == (256, 256)
    assert resized_shape(40, 20, 80) == (80, 40)


def test_network_is_frozen_and_reads_the_layers_asked_for(net):
    x = torch.rand(1, 3, 64, 64)
    feats = net(x, ["conv_1", "mixed"])
    assert set(feats) == {"conv_1", "mixed"} and feats["conv_1"].shape[1] == 32 and feats["mixed"].shape[1] == 256
    assert not any(f.requires_grad for f in feats.values())


def test_optimization_lowers_the_style_loss_and_keeps_the_content(net):
    """30 steps on 64×64 images: the style loss falls far below the content photo's own, and the content loss stays
    small next to that of an image with nothing of the photo in it (the style image itself). At 64×64 the style
    weighs more than at 256×256 (fewer positions per Gram entry), hence a style weight below the default."""
    content, style = crop("chelsea", 64), crop("coffee", 64)
    cfg = StyleConfig(steps=30, style_weight=30)
    result = style_transfer(content, style, cfg, size=64, net=net, log_every=10)
    assert result.image.shape == (64, 64, 3) and result.image.dtype == np.float32
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert result.content_loss_start == 0 and result.style_loss_start > 0
    assert result.style_loss < 0.2 * result.style_loss_start, result
    with torch.no_grad():
        photo, other = (net(style_mod._view(to_tensor(im), cfg), [cfg.content_layer])[cfg.content_layer]
                        for im in (content, style))  # fmt: skip
        unrelated = float(torch.nn.functional.mse_loss(other, photo))
    assert result.content_loss < 0.25 * unrelated, (result.content_loss, unrelated)
    assert [h["step"] for h in result.history] == [1, 10, 20, 30]
    again = style_transfer(content, style, cfg, size=64, net=net, log_every=10)  # deterministic
    assert np.array_equal(again.image, result.image)
    bolder = style_transfer(content, style, StyleConfig(steps=30, style_weight=1e3), size=64, net=net)
    assert bolder.style_loss < result.style_loss and bolder.content_loss > result.content_loss  # the weights' balance


def test_adam_and_noise_start_also_lower_the_style_loss(net):
    content, style = crop("chelsea", 64), crop("coffee", 64)
    adam = style_transfer(content, style, StyleConfig(steps=20, optimizer="adam"), size=64, net=net)
    assert adam.style_loss < 0.5 * adam.style_loss_start
    noise = StyleConfig(steps=20, init="noise", content_weight=0, seed=3)
    texture = style_transfer(content, style, noise, size=64, net=net)
    assert texture.style_loss < 0.5 * texture.style_loss_start
    assert np.array_equal(texture.image, style_transfer(content, style, noise, size=64, net=net).image)  # same seed
    other_seed = StyleConfig(steps=1, init="noise", content_weight=0, seed=4)
    assert not np.array_equal(texture.image, style_transfer(content, style, other_seed, size=64, net=net).image)


def test_cli_writes_the_image_and_reports_the_losses(cli, images):
    d = images
    threads = torch.get_num_threads()
    r = cli("edit", "style", "--content", d / "content.png", "--style", d / "style.png", "--size", "64", "--steps",
            "3", "--threads", "2", "--json", "--quiet", "--out", d / "out.png")  # fmt: skip
    assert r.code == 0, r
    assert torch.get_num_threads() == threads  # --threads is set for the run and restored
    figures = json.loads(r.out)
    assert (d / "out.png").exists() and (figures["width"], figures["height"]) == (64, 64)
    assert figures["steps"] == 3 and figures["content_loss_start"] == 0
    for key in ("seconds", "content_loss", "style_loss", "style_loss_start"):
        assert figures[key] >= 0, key


def test_help_teaches_the_method(cli):
    r = cli("edit", "style", "--help")
    assert r.code == 0
    for needle in ("Gatys", "2016", "Gram", "examples:", "genlab edit style --content", "--style-weight", "--size"):
        assert needle in r.out, needle
    assert "genlab edit style" in cli("edit", "--help").out


# --- bad input: one line, exit 2, nothing written ------------------------------------------------------------
def test_a_style_file_that_is_not_an_image_is_one_line(cli, images):
    d = images
    (d / "bad.png").write_text("this is text, not a picture\n", encoding="utf-8")
    r = cli("edit", "style", "--content", d / "content.png", "--style", d / "bad.png", "--out", d / "out.png")
    one_line_error(r, "bad.png", "not a readable image")
    assert not (d / "out.png").exists()


def test_a_content_image_over_max_pixels_is_one_line(cli, images):
    d = images
    r = cli("edit", "style", "--content", d / "content.png", "--style", d / "style.png", "--max-pixels", "1000",
            "--out", d / "out.png")  # fmt: skip
    one_line_error(r, "content.png", "--max-pixels 1,000")
    assert not (d / "out.png").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--steps", "0", "argument --steps: 0 is out of range: must be ≥ 1"),
        ("--steps", "-5", "argument --steps: -5 is out of range: must be ≥ 1"),
        ("--style-weight", "-1", "argument --style-weight: -1 is out of range: must be ≥ 0"),
        ("--content-weight", "-0.5", "argument --content-weight: -0.5 is out of range: must be ≥ 0"),
        ("--style-weight", "nan", "argument --style-weight: 'nan' is not a finite number"),
        ("--size", "32", "argument --size: 32 is out of range: must be ≥ 64"),
    ],
)
def test_bad_numbers_are_refused_at_parse_time(cli, images, option, value, message):
    d = images
    r = cli("edit", "style", "--content", d / "content.png", "--style", d / "style.png", option, value, "--out",
            d / "out.png")  # fmt: skip
    one_line_error(r, message)
    assert not (d / "out.png").exists()


def test_both_weights_zero_is_refused(cli, images):
    d = images
    r = cli("edit", "style", "--content", d / "content.png", "--style", d / "style.png", "--content-weight", "0",
            "--style-weight", "0", "--out", d / "out.png")  # fmt: skip
    one_line_error(r, "--content-weight", "--style-weight", "both 0")
    assert not (d / "out.png").exists()


def test_an_image_too_thin_for_the_network_is_one_line(cli, images):
    d = images
    write_image(d / "strip.png", np.full((20, 200, 3), 0.5, np.float32))  # 200×20 → 256×26 at --size 256
    r = cli("edit", "style", "--content", d / "strip.png", "--style", d / "style.png", "--out", d / "out.png")
    one_line_error(r, "--content", "256×26", "at least 64")
    assert not (d / "out.png").exists()


def test_without_the_fid_extra_the_error_names_it(cli, images, monkeypatch):
    d = images
    monkeypatch.setattr(fid_mod, "inception_weights", lambda: None)
    r = cli("edit", "style", "--content", d / "content.png", "--style", d / "style.png", "--size", "64", "--out",
            d / "out.png")  # fmt: skip
    one_line_error(r, 'style transfer needs the optional extra: pip install "genlab[fid]"')
    assert not (d / "out.png").exists()


def test_long_runs_are_announced_before_they_start(cli, images, monkeypatch):
    """The estimate comes from a measured constant: a small run is quiet, the same run priced high is announced."""
    d = images
    command = ["edit", "style", "--content", d / "content.png", "--style", d / "style.png", "--size", "64", "--steps",
               "2", "--quiet", "--out", d / "out.png"]  # fmt: skip
    r = cli(*command)
    assert r.code == 0 and "will take about" not in r.err, r
    monkeypatch.setattr(style_mod, "STEP_SECONDS_PER_MEGAPIXEL", 1e6)
    r = cli(*command)
    announced = [ln for ln in r.err.splitlines() if "will take about" in ln]
    assert r.code == 0 and len(announced) == 1 and "--steps or --size" in announced[0], r
