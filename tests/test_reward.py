"""The reward family: Bradley–Terry on preference pairs, a prompt's comparisons in one batch element, the centring
of demonstrations at 0, and the pairs file's checks (each bad line one error naming it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genlab.checkpoint import load_model
from genlab.data.pairs import Pair, by_prompt, read_pairs
from genlab.errors import GenlabError

from .test_cli import one_line_error

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 64}
PROMPTS = [f"{w} {n}?" for w in ("how", "who", "what", "why", "when", "where") for n in ("one", "two", "three", "four")]
GOOD, BAD = ["yes!", "great!", "sure!"], ["no.", "bad.", "never."]


def _pairs() -> list[dict]:
    """Every prompt: each answer with "!" preferred to each answer without (9 comparisons a prompt)."""
    return [{"prompt": p, "chosen": g, "rejected": b} for p in PROMPTS for g in GOOD for b in BAD]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    from genlab.train.run import train

    root = tmp_path_factory.mktemp("reward")
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in _pairs()), encoding="utf-8")
    steps = {"steps": 60, "batch_size": 4, "lr": 3e-3, "warmup": 5, "eval_every": 1000, "ckpt_every": 1000}
    summary = train(
        family="reward", data=str(root / "pairs.jsonl"), out=root / "rm", quiet=True, overrides=TINY | steps
    )
    return {"root": root, "rm": root / "rm", "summary": summary}


@pytest.mark.xdist_group("reward")
def test_a_reward_model_learns_the_preference_and_generalises_to_held_out_prompts(trained):
    held = trained["summary"]["held_out"]
    assert held["val_pairs"] > 0 and held["val_accuracy"] >= 0.9, held
    rm = load_model(trained["rm"], task="reward")
    r = rm.score(["how many?", "how many?"], ["wonderful!", "no."])  # a prompt and an answer never seen
    assert r[0] > r[1]


@pytest.mark.xdist_group("reward")
def test_demonstrations_are_centred_at_zero(trained):
    held = trained["summary"]["held_out"]
    rm = load_model(trained["rm"], task="reward")
    answers = rm.score(PROMPTS * 2, GOOD[:1] * len(PROMPTS) + BAD[:1] * len(PROMPTS))
    spread = float(answers.max() - answers.min())
    assert abs(held["demo_mean_reward"]) < 0.25 * spread, (held, spread)


def test_the_loss_averages_each_prompts_comparisons_first():
    from genlab.data.chat import SPECIALS
    from genlab.data.tokenizers import CharTokenizer, with_specials
    from genlab.models.reward import RewardConfig, RewardModel, _group_batch

    tok = with_specials(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz?!. "), SPECIALS)
    torch.manual_seed(0)
    rm = RewardModel(RewardConfig(vocab_size=tok.vocab_size, center_weight=0.0, **TINY), tok)
    seqs = [rm.encode_answer("a?", t) for t in ("x", "y", "z", "w")]
    groups = [[(0, 1), (0, 2), (1, 2)], [(3, 0)]]  # a prompt with three comparisons, one with one
    r = rm.score_seqs(seqs)
    first = -F.logsigmoid(torch.stack([r[0] - r[1], r[0] - r[2], r[1] - r[2]])).mean()
    second = -F.logsigmoid(r[3] - r[0])
    got = rm.loss(_group_batch(seqs, groups))
    assert torch.allclose(got, (first + second) / 2, atol=1e-6)


def test_rows_batched_by_length_come_back_in_their_own_order_with_gradients():
    from genlab.data.chat import SPECIALS
    from genlab.data.tokenizers import CharTokenizer, with_specials
    from genlab.models.reward import RewardConfig, RewardModel

    tok = with_specials(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz?!. "), SPECIALS)
    torch.manual_seed(0)
    rm = RewardModel(RewardConfig(vocab_size=tok.vocab_size, **TINY), tok).eval()
    seqs = [rm.encode_answer("why?", "ab" * n) for n in (9, 1, 20, 4, 5, 13, 0, 7)]  # lengths out of order
    alone = torch.cat([rm.score_seqs([s], batch_size=1) for s in seqs])
    batched = rm.score_seqs(seqs, batch_size=3)
    assert torch.allclose(batched, alone, atol=1e-5) and len(set(alone.tolist())) == len(seqs)
    batched.sum().backward()
    assert rm.head.weight.grad is not None and rm.head.weight.grad.abs().sum() > 0
    assert rm.score_seqs([]).shape == (0,)


def test_pairs_group_by_prompt_and_system():
    pairs = [Pair("a", "x", "y"), Pair("b", "x", "y"), Pair("a", "y", "z"), Pair("a", "x", "z", system="s")]
    assert [len(g) for g in by_prompt(pairs)] == [2, 1, 1]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not JSON"),
        ('{"prompt": "a", "chosen": "x"}', '"rejected" must be a string'),
        ('{"prompt": "a", "chosen": "same", "rejected": "same"}', "chosen equals rejected"),
        ('{"prompt": "a", "chosen": " ", "rejected": "x"}', "empty answer"),
        ('{"prompt": "a<|end|>", "chosen": "x", "rejected": "y"}', "template token"),
        ('["a", "b"]', 'expected an object with "prompt"'),
    ],
)
def test_a_bad_pairs_line_is_refused_with_its_line_number(tmp_path, cli, line, needle):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "a", "chosen": "x", "rejected": "y"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(GenlabError, match="line 2"):
        read_pairs(path)
    r = cli("train", "reward", "--data", str(path), "--out", str(tmp_path / "rm"), "--quiet")
    one_line_error(r, "line 2", needle)
    assert not (tmp_path / "rm").exists()


def test_init_must_be_a_language_model(tmp_path, cli):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in _pairs()[:4]), encoding="utf-8")
    r = cli("train", "reward", "--data", str(path), "--init", "diffusion-digits", "--out", str(tmp_path / "rm"))
    one_line_error(r, "--init", "diffusion", "gpt or chat")
    assert not (tmp_path / "rm").exists()


def test_a_reward_model_knows_the_world_of_the_model_it_started_from(tmp_path, cli):
    """Its domain is its --init model's (chat-kjv: the bundled dialogues; that model's card is not its card), with
    the pairs it was tuned on."""
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in _pairs()[:8]), encoding="utf-8")
    r = cli("train", "reward", "--data", str(path), "--init", "chat-kjv", "--steps", "1", "--out", str(tmp_path / "rm"),
            "--quiet")  # fmt: skip
    assert r.code == 0, r
    domain = json.loads((tmp_path / "rm" / "config.json").read_text())["run"]["domain"]
    assert domain == {"kind": "short English small-talk dialogues", "generator": "chatterbot-corpus",
                      "tuned_on": str(path)}  # fmt: skip


def test_a_reward_model_draws_no_samples(trained):
    rm = load_model(trained["rm"], task="reward")
    with pytest.raises(GenlabError, match="draws no samples"):
        rm.sample(1, "hi")


@pytest.mark.parametrize("overrides, dropout", [({}, 0.0), ({"dropout": 0.3}, 0.3)])
def test_a_reward_model_keeps_its_own_dropout_not_the_sft_models(tmp_path, overrides, dropout):
    """chat-kjv trained with dropout 0.2; a reward model started from it takes its shape but not that (init_keeps),
    unless --set gives one; a chat model fine-tuned from it keeps it."""
    from genlab.assets import default_model
    from genlab.train.runs import plan_run

    sft = default_model("chat")
    assert json.loads((sft / "config.json").read_text())["config"]["dropout"] == 0.2
    plan = plan_run(tmp_path / "rm", modality="reward", family="reward", preset="tiny", overrides=overrides,
                    resume=False, init=sft)  # fmt: skip
    assert plan.model_config.dropout == dropout and plan.model_config.n_embd == 192
    chat = plan_run(tmp_path / "sft2", modality="chat", family="chat", preset="tiny", overrides={}, resume=False,
                    init=sft)  # fmt: skip
    assert chat.model_config.dropout == 0.2
