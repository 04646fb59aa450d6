"""``genlab compare chat`` and genlab.eval.compare_chat: best-of-n's KL, the Wilson interval, best-of-n's pick, the
report files, and the inputs it refuses (each one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import math
import shutil
import sys

import pytest
import torch

from genlab.checkpoint import save_model
from genlab.errors import GenlabError, GenlabWarning
from genlab.eval.chat import sample_answers
from genlab.eval.chat_report import write_report
from genlab.eval.compare_chat import (
    Comparison,
    Method,
    WinRate,
    best_of_n_kl,
    compare_chat,
    pick_best,
    wilson_interval,
    win_rate,
)
from genlab.eval.judges import load_judge
from genlab.models.reward import RewardConfig, RewardModel

from .chat_eval_helpers import char_tokenizer, prompts_file, save_tiny_chat, tiny_chat

PROMPTS = ["hello", "how are you", "is it nice", "good morning"]


def tiny_reward(seed: int, tokenizer=None) -> RewardModel:  # noqa: ANN001
    torch.manual_seed(seed)
    tok = tokenizer if tokenizer is not None else char_tokenizer()
    cfg = RewardConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=32)
    return RewardModel(cfg, tok).eval()


class CharCount:
    """A stand-in reward model: an answer's length in characters (times ``sign``)."""

    def __init__(self, tokenizer, sign: float = 1.0) -> None:  # noqa: ANN001
        self.tokenizer, self.sign, self.path = tokenizer, sign, None

    def require_tokenizer(self):  # noqa: ANN201
        return self.tokenizer

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.tensor([self.sign * len(r) for r in responses], dtype=torch.float32)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A reference chat model, a second policy with its tokenizer, two reward models, and a prompts file."""
    root = tmp_path_factory.mktemp("compare")
    ref = save_tiny_chat(root / "sft", seed=0)
    save_tiny_chat(root / "ppo", seed=1)
    save_model(tiny_reward(2), root / "rm")
    save_model(tiny_reward(3), root / "rm2")
    prompts_file(root / "prompts.txt", PROMPTS + ["<b>&amp;</b>"])
    return {"root": root, "sft": ref, "ppo": root / "ppo", "rm": root / "rm", "rm2": root / "rm2",
            "prompts": root / "prompts.txt"}  # fmt: skip


# --- the formulas ---------------------------------------------------------------------------------------------------
def test_best_of_n_kl_is_log_n_minus_n_minus_1_over_n():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl(64) == pytest.approx(math.log(64) - 63 / 64)
    with pytest.raises(ValueError):
        best_of_n_kl(0)


@pytest.mark.parametrize("n", [2, 4, 16, 64])
def test_best_of_n_kl_matches_the_exact_kl_of_best_of_n_over_many_outcomes(n):
    # π_ref uniform over M outcomes with distinct rewards (ranked 1..M): best-of-n takes outcome i with probability
    # (i/M)^n − ((i−1)/M)^n; its KL from π_ref tends to log n − (n−1)/n as M grows.
    M = 200_000
    cdf = torch.arange(M + 1, dtype=torch.float64) / M
    p = cdf[1:] ** n - cdf[:-1] ** n
    p = p[p > 0]
    kl = float((p * (p.log() + math.log(M))).sum())
    assert kl == pytest.approx(best_of_n_kl(n), abs=2e-3)


def test_wilson_interval_on_known_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_win_rate_counts_a_tie_as_half():
    # answers vs the reference's: a win, a loss, the same text (tie), the same score (tie)
    w = win_rate(["a", "b", "c", "d"], [2.0, 0.0, 5.0, 1.0], ["x", "y", "c", "z"], [1.0, 1.0, 0.0, 1.0])
    assert (w.wins, w.ties, w.losses) == (1, 2, 1)
    assert w.rate == pytest.approx(0.5)
    f = w.figures()
    assert (f["win_low"], f["win_high"]) == pytest.approx(wilson_interval(2, 4))
    assert math.isnan(WinRate().rate)


def test_pick_best_takes_the_highest_of_the_first_n():
    r = torch.tensor([[0.0, 3.0, 1.0, 9.0], [5.0, 1.0, 5.0, 2.0]])
    assert pick_best(r, 1).tolist() == [0, 0]
    assert pick_best(r, 2).tolist() == [1, 0]
    assert pick_best(r, 3).tolist() == [1, 0]  # equal rewards: the first
    assert pick_best(r, 4).tolist() == [3, 0]


# --- the comparison ---------------------------------------------------------------------------------------------------
def test_best_of_n_keeps_the_answer_the_reward_model_scores_highest():
    ref = tiny_chat(0)
    tok = ref.require_tokenizer()
    judge = load_judge("length")
    result = compare_chat(ref, [], PROMPTS, judge, CharCount(tok), CharCount(tok, -1.0), best_of=(4, 1, 8),
                          max_tokens=10, seed=3)  # fmt: skip
    pool = sample_answers(ref, PROMPTS, n=8, max_tokens=10, seed=4)  # the pool: the seed after --seed
    by_n = {m.n: m for m in result.methods if m.kind == "best-of"}
    assert sorted(by_n) == [1, 4, 8]
    for n, m in by_n.items():
        assert m.figures["kl"] == pytest.approx(best_of_n_kl(n)) and m.figures["kl_method"] == "analytic"
        for i, text in enumerate(m.texts):
            first_n = pool.texts[i * 8 : i * 8 + n]
            assert len(text) == max(len(t) for t in first_n)
            assert text == next(t for t in first_n if len(t) == len(text))  # the first of the longest
    assert by_n[1].texts == pool.texts[::8]
    reference = result.methods[0]
    assert reference.kind == "reference" and reference.figures["kl"] == 0.0
    assert reference.texts == sample_answers(ref, PROMPTS, n=1, max_tokens=10, seed=3).texts
    # the held-out stand-in prefers shorter answers: the longest of 8 never beats a shorter reference answer
    w = by_n[8].figures
    assert w["wins"] + w["ties"] + w["losses"] == len(PROMPTS)
    longer = sum(len(a) > len(b) for a, b in zip(by_n[8].texts, reference.texts, strict=True))
    assert w["losses"] == longer


def test_a_run_is_measured_against_the_reference():
    ref, run = tiny_chat(0), tiny_chat(1)
    tok = ref.require_tokenizer()
    runs = [("ppo", run), ("same", tiny_chat(0))]  # "same": the reference's weights, answering with its seed
    result = compare_chat(ref, runs, PROMPTS, load_judge("length"), CharCount(tok), CharCount(tok, -1.0),
                          best_of=(1,), max_tokens=10)  # fmt: skip
    ppo, same = (next(m for m in result.methods if m.name == name) for name in ("ppo", "same"))
    assert ppo.group == "chat" and ppo.figures["kl_method"] == "estimate"
    assert abs(ppo.figures["kl"]) > 1e-3  # another model: a sampled estimate, which may fall below 0 on few answers
    assert ppo.figures["wins"] + ppo.figures["ties"] + ppo.figures["losses"] == len(PROMPTS)
    assert 0 <= ppo.figures["win_low"] <= ppo.figures["win_rate"] <= ppo.figures["win_high"] <= 1
    assert same.texts == result.methods[0].texts and same.figures["kl"] == pytest.approx(0, abs=1e-5)
    assert same.figures["ties"] == len(PROMPTS) and same.figures["win_rate"] == 0.5


def test_runs_are_connected_by_family_method_and_starting_policy():
    from types import SimpleNamespace as NS

    from genlab.eval.compare_chat import group_of

    def run(family: str, method: str | None = None, policy: str | None = None) -> NS:
        return NS(family=family, config=NS(method=method) if method else NS(), run={"policy": policy} if policy else {})

    assert group_of(run("chat")) == "chat"
    assert group_of(run("rlhf", "ppo")) == "rlhf ppo"  # a run that does not record its policy
    first, second = run("rlhf", "dpo", "runs/sft"), run("rlhf", "dpo", "/x/runs/dpo-beta0.3")
    assert (group_of(first), group_of(second)) == ("rlhf dpo from sft", "rlhf dpo from dpo-beta0.3")


# --- the command ------------------------------------------------------------------------------------------------------
def command(c: dict, out, *extra: str) -> list[str]:  # noqa: ANN001
    return ["compare", "chat", str(c["ppo"]), "--reference", str(c["sft"]), "--reward", str(c["rm"]),
            "--held-out-reward", str(c["rm2"]), "--prompts", str(c["prompts"]), "--best-of", "1,2",
            "--max-tokens", "6", "--out", str(out), *extra]  # fmt: skip


def test_compare_chat_writes_the_report(cli, ckpts, tmp_path):
    r = cli(*command(ckpts, tmp_path / "report", "--json"))
    assert r.code == 0, r
    figures = json.loads(r.out)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["frontier.png", "report.html", "results.json"]
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [m["name"] for m in saved["methods"]] == ["sft (reference)", "ppo", "best-of-1", "best-of-2"]
    assert saved["methods"] == figures["methods"] and saved["prompts"] == 5
    assert saved["held_out_reward"] == str(ckpts["rm2"]) and "one half" in saved["ties"]
    assert len(saved["examples"][0]["answers"]) == 4
    page = (tmp_path / "report" / "report.html").read_text()
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in page and "<b>&amp;</b>" not in page  # the prompt, escaped
    assert (tmp_path / "report" / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    r = cli(*command(ckpts, tmp_path / "again"))  # without --json: a table, and a progress bar on stderr
    assert r.code == 0 and "best-of-2" in r.out and "wrote frontier.png" in r.out and "reference" in r.err


def test_without_matplotlib_the_rest_is_written_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    figures = {"score": 0.1, "score_se": 0.01, "kl": 0.0, "kl_se": 0.0, "kl_method": "reference", "words": 2.0,
               "tokens": 9.0, "distinct_2": 1.0, "end_rate": 1.0} | WinRate().figures()  # fmt: skip
    comparison = Comparison(["hi"], [Method("sft", "reference", "reference", ["<hello>"], figures)], {"judge": "x"})
    with pytest.warns(GenlabWarning, match="matplotlib is not installed"):
        written = write_report(tmp_path / "r", comparison)
    assert (
        written == ["report.html", "results.json"] and "&lt;hello&gt;" in (tmp_path / "r" / "report.html").read_text()
    )


def bad(cli, argv: list[str], match: str, out) -> None:  # noqa: ANN001
    r = cli(*argv)
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert r.code == 2 and match in lines[-1] and lines[-1].startswith("genlab: error:"), r
    assert sum(": error:" in line for line in lines) == 1 and "Traceback" not in r.err
    assert not out.exists() or not any(out.iterdir())


def test_bad_inputs_are_one_line_and_write_nothing(cli, ckpts, tmp_path):
    c, out = dict(ckpts), tmp_path / "report"
    bad(cli, command(c, out)[:-2] + ["--best-of", "0", "--out", str(out)], "--best-of: 0 is out of range", out)
    bad(cli, command(c, out)[:-2] + ["--best-of", "1,0", "--out", str(out)], "out of range", out)
    root = c["root"]
    save_model(tiny_reward(4, char_tokenizer("abc xyz")), root / "rm-other")
    bad(cli, command(c | {"rm": root / "rm-other"}, out), "--reward: its tokenizer differs", out)
    bad(cli, command(c | {"rm2": root / "rm-other"}, out), "--held-out-reward: its tokenizer differs", out)
    bad(cli, command(c | {"ppo": c["rm"]}, out), "needs a chat model", out)  # a reward model is not a policy
    save_tiny_chat(root / "other-tok", seed=1, tokenizer=char_tokenizer("abc xyz"))
    bad(cli, command(c | {"ppo": root / "other-tok"}, out), "other-tok: its tokenizer differs", out)
    bad(cli, command(c | {"rm2": c["rm"]}, out), "is the --reward model", out)
    shutil.copytree(c["rm"], root / "rm-copy")  # the same weights in another folder
    bad(cli, command(c | {"rm2": root / "rm-copy"}, out), "is the --reward model", out)
    policy = tiny_chat(1)
    save_model(policy, root / "ppo-rm2", run={"reward": str(c["rm2"])})  # trained against the held-out model
    bad(cli, command(c | {"ppo": root / "ppo-rm2"}, out), "never evaluated with the reward model it was trained", out)
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = cli(*command(c, out))
    assert r.code == 2 and "holds files" in r.err and (out / "keep.txt").read_text() == "mine"
    (tmp_path / "file.txt").write_text("mine")
    bad(cli, command(c, tmp_path / "file.txt"), "is a file", tmp_path / "none")
    bad(cli, command(c, c["prompts"]), "genlab never overwrites an input", tmp_path / "none")


def test_compare_chat_refuses_a_missing_run_option(cli, ckpts, tmp_path):
    r = cli("compare", "chat", "--reference", ckpts["sft"], "--reward", ckpts["rm"], "--held-out-reward",
            ckpts["rm2"], "--out", tmp_path / "r")  # fmt: skip
    assert r.code == 2 and "RUN" in r.err and not (tmp_path / "r").exists()
    with pytest.raises(GenlabError, match="at least 1"):
        compare_chat(tiny_chat(0), [], PROMPTS, load_judge("length"), None, None, best_of=(0,))
