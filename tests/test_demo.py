from genlab.assets import DEFAULTS, ROOT


def test_every_shipped_model_has_a_model_card_and_loads():
    import genlab

    for task, folder in DEFAULTS.items():
        assert (ROOT / folder / "MODEL_CARD.md").is_file()
        model = genlab.load(task=task)
        assert model.modality == task


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


def test_demo_writes_a_report(cli, tmp_path):
    r = cli("demo", "--out", tmp_path / "demo")
    assert r.code == 0, r
    page = (tmp_path / "demo" / "index.html").read_text(encoding="utf-8")
    assert "In the beginning" in page and "bits/char" in page and "tokens/s" in page
