import json

import pytest

from genlab.checkpoint import write_manifest
from genlab.cli import build_parser

from .conftest import CORPUS


def one_line_error(result, *needles):
    assert result.code == 2, result
    lines = [ln for ln in result.err.strip().splitlines() if ln.startswith("genlab: error:")]
    assert len(lines) == 1 and "Traceback" not in result.err, result
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_help_documents_every_verb(cli):
    r = cli("--help")
    assert r.code == 0
    for verb in ("train", "generate", "eval", "export", "demo"):
        assert verb in r.out
    for verb, needles in {
        "train": ["--resume", "--set", "--time-budget", "ngram", "torchrun"],
        "generate": ["--top-p", "--stream", "--stop", "--seed"],
        "eval": ["bits per character", "--json"],
    }.items():
        r = cli(verb, "--help")
        assert r.code == 0 and all(n in r.out for n in needles), (verb, r.out)


@pytest.mark.parametrize(
    "setup, args, needles",
    [
        (None, ["--data", "{tmp}/missing.txt"], ["missing.txt", "no such file"]),
        (("empty.txt", b""), ["--data", "{tmp}/empty.txt"], ["empty.txt", "no text"]),
        (("bin.txt", b"\x00\x01\x02binary"), ["--data", "{tmp}/bin.txt"], ["bin.txt", "binary"]),
        (("latin.txt", b"caf\xe9"), ["--data", "{tmp}/latin.txt"], ["latin.txt", "not UTF-8"]),
        (("short.txt", b"just a few words"), ["--data", "{tmp}/short.txt"], ["tokens", "block_size"]),
        (("c.txt", CORPUS.encode()), ["--data", "{tmp}/c.txt", "--model", "transformerxl"], ["gpt", "lstm", "ngram"]),
        (("c.txt", CORPUS.encode()), ["--data", "{tmp}/c.txt", "--preset", "huge"], ["tiny", "small", "base"]),
        (("c.txt", CORPUS.encode()), ["--data", "{tmp}/c.txt", "--set", "n_layers=4"], ["n_layers", "n_layer", "lr"]),
        (("c.txt", CORPUS.encode()), ["--data", "{tmp}/c.txt", "--set", "n_layer=four"], ["n_layer", "int"]),
        (("c.txt", CORPUS.encode()), ["--data", "{tmp}/c.txt", "--set", "noequals"], ["key=value"]),
        (("c.txt", CORPUS.encode()), ["--data", "{tmp}/c.txt", "--resume"], ["nothing to resume"]),
    ],
)
def test_train_bad_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, setup, args, needles):
    if setup:
        (tmp_path / setup[0]).write_bytes(setup[1])
    out = tmp_path / "run"
    r = cli("train", "text", "--out", out, "--quiet", *[a.format(tmp=tmp_path) for a in args])
    one_line_error(r, *needles)
    leftovers = [p.name for p in out.glob("*")] if out.exists() else []
    assert not any(name in leftovers for name in ("model.safetensors", "train_state.pt")), leftovers


def test_existing_run_is_not_overwritten(cli, trained):
    r = cli("train", "text", "--data", trained["data"], "--out", trained["gpt"], "--steps", "5", "--quiet")
    one_line_error(r, "already holds a gpt checkpoint", "--resume", "--force")


def test_checkpoint_problems(cli, trained, tmp_path):
    one_line_error(cli("generate", "text", "--model", tmp_path / "nothing"), "no such checkpoint")
    (tmp_path / "empty").mkdir()
    one_line_error(cli("generate", "text", "--model", tmp_path / "empty"), "config.json is missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained["gpt"] / "config.json").read_text())
    one_line_error(cli("generate", "text", "--model", broken), "no manifest.json", "write_manifest")
    write_manifest(broken)  # a folder written by hand, vouched for
    one_line_error(cli("generate", "text", "--model", broken), "missing model.safetensors")
    (broken / "model.safetensors").write_bytes((trained["lstm"] / "model.safetensors").read_bytes())
    write_manifest(broken)
    one_line_error(cli("generate", "text", "--model", broken), "does not match config.json")
    alien = tmp_path / "alien"
    alien.mkdir()
    (alien / "config.json").write_text(json.dumps({"family": "diffusion-xl", "config": {}}))
    write_manifest(alien)
    one_line_error(cli("eval", "text", alien, "--data", trained["data"]), "unknown model family 'diffusion-xl'")


def test_generate_seed_repeats_and_stream_matches(cli, trained):
    args = ["generate", "text", "--model", trained["gpt"], "--prompt", "the ", "--max-tokens", "40", "--seed", "7"]
    a, b = cli(*args), cli(*args)
    assert a.code == 0 and a.out == b.out and a.out.startswith("the ")
    streamed = cli(*args, "--stream")
    assert streamed.out == a.out
    other = cli(*args[:-1], "8")
    assert other.out != a.out


def test_generate_json_stop_and_n(cli, trained):
    r = cli(
        "generate",
        "text",
        "--model",
        trained["ngram"],
        "--prompt",
        "the quick",
        "--max-tokens",
        "100",
        "--stop",
        ".",
        "--n",
        "3",
        "--seed",
        "1",
        "--json",
    )
    assert r.code == 0, r
    data = json.loads(r.out)
    assert len(data["samples"]) == 3 and all("." not in s for s in data["samples"])
    assert data["tokens_per_s"] > 0


def test_long_prompt_is_cut_with_a_warning(cli, trained):
    r = cli("generate", "text", "--model", trained["gpt"], "--prompt", CORPUS[:200], "--max-tokens", "5")
    assert r.code == 0 and "keeping the last 32" in r.err


def test_bad_sampling_controls(cli, trained):
    one_line_error(cli("generate", "text", "--model", trained["gpt"], "--top-p", "0"), "--top-p")
    one_line_error(cli("generate", "text", "--model", trained["gpt"], "--temperature", "-1"), "--temperature")


@pytest.mark.parametrize("family", ["gpt", "lstm", "ngram", "gpt-bpe"])
def test_eval_json_on_every_family(cli, trained, family):
    r = cli("eval", "text", trained[family], "--data", trained["data"], "--split", "val", "--json")
    assert r.code == 0, r
    figures = json.loads(r.out)
    for key in ("nats_per_token", "bits_per_char", "perplexity", "tokens", "chars"):
        assert key in figures
    held_out = len(CORPUS) - int(len(CORPUS) * 0.9)
    if family == "gpt-bpe":  # the first token (unscored) may span several characters
        assert held_out - 12 < figures["chars"] < held_out
    else:
        assert figures["chars"] == held_out - 1
    assert 0 < figures["bits_per_char"] < 9


def test_argparse_errors_exit_2(cli):
    assert cli("train", "text").code == 2  # --out missing
    assert cli("frobnicate").code == 2


def test_parser_builds():
    assert build_parser().prog == "genlab"


def test_resume_accepts_a_repeated_model_option_and_refuses_a_change(trained, tmp_path):
    import json
    import shutil

    import pytest

    from genlab.errors import GenlabError
    from genlab.train.runs import plan_run

    run = tmp_path / "run"
    shutil.copytree(trained["gpt"], run)
    n_layer = json.loads((run / "config.json").read_text())["config"]["n_layer"]
    plan = plan_run(run, modality="text", family="gpt", preset="tiny", overrides={"n_layer": str(n_layer)}, resume=True)
    assert plan.resume and plan.model_config.n_layer == n_layer
    with pytest.raises(GenlabError, match="cannot change the model's shape \\(n_layer\\)"):
        plan_run(run, modality="text", family="gpt", preset="tiny", overrides={"n_layer": n_layer + 1}, resume=True)


def test_eval_text_val_fraction_zero_scores_the_whole_text_as_training_part(cli, trained):
    """--val-fraction 0 is a value (nothing held out), not 'use the default'."""
    import json

    whole = json.loads(cli("eval", "text", trained["gpt"], "--data", trained["data"], "--json").out)
    train = cli("eval", "text", trained["gpt"], "--data", trained["data"], "--split", "train", "--val-fraction", "0",
                "--json")  # fmt: skip
    assert train.code == 0, train
    assert json.loads(train.out)["nats_per_char"] == whole["nats_per_char"]
