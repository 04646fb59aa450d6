import json

import numpy as np
import pytest
from PIL import Image

from .fuzz_sandbox import snapshot as folder_state
from .test_cli import one_line_error


def test_train_writes_checkpoint_metrics_and_sample_grids(image_runs):
    run = image_runs["cond"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["family"] == "diffusion" and cfg["config"]["num_classes"] == 10 and cfg["config"]["channels"] == 1
    assert cfg["run"]["class_names"][7] == "7"
    assert (run / "ema.safetensors").is_file() and (run / "samples" / "step_000020.png").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert any("val_loss" in r for r in records)


def test_generate_grid_and_directory(cli, image_runs, tmp_path):
    r = cli(
        "generate",
        "image",
        "--model",
        image_runs["cond"],
        "--class",
        "7",
        "--n",
        "6",
        "--steps",
        "5",
        "--guidance",
        "2",
        "--seed",
        "0",
        "--out",
        tmp_path / "g.png",
        "--json",
    )
    assert r.code == 0, r
    assert json.loads(r.out)["images"] == 6
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape[0] > 8 and grid.shape[1] > 8
    r = cli(
        "generate",
        "image",
        "--model",
        image_runs["uncond"],
        "--n",
        "3",
        "--steps",
        "4",
        "--sampler",
        "dpmpp",
        "--out",
        f"{tmp_path}/many/",
    )
    assert r.code == 0, r
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == [f"sample_000{i}.png" for i in range(3)]


def test_same_seed_same_images(cli, image_runs, tmp_path):
    args = [
        "generate",
        "image",
        "--model",
        image_runs["cond"],
        "--class",
        "3",
        "--n",
        "4",
        "--steps",
        "5",
        "--sampler",
        "ddpm",
        "--seed",
        "11",
    ]
    assert cli(*args, "--out", tmp_path / "a.png").code == 0
    assert cli(*args, "--out", tmp_path / "b.png").code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_interpolation_strips(cli, image_runs, tmp_path):
    for extra in (["--interpolate", "0,1"], ["--interpolate", "0,1", "--through", "diffused"]):
        r = cli(
            "generate",
            "image",
            "--model",
            image_runs["cond"],
            *extra,
            "--frames",
            "5",
            "--steps",
            "4",
            "--out",
            tmp_path / "m.png",
        )
        assert r.code == 0, r
        w = np.asarray(Image.open(tmp_path / "m.png")).shape[1]
        h = np.asarray(Image.open(tmp_path / "m.png")).shape[0]
        assert w > 4 * h  # one row of 5 frames


def test_classifier_guidance_from_the_cli(cli, image_runs, tmp_path):
    r = cli(
        "generate",
        "image",
        "--model",
        image_runs["cond"],
        "--class",
        "2",
        "--n",
        "2",
        "--steps",
        "4",
        "--classifier",
        image_runs["noisy"],
        "--classifier-scale",
        "1",
        "--out",
        tmp_path / "c.png",
    )
    assert r.code == 0, r
    one_line_error(
        cli(
            "generate",
            "image",
            "--model",
            image_runs["cond"],
            "--class",
            "2",
            "--classifier",
            image_runs["clf"],
            "--classifier-scale",
            "1",
            "--out",
            tmp_path / "c.png",
        ),
        "noisy",
    )


def test_eval_image_fid_json(cli, image_runs):
    r = cli(
        "eval",
        "image",
        image_runs["cond"],
        "--data",
        "digits",
        "--fid",
        "--samples",
        "20",
        "--steps",
        "4",
        "--classifier",
        image_runs["clf"],
        "--features",
        "classifier",
        "--json",
    )
    assert r.code == 0, r
    figures = json.loads(r.out)
    for key in ("val_loss", "fid_classifier", "kid_classifier", "class_accuracy", "images_per_s"):
        assert key in figures
    assert figures["reference_images"] == 359 and 0 <= figures["class_accuracy"] <= 1


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--class", "3"], ["unconditional"]),
        (["--guidance", "2"], ["guidance"]),
    ],
)
def test_unconditional_model_refuses_classes(cli, image_runs, tmp_path, args, needles):
    r = cli("generate", "image", "--model", image_runs["uncond"], *args, "--steps", "3", "--out", tmp_path / "x.png")
    one_line_error(r, *needles)


def test_generate_bad_requests(cli, image_runs, tmp_path):
    model = ["generate", "image", "--model", image_runs["cond"], "--out", tmp_path / "x.png"]
    before = folder_state(tmp_path)
    one_line_error(cli(*model, "--class", "10"), "--class", "0 … 9")
    one_line_error(cli(*model, "--class", "seven"), "--class", "not a class")
    one_line_error(cli(*model, "--steps", "0"), "argument --steps: 0 is out of range")
    one_line_error(cli(*model, "--n", "0"), "argument --n: 0 is out of range")
    one_line_error(cli("generate", "image", "--model", image_runs["clf"]), "classifier", "needs a image model")
    assert folder_state(tmp_path) == before  # nothing written anywhere in the folder, not just x.png


@pytest.mark.slow
def test_train_image_bad_inputs(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(cli("train", "image", "--data", tmp_path / "empty", "--out", tmp_path / "r1"), "no images")
    one_line_error(
        cli("train", "image", "--data", "digits", "--size", "30", "--out", tmp_path / "r2"),
        "--size 30",
        "multiple of 4",
        "try 28 or 32",
    )
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "ok.png")
    (folder / "bad.png").write_bytes(b"not a png")
    r = cli("train", "image", "--data", folder, "--out", tmp_path / "r3", "--strict", "--quiet")
    one_line_error(r, "bad.png")
    r = cli(
        "train",
        "image",
        "--data",
        folder,
        "--out",
        tmp_path / "r4",
        "--quiet",
        "--size",
        "8",
        "--set",
        "channel_mult=1,2",
        "--set",
        "attn_resolutions=",
        "--set",
        "base_channels=8",
        "--steps",
        "2",
        "--set",
        "batch_size=2",
        "--val-fraction",
        "0",
    )
    assert r.code == 0, r
    assert "skipped 1 unreadable file(s) of 2; first:" in r.err and "bad.png" in r.err
    r = cli(
        "train",
        "image",
        "--data",
        "digits",
        "--out",
        tmp_path / "r5",
        "--quiet",
        "--size",
        "8",
        "--set",
        "channel_mult=1,2",
        "--set",
        "lr=1e30",
        "--set",
        "warmup=0",
        "--set",
        "grad_clip=0",
        "--steps",
        "30",
    )
    one_line_error(r, "loss became", "lower learning rate")
    one_line_error(
        cli("train", "image", "--data", "digits", "--model", "gpt", "--out", tmp_path / "r6"),
        "unknown image family 'gpt'",
    )


def _draw(cli, path, *args):
    r = cli("generate", "image", "--n", "2", "--steps", "4", "--seed", "0", "--out", path, *map(str, args))
    assert r.code == 0, r
    return np.asarray(Image.open(path)).astype(np.int16)


def test_guidance_changes_the_images_at_the_same_seed(cli, tmp_path):
    """The shipped digits model: --guidance 0 twice gives the same images, --guidance 3 other ones."""
    plain = _draw(cli, tmp_path / "a.png", "--class", "3", "--guidance", "0")
    assert np.array_equal(plain, _draw(cli, tmp_path / "b.png", "--class", "3", "--guidance", "0"))
    guided = _draw(cli, tmp_path / "c.png", "--class", "3", "--guidance", "3")
    assert np.abs(plain - guided).mean() > 1.0  # grey levels of 255: more than rounding


def test_negative_prompt_changes_the_images_at_the_same_seed(cli, tmp_path):
    """The shipped text-to-image model: a negative prompt steers guidance away from it, so the images change."""
    prompt = ["--prompt", "a large red circle in the center", "--guidance", "3"]
    plain = _draw(cli, tmp_path / "a.png", *prompt)
    assert np.array_equal(plain, _draw(cli, tmp_path / "b.png", *prompt))
    negative = _draw(cli, tmp_path / "c.png", *prompt, "--negative-prompt", "red")
    assert np.abs(plain - negative).mean() > 1.0
    unguided = _draw(cli, tmp_path / "d.png", "--prompt", "a large red circle in the center", "--guidance", "0")
    assert np.abs(plain - unguided).mean() > 1.0  # and --guidance itself counts for prompts too


def test_one_image_is_written_as_itself_without_a_grid_border(cli, tmp_path):
    """The shipped text-to-image model draws 32×32: --n 1 writes that image, not a bordered 34×34 grid."""
    r = cli("generate", "image", "--prompt", "a red circle", "--n", "1", "--steps", "2", "--out", tmp_path / "x.png")
    assert r.code == 0, r
    assert Image.open(tmp_path / "x.png").size == (32, 32)
    r = cli("generate", "image", "--prompt", "a red circle", "--n", "2", "--steps", "2", "--out", tmp_path / "g.png")
    assert r.code == 0 and Image.open(tmp_path / "g.png").size == (67, 34), r  # two images, a 1-pixel border


def test_fid_without_the_inception_extra_says_what_is_missing(cli, monkeypatch):
    import genlab.eval.fid as fid

    monkeypatch.setattr(fid, "inception_weights", lambda: None)
    from genlab.assets import default_model

    r = cli("eval", "image", default_model("image"), "--data", "digits", "--fid", "--samples", "20", "--steps", "2",
            "--json")  # fmt: skip
    assert r.code == 0, r
    warning = [ln for ln in r.err.splitlines() if ln.startswith("genlab: warning:")]
    assert len(warning) == 1 and "Inception FID and KID left out" in warning[0] and "genlab[fid]" in warning[0], r
    figures = json.loads(r.out)
    assert "fid_inception" not in figures and any(k.startswith("fid") for k in figures), figures
