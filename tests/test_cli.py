import json
import re

import pytest

from genlab.checkpoint import write_manifest
from genlab.cli import build_parser

from .conftest import CORPUS
from .fuzz_sandbox import snapshot as folder_state


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
    before = folder_state(tmp_path)
    r = cli("train", "text", "--out", tmp_path / "run", "--quiet", *[a.format(tmp=tmp_path) for a in args])
    one_line_error(r, *needles)
    assert folder_state(tmp_path) == before  # nothing created, removed or rewritten anywhere in the folder


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


def _parsers():
    """(name, parser) of every verb and task, e.g. ("genlab edit inpaint", ...)."""
    import argparse

    def walk(parser, name):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for word, sub in action.choices.items():
                    yield from walk(sub, f"{name} {word}")

    parser = build_parser()
    parser.parse_known_args(["train", "text", "--out", "x"])  # train adds its families' --PART DIR options on parsing
    return list(walk(parser, "genlab"))


PARSERS = _parsers()


@pytest.mark.parametrize("name, parser", PARSERS, ids=[name for name, _ in PARSERS])
def test_every_option_has_a_description_and_no_empty_default(name, parser):
    import argparse

    undocumented = [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction) and not (a.help or "").strip()
    ]
    assert not undocumented, f"{name}: options without a description: {undocumented}"
    text = parser.format_help()
    assert "(default: None)" not in text, f"{name} --help shows '(default: None)': say what leaving it out does"
    for entry in re.split(r"\n  (?=-)", text)[1:]:  # one option's entry: its default is stated once
        flat = " ".join(entry.split())
        assert not re.search(r"default.*\(default: ", flat), f"{name}: a default stated twice: {flat[:200]}"
    long_numbers = re.findall(r"\d+\.\d{5,}", text)
    assert not long_numbers, f"{name}: numbers as a machine prints them: {long_numbers}"
    paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]
    assert len(paragraphs) == len(set(paragraphs)), f"{name}: a paragraph printed twice"
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text, (name, option)


ERROR_LINE = re.compile(r"^genlab: error: ")


@pytest.mark.parametrize(
    "command, option",
    [
        ("generate text --n x", "--n"),  # the parser's own check
        ("generate text --max-tokens 2 --temperature nan", "--temperature"),
        ("generate text --max-tokens 2 --top-p nan", "--top-p"),
        ("generate text --max-tokens=-1", "--max-tokens"),
        ("generate image --steps 0 --out {tmp}/x.png", "--steps"),
        ("generate image --steps 1 --n 1 --guidance nan --out {tmp}/x.png", "--guidance"),
        ("generate image --steps 1 --n 1 --eta inf --out {tmp}/x.png", "--eta"),
        ("segment {tmp}/in.png --point 3,3 --refine=-1 --out {tmp}/x.png", "--refine"),
        ("segment {tmp}/in.png --all --pred-iou-thresh nan --out {tmp}/x.png", "--pred-iou-thresh"),
        ("edit nnf --a {tmp}/in.png --b {tmp}/in.png --iterations=-1 --out {tmp}/x.png", "--iterations"),
        ("edit texture --sample {tmp}/in.png --size 16x16 --tolerance nan --out {tmp}/x.png", "--tolerance"),
        # argparse reads a value that starts with '-' as an option: the error says how to write it
        ("segment {tmp}/in.png --box -5,3,20,20 --out {tmp}/x.png", "is written --box=VALUE"),
        ("segment {tmp}/in.png --box=-5,3,20,20 --out {tmp}/x.png", "outside the 32×32 image"),
    ],
)
def test_a_bad_option_value_is_exit_2_with_one_line_naming_the_option(cli, tmp_path, command, option):
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 40, 40)).save(tmp_path / "in.png")
    before = folder_state(tmp_path)
    r = cli(*command.format(tmp=tmp_path).split())  # tmp_path has no spaces
    assert r.code == 2 and "Traceback" not in r.err, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error:" in ln]
    assert len(lines) == 1 and len(errors) == 1 and ERROR_LINE.match(errors[0]), r  # no usage lines either
    assert option in errors[0], (option, errors[0])
    assert folder_state(tmp_path) == before  # a refused command writes nothing


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
