"""``genlab eval chat`` and genlab.eval.chat: sampled answers, the judge's score, distinct-2, the end rate, and the
KL from a reference policy (zero to itself, the exact KL on one-token answers, refused across tokenizers)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from genlab.data.chat import Message
from genlab.errors import GenlabError, GenlabWarning
from genlab.eval.chat import (
    check_reference,
    distinct_n,
    evaluate_chat,
    judge_scores,
    kl_to_reference,
    mean_and_se,
    sample_answers,
)
from genlab.eval.judges import load_judge

from .chat_eval_helpers import char_tokenizer, prompts_file, save_tiny_chat, tiny_chat, train_tiny_chat


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    """A briefly trained chat model, and a random one with its tokenizer (a policy far from it)."""
    from genlab.checkpoint import load_model

    root = tmp_path_factory.mktemp("evalchat")
    path = train_tiny_chat(root)
    model = load_model(path, task="chat")
    far = save_tiny_chat(root / "random", seed=5, tokenizer=model.require_tokenizer(), block_size=64)
    return {"path": path, "model": model, "random": far, "root": root}


# --- distinct-n and the standard error ---------------------------------------------------------------------------
def test_distinct_2_counts_distinct_word_bigrams_over_all():
    assert distinct_n(["a b a b", "A b"], 2) == pytest.approx(2 / 4)  # (a b) ×3, (b a); case folded
    assert distinct_n(["the cat sat", "a dog ran"], 2) == 1.0
    assert distinct_n(["same words here"] * 4, 2) == pytest.approx(2 / 8)
    assert distinct_n(["one", "", "two"], 2) != distinct_n(["one", "", "two"], 2)  # no bigram at all: nan
    assert distinct_n(["a a a"], 1) == pytest.approx(1 / 3)


def test_mean_and_standard_error_are_over_prompts():
    mean, se = mean_and_se([1.0, 3.0, 5.0, 7.0])
    assert mean == 4.0 and se == pytest.approx(math.sqrt(20 / 3) / 2)
    mean, se = mean_and_se([1.0, 3.0, 5.0, 7.0], [0, 0, 1, 1])  # prompt means 2 and 6
    assert mean == 4.0 and se == pytest.approx(math.sqrt(8) / math.sqrt(2))
    assert math.isnan(mean_and_se([2.0])[1])


# --- sampling ---------------------------------------------------------------------------------------------------
def test_sample_answers_keeps_the_ids_each_answer_was_sampled_as():
    model = tiny_chat(0)
    answers = sample_answers(model, ["hello", "good morning"], n=3, max_tokens=10, seed=1)
    tok = model.require_tokenizer()
    assert len(answers) == 6 and answers.prompt == [0, 0, 0, 1, 1, 1]
    for k in range(len(answers)):
        assert answers.prompt_ids[k] == model.prompt_ids([Message("user", answers.prompts[answers.prompt[k]])])
        assert 1 <= len(answers.ids[k]) <= 10
        closing = tok.decode(answers.ids[k][-1:]) if answers.closed[k] else ""
        assert tok.decode(answers.ids[k]) == answers.texts[k] + closing
        assert answers.ended[k] == (answers.closed[k] and answers.ids[k][-1] == model.end_id())
    assert answers.tokens() == [len(i) - c for i, c in zip(answers.ids, answers.closed, strict=True)]
    again = sample_answers(model, ["hello", "good morning"], n=3, max_tokens=10, seed=1)
    assert again.texts == answers.texts


def test_prompts_too_long_for_the_context_are_left_out_with_a_warning():
    model = tiny_chat(0, block_size=48)
    with pytest.warns(GenlabWarning, match="1 of 2 prompts left out"):
        answers = sample_answers(model, ["hi", "x" * 40], max_tokens=16)
    assert answers.prompts == ["hi"] and answers.skipped == 1
    with pytest.raises(GenlabError, match="every prompt is too long"):
        sample_answers(model, ["x" * 40], max_tokens=16)


def test_judge_scores_pair_each_answer_with_its_prompt():
    seen = []

    class Recorder:
        name = "recorder"

        def __call__(self, prompts, responses):
            seen.extend(zip(prompts, responses, strict=True))
            return [float(len(p)) for p in prompts]

    answers = sample_answers(tiny_chat(0), ["a", "bbb"], n=2, max_tokens=4)
    assert judge_scores(Recorder(), answers) == [1.0, 1.0, 3.0, 3.0]
    assert [r for _, r in seen] == answers.texts


# --- the KL from a reference -------------------------------------------------------------------------------------
def test_kl_of_a_model_to_itself_is_zero():
    model = tiny_chat(0)
    answers = sample_answers(model, ["hello", "how are you"], n=4, max_tokens=12)
    kl = kl_to_reference(model, model, answers.prompt_ids, answers.ids, batch_size=3)
    assert len(kl) == 8 and max(abs(v) for v in kl) < 1e-4


def test_kl_estimate_matches_the_exact_kl_of_one_token_answers():
    policy, ref = tiny_chat(0), tiny_chat(1)
    with torch.no_grad():  # make the two policies differ clearly
        ref.wte.weight.mul_(8.0)
    answers = sample_answers(policy, ["hello"], n=3000, max_tokens=1, seed=0)
    estimate = torch.tensor(kl_to_reference(policy, ref, answers.prompt_ids, answers.ids, batch_size=512))
    ids = torch.tensor([answers.prompt_ids[0]])
    with torch.no_grad():
        logp = torch.log_softmax(policy.logits(ids)[0, -1].double(), -1)
        logq = torch.log_softmax(ref.logits(ids)[0, -1].double(), -1)
    exact = float((logp.exp() * (logp - logq)).sum())
    se = float(estimate.std() / math.sqrt(len(estimate)))
    assert exact > 0.1
    assert abs(float(estimate.mean()) - exact) < 4 * se, (float(estimate.mean()), exact, se)


def test_kl_to_a_different_model_is_positive(sft):
    from genlab.checkpoint import load_model

    far = load_model(sft["random"], task="chat")
    figures = evaluate_chat(sft["model"], ["hello", "how are you", "is it nice"], load_judge("sentiment"),
                            reference=far, n_samples=4, max_tokens=32)  # fmt: skip
    assert figures["kl"] > 3 * figures["kl_se"] > 0  # far from 0 by the SE over only 3 prompts


def test_a_reference_must_share_the_tokenizer_and_hold_the_answers():
    model = tiny_chat(0)
    with pytest.raises(GenlabError, match="--reference: its tokenizer differs"):
        check_reference(model, tiny_chat(0, tokenizer=char_tokenizer("abc ")))
    with pytest.raises(GenlabError, match="context .16 tokens. is shorter"):
        check_reference(model, tiny_chat(0, block_size=16))
    check_reference(model, tiny_chat(3))


# --- a trained policy ----------------------------------------------------------------------------------------------
def test_a_trained_model_ends_its_answers_and_scores_on_the_judges_scale(sft):
    figures = evaluate_chat(sft["model"], ["hello", "how are you", "good morning", "is it nice"],
                            load_judge("sentiment"), n_samples=8, max_tokens=40, seed=0)  # fmt: skip
    assert figures["prompts"] == 4 and figures["answers"] == 32
    assert figures["end_rate"] > 0.5  # a random model of this vocabulary almost never closes in 40 tokens
    assert -1 <= figures["score"] <= 1 and figures["score_se"] > 0
    assert 1 <= figures["words"] < 15 and figures["tokens"] > figures["words"]
    assert 0 < figures["distinct_2"] <= 1 and "kl" not in figures
    untrained = evaluate_chat(tiny_chat(2, tokenizer=sft["model"].require_tokenizer(), block_size=64), ["hello"],
                              load_judge("sentiment"), n_samples=8, max_tokens=40)  # fmt: skip
    assert untrained["end_rate"] < figures["end_rate"]


# --- the command ----------------------------------------------------------------------------------------------------
def test_cli_reports_the_figures_with_a_reference(cli, sft, tmp_path):
    prompts = prompts_file(tmp_path / "held_out.txt")
    r = cli("eval", "chat", sft["path"], "--prompts", prompts, "--judge", "sentiment", "--reference", sft["random"],
            "--max-tokens", "24", "--seed", "1", "--json")  # fmt: skip
    assert r.code == 0, r
    figures = json.loads(r.out)
    assert figures["prompts"] == 6 and figures["judge"] == "sentiment" and figures["kl"] > 0
    assert set(figures) >= {"score", "score_se", "kl_se", "words", "tokens", "distinct_2", "end_rate"}
    r = cli("eval", "chat", sft["path"], "--prompts", prompts, "--reference", sft["path"], "--max-tokens", "24",
            "--judge", "length", "--n-samples", "2")  # fmt: skip
    assert r.code == 0, r
    table = dict(line.split() for line in r.out.strip().splitlines())
    assert table["judge"] == "length" and table["answers"] == "12" and abs(float(table["kl"])) < 1e-3


def test_cli_evaluates_the_bundled_held_out_prompts_up_to_the_limit(cli, sft):
    r = cli("eval", "chat", sft["path"], "--limit", "3", "--max-tokens", "16", "--json")
    assert r.code == 0, r
    figures = json.loads(r.out)
    assert figures["prompts"] + len([w for w in figures.get("warnings", []) if "left out" in w]) >= 1
    assert figures["prompts"] <= 3


def _error(r) -> str:
    lines = [ln for ln in r.err.strip().splitlines() if ln.strip()]
    assert r.code == 2 and "Traceback" not in r.err and lines[-1].startswith("genlab: error:"), r
    return lines[-1]


def test_cli_refuses_a_reference_with_another_tokenizer(cli, sft, tmp_path):
    other = save_tiny_chat(tmp_path / "other", tokenizer=char_tokenizer("abcdef "), block_size=64)
    assert "tokenizer differs" in _error(cli("eval", "chat", sft["path"], "--reference", other, "--limit", "2"))


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--judge", "nosuchjudge_mod:f"], "no module named 'nosuchjudge_mod'"),
        (["--n-samples", "0"], "--n-samples"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--limit", "0"], "--limit"),
        (["--data", "x.txt"], "takes no --data"),
        (["--prompts", "prompts:dev"], "prompts:train or prompts:test"),
    ],
)
def test_cli_bad_input_is_one_line(cli, sft, extra, needle):
    assert needle in _error(cli("eval", "chat", sft["path"], *extra))


def test_cli_other_kinds_still_need_data_and_text_models_are_not_chat_models(cli, sft, trained):
    assert "--data is required for eval text" in _error(cli("eval", "text", trained["gpt"]))
    assert "this needs a chat model" in _error(cli("eval", "chat", trained["gpt"], "--limit", "1"))
