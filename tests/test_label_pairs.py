"""``genlab label pairs`` and genlab.eval.preferences: the Bradley–Terry coin, all comparisons of a prompt's
distinct answers, the pairs file, and bad input refused before anything is written."""

from __future__ import annotations

import json
import math
import random
import sys
from itertools import combinations

import pytest

from genlab.data.pairs import read_pairs
from genlab.errors import GenlabError
from genlab.eval.judges import load_judge
from genlab.eval.preferences import Labelled, bradley_terry_choice, compare_all, label_pairs

from .chat_eval_helpers import prompts_file, save_tiny_chat, tiny_chat


# --- the coin -----------------------------------------------------------------------------------------------
def test_at_temperature_zero_the_higher_score_always_wins_and_a_tie_is_no_pair():
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        assert bradley_terry_choice(a, b, 0.0, rng) == (a > b)
    assert bradley_terry_choice(0.3, 0.3, 0.0, rng) is None
    assert bradley_terry_choice(0.3, 0.3, 0.5, rng) is None  # at any temperature


@pytest.mark.parametrize("s_a, s_b, temperature", [(1.0, -1.0, 1000.0), (0.6, 0.5, 0.1), (-0.5, 0.5, 0.5)])
def test_the_coin_follows_the_bradley_terry_probability(s_a, s_b, temperature):
    rng = random.Random(1)
    draws = 4000
    p = 1 / (1 + math.exp(-(s_a - s_b) / temperature))
    share = sum(bradley_terry_choice(s_a, s_b, temperature, rng) for _ in range(draws)) / draws
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / draws) + 1e-9, (share, p)
    if temperature == 1000.0:
        assert 0.45 < share < 0.55  # a very noisy labeller is a coin toss


def test_the_coin_does_not_overflow_on_huge_score_gaps():
    rng = random.Random(0)
    assert bradley_terry_choice(1e6, -1e6, 1e-6, rng) is True
    assert bradley_terry_choice(-1e6, 1e6, 1e-6, rng) is False


# --- the comparisons of one prompt -----------------------------------------------------------------------------
def test_every_two_distinct_answers_are_compared_and_identical_or_empty_ones_never():
    texts = ["good", "bad", "good", "fine", "  ", "meh"]
    scores = [0.9, -0.5, 0.9, 0.2, 0.0, 0.0]
    score_of = dict(zip(texts, scores, strict=True))
    pairs, ties = compare_all("p", texts, scores, 0.0, random.Random(0))
    assert ties == 0 and len(pairs) == math.comb(4, 2)  # good, bad, fine, meh
    seen = {frozenset((p.chosen, p.rejected)) for p, _ in pairs}
    assert seen == {frozenset(c) for c in combinations(["good", "bad", "fine", "meh"], 2)}
    for pair, (c, r) in pairs:
        assert pair.chosen != pair.rejected and pair.prompt == "p"
        assert c > r  # T = 0: the judge's higher score is chosen
        assert (c, r) == (score_of[pair.chosen], score_of[pair.rejected])


@pytest.mark.parametrize("temperature", [0.0, 0.1, 1000.0])
def test_ties_are_dropped_and_counted_at_any_temperature(temperature):
    pairs, ties = compare_all("p", ["a", "b", "c"], [0.5, 0.5, 0.1], temperature, random.Random(0))
    assert ties == 1 and len(pairs) == 2  # a tie would be a fair coin: no preference to learn
    assert {frozenset((p.chosen, p.rejected)) for p, _ in pairs} == {frozenset("ac"), frozenset("bc")}


def test_agreement_is_the_share_where_the_chosen_scores_higher():
    from genlab.data.pairs import Pair

    pair = Pair("p", "a", "b")
    labelled = Labelled(pairs=[(pair, (1.0, 0.0)), (pair, (0.0, 1.0)), (pair, (0.4, 0.5)), (pair, (2.0, 1.0))])
    assert labelled.agreement == pytest.approx(2 / 4)


# --- labelling a policy's answers ------------------------------------------------------------------------------
def test_label_pairs_compares_each_prompts_answers_with_the_judges_scores():
    model = tiny_chat(0)
    judge = load_judge("length")
    out = label_pairs(model, ["hello", "how are you"], judge, n=4, temperature=0.0, max_tokens=12, seed=3)
    assert out.prompts == 2 and out.answers == 8
    assert 0 < len(out.pairs) <= 2 * math.comb(4, 2)
    assert out.agreement == 1.0  # T = 0
    for pair, (c, r) in out.pairs:
        assert pair.prompt in ("hello", "how are you")
        assert judge([pair.prompt] * 2, [pair.chosen, pair.rejected]) == [c, r] and c > r
    again = label_pairs(model, ["hello", "how are you"], judge, n=4, temperature=0.0, max_tokens=12, seed=3)
    assert again.jsonl() == out.jsonl()  # a seed repeats the labels


def test_a_noisy_labeller_agrees_less_with_the_judge():
    model = tiny_chat(1)
    judge = load_judge("length")
    prompts = ["hello", "how are you", "good morning", "is it nice", "tell me something", "what do you think"]
    exact = label_pairs(model, prompts, judge, n=6, temperature=0.0, max_tokens=24, seed=0)
    noisy = label_pairs(model, prompts, judge, n=6, temperature=1000.0, max_tokens=24, seed=0)
    assert exact.agreement == 1.0
    assert noisy.agreement < 0.8


@pytest.mark.parametrize("kw, needle", [({"n": 1}, "at least 2"), ({"temperature": -1.0}, "≥ 0")])
def test_label_pairs_refuses_bad_settings(kw, needle):
    with pytest.raises(GenlabError, match=needle):
        label_pairs(tiny_chat(0), ["hello"], load_judge("length"), **kw)


# --- the command ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return save_tiny_chat(tmp_path_factory.mktemp("label") / "chat")


def test_cli_writes_pairs_that_read_back(cli, chat_dir, tmp_path):
    prompts = prompts_file(tmp_path / "prompts.txt")
    out = tmp_path / "pairs.jsonl"
    r = cli("label", "pairs", "--model", chat_dir, "--prompts", prompts, "--judge", "length", "--n", "3",
            "--max-tokens", "10", "--set", "temperature=0", "--out", out, "--json")  # fmt: skip
    assert r.code == 0, r
    summary = json.loads(r.out)
    pairs = read_pairs(out)
    assert summary["pairs"] == len(pairs) == len(out.read_text().splitlines()) > 0
    assert summary["prompts"] == 6 and summary["answers"] == 18 and summary["judge_agreement"] == 1.0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(line["scores"][0] > line["scores"][1] for line in lines)
    assert {p.prompt for p in pairs} <= set(prompts.read_text().split("\n"))


def test_cli_summary_in_words_and_the_bundled_prompts(cli, chat_dir, tmp_path):
    out = tmp_path / "pairs.jsonl"
    r = cli("label", "pairs", "--model", chat_dir, "--judge", "length", "--n", "2", "--limit", "3", "--max-tokens", "6",
            "--out", out)  # fmt: skip
    assert r.code == 0, r
    assert "pairs from" in r.out and "agreement" in r.out and out.is_file()


def one_line_error(r, *needles: str) -> str:
    lines = [ln for ln in r.err.strip().splitlines() if ln.strip()]
    assert r.code == 2 and "Traceback" not in r.err, r
    assert lines[-1].startswith("genlab: error:") and sum(": error:" in ln for ln in lines) == 1, r
    assert all(n in lines[-1] for n in needles), (needles, lines[-1])
    return lines[-1]


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--n", "1"], ["--n", "out of range"]),
        (["--set", "temperature=-1"], ["temperature=-1", "≥ 0"]),
        (["--set", "temperature=nan"], ["temperature=nan"]),
        (["--set", "temp=1"], ["temp", "valid keys: temperature"]),
        (["--judge", "vader"], ["unknown judge", "sentiment, length"]),
        (["--judge", "judge_mod_label:score"], ["judge_mod_label has no function 'score'"]),
        (["--judge", "judge_mod_label:crash"], ["raised RuntimeError"]),
        (["--prompts", "missing.txt"], ["missing.txt", "no such file"]),
        (["--sample-temperature", "0"], ["--sample-temperature"]),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(cli, chat_dir, tmp_path, monkeypatch, extra, needles):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "judge_mod_label.py").write_text(
        "def other(p, r):\n    return 0.0\n\ndef crash(p, r):\n    raise RuntimeError('no')\n", encoding="utf-8"
    )
    prompts = prompts_file(tmp_path / "prompts.txt")
    out = tmp_path / "pairs.jsonl"
    base = ["label", "pairs", "--model", chat_dir, "--prompts", prompts, "--max-tokens", "4", "--out", out]
    one_line_error(cli(*base, *extra), *needles)
    assert not out.exists()
    sys.modules.pop("judge_mod_label", None)


def test_cli_refuses_a_model_that_is_not_a_chat_model(cli, trained, tmp_path):
    out = tmp_path / "pairs.jsonl"
    r = cli("label", "pairs", "--model", trained["gpt"], "--out", out, "--limit", "1")
    one_line_error(r, "gpt", "chat")
    assert not out.exists()


def test_cli_refuses_when_no_pair_can_be_made(cli, chat_dir, tmp_path):
    out = tmp_path / "pairs.jsonl"
    prompts = prompts_file(tmp_path / "prompts.txt", ["hello"])
    # one token per answer at temperature 0.01: the 2 answers are the same (greedy in effect)
    r = cli("label", "pairs", "--model", chat_dir, "--prompts", prompts, "--n", "2", "--max-tokens", "1",
            "--sample-temperature", "0.01", "--out", out)  # fmt: skip
    one_line_error(r, "no preference pairs")
    assert not out.exists()
