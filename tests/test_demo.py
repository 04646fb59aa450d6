import pytest

from genlab.assets import DEFAULTS, ROOT


def test_every_shipped_model_has_a_model_card_and_loads():
    import genlab

    expected = {"text": "gpt", "image": "diffusion", "classifier": "classifier", "guidance": "classifier"}
    expected |= {"text2image": "text2image", "clip": "clip", "features": "features", "attributes": "attributes"}
    expected |= {
        "segment": "sam",
        "chat": "chat",
        "chat-rlhf": "rlhf",
        "gan": "gan",
        "vae": "vae",
        "pixelcnn": "pixelcnn",
    }
    for task, folder in DEFAULTS.items():
        card = (ROOT / folder / "MODEL_CARD.md").read_text(encoding="utf-8")
        assert "## Command" in card and "genlab train" in card and "## Metrics" in card
        assert genlab.load(task=task).family == expected[task]
    assert sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file()) < 42e6  # all together well under 50 MB


@pytest.mark.slow
def test_shipped_gpt_beats_the_5gram_on_held_out_verses():
    import genlab
    from genlab.data.text import load_text, split_text
    from genlab.data.tokenizers import CharTokenizer
    from genlab.eval.text import evaluate_text
    from genlab.models.ngram import NGramConfig, NGramLM

    train, held_out = split_text(load_text("kjv"))
    held_out = held_out[-50_000:]
    tok = CharTokenizer.train(train)
    five = NGramLM(NGramConfig(vocab_size=tok.vocab_size, order=5), tok)
    five.fit(tok.encode(train))
    gpt = evaluate_text(genlab.load(task="text"), held_out)
    assert gpt["nats_per_char"] < evaluate_text(five, held_out)["nats_per_char"] - 0.05


@pytest.mark.slow
def test_shipped_diffusion_model_draws_the_asked_digit():
    import torch

    import genlab
    from genlab.assets import default_model

    model = genlab.load(task="image")
    judge = genlab.load(default_model("classifier"), task="classifier")
    classes = torch.arange(10).repeat(5)
    images = model.sample(
        50, classes, sampler="dpmpp", steps=20, guidance=1.0, generator=torch.Generator().manual_seed(0)
    )
    predicted, _ = judge.predict(images)
    assert (predicted == classes).float().mean() >= 0.9


def test_text_samples_are_cut_at_a_line_or_sentence_end():
    from genlab.demo import cut_at_line_end

    assert cut_at_line_end(" God created the heaven.\nAnd the ear") == " God created the heaven."
    assert cut_at_line_end(" was light. And God sa") == " was light."
    assert cut_at_line_end(" one line.\ntwo lines:\nthree") == " one line.\ntwo lines:"
    assert cut_at_line_end(" no end at all") == " no end at all"


def test_demo_prints_a_line_as_each_section_starts_and_ends_unless_quiet(cli, tmp_path, monkeypatch):
    import genlab.demo

    sections = [("first", lambda out, seed: "<h2>First</h2>"), ("second", lambda out, seed: "<h2>Second</h2>")]
    monkeypatch.setattr(genlab.demo, "SECTIONS", sections)
    r = cli("demo", "--out", tmp_path / "loud")
    assert r.code == 0, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 4 and "[1/2] first: started" in lines[0] and "[2/2] second: done in" in lines[3]
    assert all(" s" in line for line in lines)
    page = (tmp_path / "loud" / "index.html").read_text(encoding="utf-8")
    assert "<h2>First</h2>" in page and "<h2>Second</h2>" in page
    r = cli("demo", "--out", tmp_path / "quiet", "--quiet")
    assert r.code == 0 and r.err == "" and "index.html" in r.out


@pytest.mark.slow
def test_segmentation_panel_shows_the_whole_and_the_part_the_model_gets_right():
    from genlab.demo.segment import MIN_IOU, find_scene
    from genlab.segment.predictor import SegmentPredictor

    found = find_scene(SegmentPredictor.load(), seed=0)
    assert found["index"] < 50  # the held-out stream still has such a scene early on
    assert min(found["gt_iou"]) >= MIN_IOU >= 0.95
    whole, part = (found["masks"][found[k]] for k in ("whole", "piece"))
    assert whole.sum() > 2 * part.sum() > 0 and (part & ~whole).sum() <= 0.05 * part.sum()  # nested, distinct sizes


@pytest.mark.slow
def test_guidance_rows_differ_visibly():
    import genlab
    from genlab.demo import GUIDANCE_W, guidance_rows

    rows = guidance_rows(genlab.load(task="image"), seed=0)
    assert list(rows) == list(GUIDANCE_W)
    images = list(rows.values())
    for a, b in zip(images, images[1:], strict=False):
        assert (a - b).abs().mean().item() > 0.04  # mean absolute pixel difference, pixels in [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["vae", "pixelcnn"])
def test_shipped_image_families_draw_the_asked_digit(task):
    import torch

    import genlab
    from genlab.assets import default_model
    from genlab.eval.image import at_size

    model = genlab.load(task=task)
    judge = genlab.load(default_model("classifier"), task="classifier")
    classes = torch.arange(10).repeat(5)
    images = model.sample(50, classes, generator=torch.Generator().manual_seed(0))
    predicted, _ = judge.predict(at_size(images, judge.config.image_size))
    assert (predicted == classes).float().mean() >= 0.8


def test_shipped_gan_draws_every_digit():
    import torch

    import genlab
    from genlab.assets import default_model
    from genlab.eval.image import at_size, class_coverage

    model = genlab.load(task="gan")
    judge = genlab.load(default_model("classifier"), task="classifier")
    images = model.sample(500, generator=torch.Generator().manual_seed(0))
    predicted, _ = judge.predict(at_size(images, judge.config.image_size))
    assert class_coverage(predicted, 10)["min_class_share"] >= 0.05  # no mode collapse


def test_demo_writes_a_report(cli, tmp_path):
    import re

    r = cli("demo", "--out", tmp_path / "demo")
    assert r.code == 0, r
    assert r.err.count("started at") == r.err.count("done in") == 7
    page = (tmp_path / "demo" / "index.html").read_text(encoding="utf-8")
    titles = ("Text: a GPT", "Images: class-conditional diffusion", "Text to image", "Example-based image editing")
    assert all(t in page for t in (*titles, "Segmentation", "Failure case", "warm"))
    assert "In the beginning" in page and "bits/char" in page and "tokens/s" in page
    samples = re.findall(r"<div class='sample'><b>[^<]*</b>([^<]*)<div", page)
    assert len(samples) == 3 and all(s.rstrip()[-1] in ".,:;!?" for s in samples)  # each ends at a line end
    assert "predicted IoU" in page and (tmp_path / "demo" / "seg_everything.png").is_file()
    assert "On photos" in page and list((tmp_path / "demo").glob("seg_photo_*.png"))
    assert "Chat: from a pretrained model" in page and page.count("sentiment ") >= 8  # 4 prompts × base, SFT
    assert "Image families side by side" in page and "bits/dim, exact" in page and "none (no density)" in page
    for png in ("families_gan.png", "families_vae.png", "families_pixelcnn.png", "families_diffusion.png"):
        assert (tmp_path / "demo" / png).is_file() and png in page
    for png in ("digits_ddim.png", "digits_ddpm.png", "digits_dpmpp.png", "digits_w10.png", "digits_morph.png"):
        assert (tmp_path / "demo" / png).is_file() and png in page
