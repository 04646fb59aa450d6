import json

import numpy as np
import pytest
from PIL import Image

from genlab.segment.formats import decode_rle

from .segment_helpers import TINY_SAM
from .test_cli import one_line_error


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A held-out shapes scene saved as RGB, grey and RGBA PNGs."""
    from genlab.data.images import write_image
    from genlab.data.mask_sets import shapes_sample

    root = tmp_path_factory.mktemp("seg-images")
    s = shapes_sample(4040, 1, size=64, max_objects=3, part_prob=0.0)
    write_image(root / "scene.png", s.image)
    rgb = np.asarray(Image.open(root / "scene.png"))
    Image.fromarray(rgb).convert("L").save(root / "grey.png")
    Image.fromarray(np.concatenate([rgb, np.full((64, 64, 1), 255, np.uint8)], axis=2)).save(root / "rgba.png")
    ys, xs = np.nonzero(s.masks[0])
    return {"root": root, "mask": s.masks[0], "point": f"{int(np.median(xs))},{int(np.median(ys))}"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from genlab.train.run import train

    out = tmp_path_factory.mktemp("seg-run") / "run"
    train(
        family="sam",
        data="shapes",
        out=out,
        quiet=True,
        overrides=TINY_SAM | {"steps": 4, "batch_size": 2, "eval_every": 2},
    )
    return out


def test_help_teaches_the_options(cli):
    r = cli("segment", "--help")
    assert r.code == 0
    for needle in ("--point", "X,Y[,L]", "--box", "--multimask", "--all", "coco-rle", "polygons", "examples:"):
        assert needle in r.out, needle
    r = cli("train", "--help")
    assert "segment" in r.out and "genlab train segment --data shapes" in r.out
    assert "genlab segment" in cli("--help").out


def test_a_click_writes_a_mask_the_size_of_the_image(cli, photo, tmp_path):
    r = cli("segment", photo["root"] / "scene.png", "--point", photo["point"], "--out", tmp_path / "m.png", "--json")
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert summary["mode"] == "prompt" and len(summary["masks"]) == 1 and summary["width"] == 64
    assert {"predicted_iou", "stability_score", "area", "bbox"} <= set(summary["masks"][0])
    mask = np.asarray(Image.open(tmp_path / "m.png"))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
    assert summary["masks"][0]["area"] == int((mask > 0).sum())


def test_multimask_boxes_and_background_points(cli, photo, tmp_path):
    out = f"{tmp_path}/masks/"
    r = cli("segment", photo["root"] / "scene.png", "--box", "0,0,40,40", "--multimask", "--out", out, "--json")
    assert r.code == 0, r
    assert len(json.loads(r.out)["masks"]) == 3
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"mask_{i}.png" for i in range(3)] + [
        "overlay.png"
    ]
    r = cli(
        "segment", photo["root"] / "scene.png", "--box", "0,0,30,30", "--box", "20,20,64,64", "--out", f"{tmp_path}/b/"
    )
    assert r.code == 0 and (tmp_path / "b" / "mask_1.png").is_file(), r
    r = cli("segment", photo["root"] / "scene.png", "--box", "0,0,40,40", "--refine", "1", "--json")
    assert r.code == 0 and len(json.loads(r.out)["masks"]) == 1, r
    point = photo["point"]
    r = cli("segment", photo["root"] / "scene.png", "--point", point, "--point", "1,1,0", "--out", tmp_path / "p.png")
    assert r.code == 0, r


@pytest.mark.parametrize("name", ["grey.png", "rgba.png"])
def test_grey_and_rgba_files(cli, photo, tmp_path, name):
    r = cli("segment", photo["root"] / name, "--point", photo["point"], "--out", tmp_path / "m.png")
    assert r.code == 0, r
    assert np.asarray(Image.open(tmp_path / "m.png")).shape == (64, 64)


@pytest.mark.slow
def test_everything_as_png_rle_and_polygons(cli, photo, tmp_path):
    scene = photo["root"] / "scene.png"
    r = cli("segment", scene, "--all", "--out", tmp_path / "all.png", "--json")
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert summary["mode"] == "all" and np.asarray(Image.open(tmp_path / "all.png")).shape == (64, 64, 3)
    r = cli("segment", scene, "--all", "--format", "coco-rle", "--out", tmp_path / "all.json")
    assert r.code == 0, r
    doc = json.loads((tmp_path / "all.json").read_text())
    assert doc["height"] == 64 and len(doc["annotations"]) == len(summary["masks"])
    for a in doc["annotations"]:
        assert decode_rle(a["segmentation"]).sum() == a["area"] and len(a["bbox"]) == 4 and a["point_coords"]
    r = cli("segment", scene, "--all", "--format", "polygons", "--out", tmp_path / "poly.json", "--min-area", "5")
    assert r.code == 0, r
    polys = json.loads((tmp_path / "poly.json").read_text())["annotations"]
    assert all(isinstance(p["segmentation"], list) for p in polys)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--point", "64,3"], ["point (64, 3) is outside the 64×64 image"]),
        (["--box", "40,5,20,30"], ["x0 < x1"]),
        ([], ["no prompt"]),
        (["--point", "3,3,2"], ["label must be 1 (foreground) or 0 (background)"]),
        (["--point", "3;3"], ["--point", "X,Y"]),
        (["--box", "1,2,3"], ["--box", "X0,Y0,X1,Y1"]),
        (["--all", "--point", "3,3"], ["--all"]),
        (["--box", "0,0,9,9", "--box", "1,1,9,9", "--point", "3,3"], ["single --box"]),
        (["--point", "3,3", "--refine", "1"], ["--refine", "one click"]),
        (["--all", "--refine", "1"], ["--refine 1", "not with --all"]),
    ],
)
def test_bad_input_is_one_clear_line(cli, photo, tmp_path, args, needles):
    one_line_error(cli("segment", photo["root"] / "scene.png", *args, "--out", tmp_path / "x.png"), *needles)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that says it is ``width×height`` (its pixels are never read: the header is refused first)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_images_too_small_too_large_and_prompts_on_the_padding(cli, tmp_path):
    from PIL import Image

    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    one_line_error(cli("segment", tmp_path / "one.png", "--point", "0,0", "--out", tmp_path / "x.png"), "at least 8")
    (tmp_path / "huge.png").write_bytes(_png_header(20_000, 20_000))
    one_line_error(cli("segment", tmp_path / "huge.png", "--point", "5,5", "--out", tmp_path / "x.png"),
                   "400,000,000 pixels", "--max-pixels 50,000,000")  # fmt: skip
    Image.new("RGB", (64, 32), (200, 60, 60)).save(tmp_path / "wide.png")  # padded to a square below y = 32
    one_line_error(cli("segment", tmp_path / "wide.png", "--point", "10,50", "--out", tmp_path / "x.png"),
                   "outside the 64×32 image")  # fmt: skip
    one_line_error(cli("segment", tmp_path / "wide.png", "--box", "10,10,40,60", "--out", tmp_path / "x.png"),
                   "outside the 64×32 image")  # fmt: skip
    assert not (tmp_path / "x.png").exists()


def test_bad_files_and_outputs(cli, photo, tmp_path):
    one_line_error(cli("segment", tmp_path / "missing.png", "--all", "--out", tmp_path / "x.png"), "no such image")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    one_line_error(cli("segment", tmp_path / "junk.png", "--all", "--out", tmp_path / "x.png"), "not a readable image")
    one_line_error(cli("segment", photo["root"] / "scene.png", "--point", "3,3"), "--out")
    r = cli("segment", photo["root"] / "scene.png", "--box", "0,0,40,40", "--multimask", "--out", tmp_path / "m.png")
    one_line_error(r, "3 masks", "masks/")
    one_line_error(
        cli("segment", photo["root"] / "scene.png", "--all", "--model", tmp_path, "--out", tmp_path / "x.png"),
        "config.json",
    )


def test_train_segment_writes_a_loadable_checkpoint_and_resumes(cli, tiny_run, photo, tmp_path):
    import genlab
    from genlab.models.sam import SamModel

    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["family"] == "sam" and cfg["modality"] == "segment" and cfg["run"]["data"] == "shapes"
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").open()]
    assert any("miou_1click" in r and "miou_box" in r for r in records)
    assert isinstance(genlab.load(tiny_run), SamModel)
    r = cli(
        "segment",
        photo["root"] / "scene.png",
        "--model",
        tiny_run,
        "--point",
        photo["point"],
        "--out",
        tmp_path / "m.png",
    )
    assert r.code == 0, r  # a 32-pixel model answers for a 64-pixel image at the image's size
    assert np.asarray(Image.open(tmp_path / "m.png")).shape == (64, 64)
    r = cli("train", "segment", "--out", tiny_run, "--resume", "--steps", "6", "--json", "--quiet")
    assert r.code == 0, r
    assert json.loads(r.out)["step"] == 6


def test_train_segment_bad_data(cli, tmp_path):
    one_line_error(cli("train", "segment", "--data", tmp_path / "nope", "--out", tmp_path / "r"), "no such folder")
    one_line_error(cli("train", "segment", "--data", "shapes", "--size", "60", "--out", tmp_path / "r"), "multiple of")
