"""``genlab edit`` end to end: every task, the figures it prints, and every bad input the issue lists."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.images import bundled_image, read_image, write_image


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These tensors are tiny: one thread avoids OpenMP overhead (and stalls when another job shares the cores)."""
    torch.set_num_threads(1)
    yield


@pytest.fixture
def photo(tmp_path):
    """A 60×80 photo (photo.png) and a 15×15 hole mask for it (hole.png), in the returned folder."""
    img = np.ascontiguousarray(bundled_image("chelsea")[::4, ::4][:60, :80])
    write_image(tmp_path / "photo.png", img)
    mask = np.zeros((60, 80), np.uint8)
    mask[20:35, 30:45] = 255
    Image.fromarray(mask).save(tmp_path / "hole.png")
    return img, tmp_path


def edit(cli, command: str, folder=None):
    """Run ``genlab edit COMMAND``; ``{d}`` in it stands for ``folder`` (paths there have no spaces)."""
    return cli("edit", *command.format(d=folder).split())


def edit_json(cli, command: str, folder=None) -> dict:
    r = edit(cli, command + " --json --quiet", folder)
    assert r.code == 0, r
    return json.loads(r.out)


@pytest.mark.parametrize("method", ["patchmatch", "telea", "ns", "biharmonic"])
def test_inpaint_methods_report_psnr_inside_the_hole(cli, photo, method):
    img, d = photo
    fig = edit_json(
        cli,
        f"inpaint --image {{d}}/photo.png --mask {{d}}/hole.png --method {method} "
        "--reference {d}/photo.png --out {d}/out.png",
        d,
    )
    out = read_image(d / "out.png")
    hole = read_image(d / "hole.png", grey=True) > 0.5
    assert out.shape == img.shape and fig["hole_pixels"] == 225 and (fig["width"], fig["height"]) == (80, 60)
    assert np.abs(out[~hole] - img[~hole]).max() <= 1 / 255  # known pixels kept (up to 8-bit rounding)
    assert 10 < fig["psnr_hole"] < 60 and fig["psnr"] > fig["psnr_hole"] and 0 < fig["ssim_hole"] <= 1


def test_inpaint_with_dip(cli, photo):
    _, d = photo
    fig = edit_json(
        cli,
        "inpaint --image {d}/photo.png --mask {d}/hole.png --method dip --iterations 3 --width 8 --out {d}/dip.png",
        d,
    )
    assert fig["iterations"] == 3 and fig["stopped"] == "iterations" and (d / "dip.png").is_file()


def test_texture_both_methods(cli, tmp_path):
    q = edit_json(cli, "texture --sample brick --size 120x90 --out {d}/q.png", tmp_path)
    assert (q["width"], q["height"]) == (120, 90) and q["seconds_per_megapixel"] > 0
    write_image(tmp_path / "small.png", bundled_image("brick")[:24, :24])
    e = edit_json(
        cli, "texture --sample {d}/small.png --size 20x16 --method efros-leung --window 5 --out {d}/e.png", tmp_path
    )
    assert read_image(tmp_path / "e.png").shape == (16, 20, 3) and e["method"] == "efros-leung"


def test_retarget_and_reshuffle(cli, photo):
    img, d = photo
    r = edit_json(cli, "retarget --image {d}/photo.png --width 60 --patch 5 --out {d}/r.png", d)
    assert (r["width"], r["height"]) == (60, 60) and read_image(d / "r.png").shape == (60, 60, 3)
    edit_json(cli, "reshuffle --image {d}/photo.png --region 10,10,30,30 --to 50,30 --out {d}/s.png", d)
    moved = read_image(d / "s.png")
    assert np.abs(moved[30:50, 50:70] - img[10:30, 10:30]).max() <= 1 / 255


def test_restoration_tasks(cli, photo):
    img, d = photo
    write_image(d / "small.png", img[:16, :20])
    for task in ("denoise", "dejpeg"):
        fig = edit_json(
            cli,
            f"{task} --image {{d}}/small.png --iterations 2 --width 8 --reference {{d}}/small.png "
            f"--out {{d}}/{task}.png",
            d,
        )
        assert fig["iterations"] == 2 and "psnr" in fig and len(fig["history"]) == 1
    sr = edit_json(cli, "superres --image {d}/small.png --scale 4 --iterations 2 --width 8 --out {d}/sr.png", d)
    assert (sr["width"], sr["height"]) == (80, 64)
    bic = edit_json(cli, "superres --image {d}/small.png --method bicubic --scale 8 --out {d}/bic.png", d)
    assert (bic["width"], bic["height"]) == (160, 128)


def test_nnf_writes_the_field_and_the_reconstruction(cli, photo):
    img, d = photo
    fig = edit_json(
        cli, "nnf --a {d}/photo.png --b {d}/photo.png --patch 5 --iterations 4 --exact --out {d}/flow.png", d
    )
    assert read_image(d / "flow.png").shape == (56, 76, 3)  # one pixel per 5×5 patch of A
    rebuilt = read_image(fig["reconstruction"])
    assert np.abs(rebuilt - img).max() <= 1 / 255  # A from its own patches
    per_iteration = fig["mean_distance_per_iteration"]
    assert len(per_iteration) == 4 and per_iteration == sorted(per_iteration, reverse=True)
    assert fig["exact_mean_distance"] == 0.0


def test_mask_of_another_size_names_both_sizes(cli, photo):
    _, d = photo
    Image.new("L", (40, 30), 255).save(d / "small_mask.png")
    r = edit(cli, "inpaint --image {d}/photo.png --mask {d}/small_mask.png --out {d}/x.png", d)
    assert r.code == 2 and "40×30" in r.err and "80×60" in r.err and "Traceback" not in r.err


def test_empty_mask_copies_the_input_with_a_warning(cli, photo):
    img, d = photo
    Image.new("L", (80, 60), 0).save(d / "empty.png")
    r = edit(cli, "inpaint --image {d}/photo.png --mask {d}/empty.png --out {d}/same.png", d)
    assert r.code == 0 and "warning: the mask is empty" in r.err
    assert np.abs(read_image(d / "same.png") - img).max() <= 1 / 255


def test_mask_covering_the_whole_image_is_an_error(cli, photo):
    _, d = photo
    Image.new("L", (80, 60), 255).save(d / "full.png")
    r = edit(cli, "inpaint --image {d}/photo.png --mask {d}/full.png --out {d}/x.png", d)
    assert r.code == 2 and "covers the whole image" in r.err


def test_soft_masks_are_thresholded_at_one_half(cli, photo):
    img, d = photo
    soft = np.zeros((60, 80), np.uint8)
    soft[10:20, 10:20] = 153  # 0.6: a hole
    soft[40:50, 50:60] = 102  # 0.4: kept
    Image.fromarray(soft).save(d / "soft.png")
    fig = edit_json(cli, "inpaint --image {d}/photo.png --mask {d}/soft.png --method telea --out {d}/soft_out.png", d)
    assert fig["hole_pixels"] == 100
    out = read_image(d / "soft_out.png")
    assert np.abs(out[40:50, 50:60] - img[40:50, 50:60]).max() <= 1 / 255


@pytest.mark.parametrize("mode", ["I;16", "P", "CMYK"])
def test_sixteen_bit_palette_and_cmyk_images(cli, photo, mode):
    _, d = photo
    rgb = Image.open(d / "photo.png").convert("RGB")
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    else:
        converted = rgb.convert(mode)
    name = "image.jpg" if mode == "CMYK" else "image.png"
    converted.save(d / name)
    fig = edit_json(cli, f"inpaint --image {{d}}/{name} --mask {{d}}/hole.png --patch 7 --out {{d}}/o.png", d)
    assert (fig["width"], fig["height"]) == (80, 60) and read_image(d / "o.png").shape == (60, 80, 3)


@pytest.mark.parametrize(
    "command",
    [
        "inpaint --image {d}/photo.png --mask {d}/hole.png",
        "retarget --image {d}/photo.png --width 50",
        "reshuffle --image {d}/photo.png --region 0,0,10,10 --to 20,20",
        "nnf --a {d}/photo.png --b {d}/photo.png",
    ],
)
def test_patch_larger_than_the_image(cli, photo, command):
    _, d = photo
    r = edit(cli, command + " --patch 61 --out {d}/x.png", d)
    assert r.code == 2 and "--patch 61 is larger than the" in r.err and "80×60" in r.err


def test_huge_images_are_refused_with_a_clear_message(cli, photo):
    _, d = photo
    r = edit(cli, "inpaint --image {d}/photo.png --mask {d}/hole.png --max-pixels 1000 --out {d}/x.png", d)
    assert r.code == 2 and "4,800 pixels is more than --max-pixels 1,000" in r.err
    r = edit(cli, "texture --sample brick --size 5000x5000 --out {d}/x.png", d)
    assert r.code == 2 and "25,000,000 pixels is more than --max-pixels 16,000,000" in r.err
    r = edit(cli, "superres --image {d}/photo.png --scale 8 --max-pixels 100000 --out {d}/x.png", d)
    assert r.code == 2 and "640×480" in r.err


@pytest.mark.parametrize(
    "command, message",
    [
        ("texture --sample brick --size big", "expected 2 integers"),
        ("reshuffle --image {d}/photo.png --region 10,10,90,30 --to 0,0", "--region 10,10,90,30: must satisfy"),
        ("reshuffle --image {d}/photo.png --region 10,10,30,30 --to 70,0", "must stay inside the 80×60 image"),
        ("retarget --image {d}/photo.png", "give --width, --height or both"),
        ("retarget --image {d}/photo.png --width 0", "argument --width: 0 is out of range: must be ≥ 1"),
        ("superres --image {d}/photo.png --scale 1", "--scale 1: must be at least 2"),
        ("inpaint --image {d}/photo.png --mask {d}/missing.png", "missing.png: no such image file"),
        (
            "nnf --a {d}/photo.png --b {d}/photo.png --iterations -1",
            "argument --iterations: -1 is out of range: must be ≥ 0",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(cli, photo, command, message):
    _, d = photo
    r = edit(cli, command + " --out {d}/x.png", d)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1, r


def test_every_task_has_help_with_examples(cli):
    r = cli("edit", "--help")
    assert r.code == 0 and "genlab edit inpaint" in r.out
    for task in ("texture", "inpaint", "retarget", "reshuffle", "denoise", "dejpeg", "superres", "nnf"):
        r = cli("edit", task, "--help")
        assert r.code == 0 and "examples:" in r.out and f"genlab edit {task}" in r.out, task


@pytest.mark.parametrize(
    "task, args",
    [
        ("retarget", ["retarget", "--image", "{d}/photo.png", "--width", "50"]),
        ("inpaint", ["inpaint", "--image", "{d}/photo.png", "--mask", "{d}/hole.png"]),
        ("quilting", ["texture", "--sample", "{d}/photo.png", "--size", "64x64"]),
    ],
)
def test_long_patch_work_is_announced_before_it_starts(cli, photo, monkeypatch, task, args):
    """The estimate comes from a measured constant: a small image is quiet, the same work priced high is announced."""
    import genlab.cli.edit_common as common

    _, d = photo
    command = ["edit", *[a.format(d=d) for a in args], "--out", f"{d}/o.png", "--quiet"]
    r = cli(*command)
    assert r.code == 0 and "will take about" not in r.err, r
    monkeypatch.setitem(common.PATCH_SECONDS_PER_MEGAPIXEL, task, 1e9)
    r = cli(*command)
    announced = [ln for ln in r.err.splitlines() if "will take about" in ln]
    assert r.code == 0 and len(announced) == 1 and "makes it faster" in announced[0], r
