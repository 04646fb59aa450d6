import pytest

from genlab.assets import DEFAULTS, ROOT


def test_every_shipped_model_has_a_model_card_and_loads():
    import genlab

    expected = {"text": "gpt", "image": "diffusion", "classifier": "classifier", "guidance": "classifier"}
    expected |= {"text2image": "text2image", "clip": "clip", "features": "features", "attributes": "attributes"}
    expected["segment"] = "sam"
    for task, folder in DEFAULTS.items():
        card = (ROOT / folder / "MODEL_CARD.md").read_text(encoding="utf-8")
        assert "## Command" in card and "genlab train" in card and "## Metrics" in card
        assert genlab.load(task=task).family == expected[task]
    assert sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file()) < 30e6


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


@pytest.mark.slow
def test_demo_writes_a_report(cli, tmp_path):
    r = cli("demo", "--out", tmp_path / "demo")
    assert r.code == 0, r
    page = (tmp_path / "demo" / "index.html").read_text(encoding="utf-8")
    assert "In the beginning" in page and "bits/char" in page and "tokens/s" in page
    assert "predicted IoU" in page and (tmp_path / "demo" / "seg_everything.png").is_file()
    for png in ("digits_ddim.png", "digits_ddpm.png", "digits_dpmpp.png", "digits_w3.png", "digits_morph.png"):
        assert (tmp_path / "demo" / png).is_file() and png in page
