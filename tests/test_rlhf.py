"""The rlhf family: PPO against a reward model and DPO on pairs, trained by the one Trainer from a tiny SFT policy.

A PPO run with a stand-in reward (it counts a character) must raise that reward; a DPO step must raise the chosen
answer over the rejected; a run resumed at a rollout boundary ends as one that never stopped; bad inputs are one
line (exit 2); the result loads as a chat model."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genlab.checkpoint import load_model, save_model
from genlab.data.chat import SPECIALS
from genlab.data.tokenizers import CharTokenizer, with_specials
from genlab.errors import GenlabError, GenlabWarning
from genlab.models.base import TrainOptions
from genlab.models.reward import RewardConfig, RewardModel
from genlab.models.rlhf import RLHF
from genlab.sampling.text import generate_batch, generate_ids
from genlab.train.runs import resolve_configs
from genlab.train.trainer import Trainer

from .test_cli import one_line_error

QUESTIONS = [f"{w} {n}?" for w in ("how", "who", "what", "why", "when") for n in ("one", "two", "three", "four")]
ANSWERS = ["ok.", "yes!", "no.", "sure.", "maybe!", "fine."]
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 64}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny SFT policy (each question answered by several short answers), prompts, pairs and reward models with
    random weights: one on the policy's tokenizer, one on another, one with a shorter context."""
    from genlab.train.run import train

    root = tmp_path_factory.mktemp("rlhf")
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for i, q in enumerate(QUESTIONS) for a in ANSWERS[i % 3 : i % 3 + 4]]  # fmt: skip
    (root / "sft.jsonl").write_text("\n".join(json.dumps(r) for r in rows * 3) + "\n", encoding="utf-8")
    steps = {"steps": 40, "batch_size": 16, "lr": 3e-3, "warmup": 5, "eval_every": 1000, "ckpt_every": 1000}
    train(family="chat", data=str(root / "sft.jsonl"), out=root / "sft", quiet=True, overrides=TINY | steps)
    (root / "prompts.txt").write_text("\n".join(QUESTIONS) + "\n", encoding="utf-8")
    pairs = [{"prompt": q, "chosen": "yes!", "rejected": "no."} for q in QUESTIONS]
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(p) for p in pairs) + "\n", encoding="utf-8")
    tok = load_model(root / "sft").tokenizer
    other = with_specials(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz?!. "), SPECIALS)
    for name, t, block in (("rm", tok, 64), ("rm-other", other, 64), ("rm-short", tok, 32)):
        save_model(RewardModel(RewardConfig(vocab_size=t.vocab_size, **TINY | {"block_size": block}), t), root / name)
    return {"root": root, "sft": root / "sft", "prompts": root / "prompts.txt", "pairs": root / "pairs.jsonl",
            "rm": root / "rm", "rm-other": root / "rm-other", "rm-short": root / "rm-short"}  # fmt: skip


class CharReward(torch.nn.Module):
    """A stand-in reward model with RewardModel's interface: the number of ``char`` in each row up to its end."""

    def __init__(self, tokenizer, char: str) -> None:  # noqa: ANN001
        super().__init__()
        self.tokenizer, self.id = tokenizer, tokenizer.encode(char)[0]
        self.register_buffer("anchor", torch.zeros(()))  # gives the module a device

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def score_ids(self, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        upto = torch.arange(ids.shape[1], device=ids.device)[None] <= last[:, None]
        return ((ids == self.id) & upto).float().sum(1)


def build(world, method: str, data: str, reward=None, **overrides):  # noqa: ANN001, ANN201
    policy = load_model(world["sft"], task="chat")
    parts = {"policy": policy} | ({"reward": reward} if reward is not None else {})
    mcfg, tcfg = resolve_configs(RLHF, "tiny", {"method": method} | overrides)
    data = RLHF.prepare_data(data, mcfg, TrainOptions(), parts)
    model = RLHF.build(mcfg, data, parts)
    model.attach_parts(parts)
    return model, data, tcfg


def test_ppo_raises_a_stand_in_reward(world, tmp_path):
    policy = load_model(world["sft"], task="chat")
    reward = CharReward(policy.tokenizer, "!")
    settings = dict(rollout=16, batch_size=8, ppo_epochs=2, max_new_tokens=8, lr=3e-3, min_lr=3e-3, steps=60,
                    eval_every=1000, ckpt_every=1000, eval_batches=1, kl_coef=0.01)  # fmt: skip
    model, data, tcfg = build(world, "ppo", str(world["prompts"]), reward, **settings)
    assert len(data.train) + len(data.val) == len(QUESTIONS)
    trainer = Trainer(model, tcfg, batches=model.batches(data, batch_size=8, seed=0, rank=0), out_dir=tmp_path,
                      quiet=True)  # fmt: skip
    trainer.fit()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 60 and all({"reward", "kl", "entropy", "resp_len", "clip_frac", "approx_kl",
                                     "value_loss"} <= set(r) for r in lines)  # fmt: skip
    per_rollout = [r["reward"] for r in lines[::4]]  # 4 steps per rollout: 2 epochs × 16 / 8
    first, last = sum(per_rollout[:3]) / 3, sum(per_rollout[-3:]) / 3
    assert last > first + 0.5, per_rollout
    assert lines[-1]["kl"] > 0  # the policy moved away from the reference to get there
    figures = model.evaluate(data.train, batches=1, batch_size=16)
    assert figures["val_reward"] > figures["val_reward_start"] + 0.5, figures


def test_a_rollout_draws_with_the_current_policy_and_a_non_finite_kl_stops(world):
    policy = load_model(world["sft"], task="chat")
    model, data, _ = build(world, "ppo", str(world["prompts"]), CharReward(policy.tokenizer, "!"), rollout=8)
    batch = model.batches(data, batch_size=4, seed=0, rank=0)
    first = batch(0)
    assert first["ids"].shape[0] == 4
    whole = model.draw_rollout(data.train, seed=1)  # advantages whitened over the rollout's answer tokens
    assert torch.allclose((whole["advantages"] * whole["mask"]).sum(), torch.tensor(0.0), atol=1e-3)
    assert model.train_metrics()["kl"] == pytest.approx(0.0, abs=1e-5)  # the policy still is the reference
    assert torch.equal(batch(0)["ids"], first["ids"])  # the same rollout, the same minibatch
    with torch.no_grad():
        model.part("policy").wte.weight[0, 0] = float("nan")
    with pytest.raises(GenlabError, match="KL to the reference became nan"):
        model.batches(data, batch_size=4, seed=0, rank=0)(0)


def test_end_penalty_lowers_the_return_of_answers_cut_before_they_closed(world):
    policy = load_model(world["sft"], task="chat")
    rollouts = {}
    for penalty in (0.0, 5.0):
        model, data, _ = build(world, "ppo", str(world["prompts"]), CharReward(policy.tokenizer, "!"), rollout=16,
                               max_new_tokens=3, end_penalty=penalty)  # fmt: skip
        rollouts[penalty] = model.draw_rollout(data.train, seed=0)
        end_rate = model.train_metrics()["end_rate"]
    a, b = rollouts[0.0], rollouts[5.0]
    assert torch.equal(a["ids"], b["ids"])  # the same answers; 3 tokens cut some of them
    mask = a["mask"].bool()
    last = (a["mask"] * torch.arange(mask.shape[1])).amax(1).long()
    stops = {policy.tokenizer.special_id(t) for t in SPECIALS}
    closed = torch.tensor([int(a["ids"][r, last[r] + 1]) in stops for r in range(len(last))])
    assert 0 < closed.sum() < len(closed) and end_rate == pytest.approx(closed.float().mean().item())
    gap = (a["returns"] - b["returns"])[mask]  # γ = λ = 1: every token's return holds the final reward
    rows = torch.arange(len(last))[:, None].expand_as(mask)[mask]
    assert torch.allclose(gap, torch.where(closed[rows], 0.0, 5.0), atol=1e-4)


def test_ppo_update_under_autocast_starts_at_ratio_one(world):
    """The trainer autocasts the loss (bf16 on a GPU; here on the CPU) but the rollout was scored in float32: the
    update must still see π = π_old before its first step, or clipping bites on noise."""
    policy = load_model(world["sft"], task="chat")
    model, data, _ = build(world, "ppo", str(world["prompts"]), CharReward(policy.tokenizer, "!"), rollout=8)
    batch = model.batches(data, batch_size=8, seed=0, rank=0)(0)
    model.train_metrics()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        model.loss(batch)
    figures = model.train_metrics()
    assert figures["approx_kl"] == pytest.approx(0.0, abs=1e-6) and figures["clip_frac"] == 0.0, figures


def _weights(d: Path) -> dict[str, torch.Tensor]:
    return load_file(str(d / "model.safetensors"))


def test_ppo_through_the_cli_resumes_exactly_at_a_rollout_boundary_and_loads_as_a_chat_model(cli, world, tmp_path):
    args = ["train", "rlhf", "--method", "ppo", "--policy", world["sft"], "--reward", world["rm"], "--prompts",
            world["prompts"], "--set", "rollout=8", "--set", "batch_size=4", "--set", "ppo_epochs=1", "--set",
            "max_new_tokens=8", "--set", "adaptive_kl=true", "--set", "kl_coef=0.05", "--set", "target_kl=0.001",
            "--set", "ckpt_every=2",
            "--set", "eval_batches=1", "--quiet", "--json"]  # fmt: skip
    r = cli(*args, "--steps", "4", "--out", tmp_path / "whole")
    assert r.code == 0, r
    held = json.loads(r.out)["held_out"]
    assert {"val_reward", "val_kl", "val_reward_start"} <= set(held)
    assert cli(*args, "--steps", "2", "--out", tmp_path / "split").code == 0
    r = cli("train", "rlhf", "--out", tmp_path / "split", "--resume", "--steps", "4", "--quiet")
    assert r.code == 0, r
    whole, split = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert whole.keys() == split.keys() and all(torch.equal(whole[k], split[k]) for k in whole)
    assert whole["kl_coef_now"].item() < 0.05  # the adaptive β fell towards a tiny target, and was resumed
    sft_domain = load_model(world["sft"]).run["domain"]  # the policy's world, not "your own data (prompts.txt)"
    for run in ("whole", "split"):
        domain = json.loads((tmp_path / run / "config.json").read_text())["run"]["domain"]
        assert domain == sft_domain | {"tuned_on": str(world["prompts"])}, domain
    model = load_model(tmp_path / "whole", task="chat")
    assert model.family == "rlhf" and hasattr(model, "value_head")
    assert isinstance(model.sample(1, "how one?", max_tokens=4, generator=torch.Generator().manual_seed(0))[0], str)


def test_dpo_starts_at_log_2_and_a_step_raises_the_chosen_over_the_rejected(world):
    model, data, _ = build(world, "dpo", str(world["pairs"]), lr=1e-2)
    assert not hasattr(model, "value_head")  # a DPO model holds no value head
    batch = data.train.batch(list(range(len(data.train))))
    assert model.loss(batch).item() == pytest.approx(math.log(2), abs=1e-5)
    before = model.pair_logprobs(batch)[0].detach()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.loss(batch).backward()
    opt.step()
    after = model.pair_logprobs(batch)[0].detach()
    B = len(data.train)
    assert (after[:B] - after[B:]).mean() > (before[:B] - before[B:]).mean()
    assert model.train_metrics()["accuracy"] == 0.0  # recorded at π = π_ref: no pair ordered yet


def test_rpo_alpha_adds_the_chosen_answers_nll_per_token_and_holds_them_up(world):
    model, data, _ = build(world, "dpo", str(world["pairs"]))
    batch = data.train.batch(list(range(len(data.train))))
    B = len(data.train)
    logp = model.pair_logprobs(batch)[0].detach()
    nll = -(logp[:B] / batch["mask"][:B].sum(1)).mean().item()  # nats per token of the chosen answers
    assert nll > 0
    rpo, _, _ = build(world, "dpo", str(world["pairs"]), rpo_alpha=2.0)
    assert rpo.loss(batch).item() == pytest.approx(math.log(2) + 2.0 * nll, rel=1e-5)
    assert rpo.train_metrics()["chosen_nll"] == pytest.approx(nll, rel=1e-5)
    shifts = {}
    for name, m in (("dpo", model), ("rpo", rpo)):  # the same steps with and without the NLL term
        opt = torch.optim.SGD(m.parameters(), lr=0.05)
        for _ in range(3):
            opt.zero_grad()
            m.loss(batch).backward()
            opt.step()
        shifts[name] = (m.pair_logprobs(batch)[0].detach()[:B] - logp[:B]).mean().item()
    assert shifts["rpo"] > shifts["dpo"]  # the chosen answers keep more of their probability


def test_dpo_through_the_cli_learns_the_pairs_and_warns_when_both_answers_fall(cli, world, tmp_path):
    r = cli("train", "rlhf", "--method", "dpo", "--policy", world["sft"], "--data", world["pairs"], "--set",
            "beta=0.5", "--set", "lr=3e-3", "--steps", "30", "--val-fraction", "0", "--out", tmp_path / "dpo",
            "--quiet", "--json")  # fmt: skip
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert summary["held_out"]["val_accuracy"] == 1.0 and summary["held_out"]["val_loss"] < math.log(2) / 2
    metrics = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert {"accuracy", "margin", "chosen_logp", "rejected_logp"} <= set(metrics[0])
    assert "value_head.weight" not in _weights(tmp_path / "dpo")
    model, data, _ = build(world, "dpo", str(world["pairs"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = model.final_figures(data, {"val_chosen_shift": -1.0, "val_rejected_shift": -3.0})
    assert figures["both_fell"] and any(issubclass(w.category, GenlabWarning) for w in caught)
    assert "both_fell" not in model.final_figures(data, {"val_chosen_shift": 0.5, "val_rejected_shift": -3.0})


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--method", "dpo", "--set", "beta=-1"], ["beta=-1.0"]),
        (["--method", "dpo", "--set", "rpo_alpha=-0.5"], ["rpo_alpha=-0.5"]),
        (["--method", "ppo", "--reward", "RM", "--set", "kl_coef=-0.1"], ["kl_coef=-0.1"]),
        (["--method", "ppo", "--reward", "RM-OTHER"], ["--reward", "tokenizer"]),
        (["--method", "ppo", "--reward", "RM-SHORT"], ["--reward", "context (32 tokens)"]),
        (["--method", "ppo"], ["--reward DIR"]),
        (["--method", "ppo", "--reward", "RM", "--policy", "gpt-kjv"], ["gpt", "chat model"]),
        (["--method", "ppo", "--reward", "RM", "--policy", "RM"], ["reward", "chat model"]),
        (["--method", "sft", "--reward", "RM"], ["method='sft'"]),
        (["--method", "ppo", "--reward", "RM", "--set", "max_new_tokens=64"], ["max_new_tokens=64"]),
        (["--method", "ppo", "--reward", "RM", "--set", "n_layer=2"], ["--set n_layer"]),
        (["--method", "dpo", "--init", "SFT"], ["--init"]),
        (["--method", "dpo", "--reward", "RM"], ["--reward", "does not use it"]),
        (["--method", "ppo", "--reward", "RM", "--set", "end_penalty=-1"], ["end_penalty=-1"]),
    ],
)
def test_bad_rlhf_input_is_one_line_and_leaves_no_run(cli, world, tmp_path, extra, needles):
    names = {"RM": world["rm"], "RM-OTHER": world["rm-other"], "RM-SHORT": world["rm-short"], "SFT": world["sft"]}
    extra = [names.get(a, a) for a in extra]
    data = world["pairs"] if "dpo" in extra else world["prompts"]
    policy = [] if "--policy" in extra else ["--policy", world["sft"]]
    r = cli("train", "rlhf", *policy, "--data", data, *extra, "--out", tmp_path / "run", "--steps", "1", "--quiet")
    one_line_error(r, *needles)
    assert not (tmp_path / "run").exists()


def test_prompts_that_leave_no_room_for_an_answer_are_refused(world, tmp_path):
    long = tmp_path / "long.txt"
    long.write_text("x" * 60 + "\n", encoding="utf-8")
    with pytest.raises(GenlabError, match="every prompt is longer"):
        build(world, "ppo", str(long), CharReward(load_model(world["sft"]).tokenizer, "!"))


def test_generate_batch_decodes_prompts_of_different_lengths_as_one_at_a_time_would(world):
    model = load_model(world["sft"], task="chat")
    tok = model.tokenizer
    prompts = [tok.encode(f"<|user|>{q}<|end|><|assistant|>") for q in ("how one?", "a", "who are you four?")]
    stops = [tok.special_id(s) for s in SPECIALS]
    batch = generate_batch(model, prompts, max_tokens=10, stop_ids=stops, temperature=0)
    alone = [generate_ids(model, p, max_tokens=10, temperature=0, stop=SPECIALS).ids[0] for p in prompts]
    assert batch == alone
    with pytest.raises(GenlabError, match="no room"):
        generate_batch(model, [[1] * 60], max_tokens=10)


def _decode_without_dropping_rows(model, prompts, max_tokens, stops, seed):
    """Batched sampling as generate_batch did before finished rows left the batch: every row fed every step."""
    n, lengths = len(prompts), torch.tensor([len(p) for p in prompts])
    fed = torch.zeros(n, int(lengths.max()) + max_tokens, dtype=torch.long)
    for r, p in enumerate(prompts):
        fed[r, : len(p)] = torch.tensor(p)
    g, done, state = torch.Generator().manual_seed(seed), torch.zeros(n, dtype=torch.bool), model.init_state(n)
    x = fed[:, : int(lengths.min())]
    for t in range(int(lengths.min()), fed.shape[1]):
        logits, state = model.step(x, state)
        nxt = torch.multinomial(logits.float().softmax(-1), 1, generator=g)[:, 0]
        answering = (t >= lengths) & ~done
        fed[:, t] = torch.where(answering, nxt, fed[:, t])
        done |= answering & (torch.isin(nxt, torch.tensor(stops)) | (t + 1 - lengths >= max_tokens))
        if bool(done.all()):
            break
        x = fed[:, t : t + 1]
    out = []
    for r, p in enumerate(prompts):
        new = fed[r, len(p) : len(p) + max_tokens].tolist()
        end = next((i + 1 for i, tok in enumerate(new) if tok in stops), None)
        out.append(new[:end] if end is not None else new)
    return out


def test_finished_rows_leave_the_batch_and_every_sampled_answer_stays_the_same(world, monkeypatch):
    model = load_model(world["sft"], task="chat").eval()
    tok = model.tokenizer
    prompts = [tok.encode(f"<|user|>{q}<|end|><|assistant|>") for q in QUESTIONS for _ in range(4)]
    stops = [tok.special_id(s) for s in SPECIALS]
    sizes = []
    keep_rows = model.keep_rows
    monkeypatch.setattr(model, "keep_rows", lambda state, rows: sizes.append(len(rows)) or keep_rows(state, rows))
    batch = generate_batch(model, prompts, max_tokens=24, stop_ids=stops, generator=torch.Generator().manual_seed(5))
    assert sizes and min(sizes) < len(prompts)  # the batch shrank as answers ended
    assert len({len(a) for a in batch}) > 1  # answers of several lengths
    assert batch == _decode_without_dropping_rows(model, prompts, 24, stops, seed=5)


@pytest.mark.parametrize(
    ("setting", "needle"),
    [(("dropout=0.2",), "ppo needs dropout=0"), (("adaptive_kl=true", "kl_coef=0"), "adaptive_kl scales kl_coef")],
)
def test_ppo_settings_that_cannot_work_are_refused(setting, needle):
    from genlab.config import apply_overrides
    from genlab.models.rlhf import RLHFConfig

    with pytest.raises(GenlabError, match=needle):
        apply_overrides([RLHFConfig()], dict(s.split("=") for s in setting))


@pytest.mark.slow
def test_ppo_under_torchrun_on_two_processes(world, tmp_path):
    """Issue 17's scale point: the same command under torchrun; rank 0 alone writes the run, and the adaptive KL
    coefficient it records is steered by the KL of both ranks' rollouts."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "genlab",
           "train", "rlhf", "--method", "ppo", "--policy", world["sft"], "--reward", world["rm"], "--data",
           world["prompts"], "--out", out, "--steps", "8", "--set", "rollout=8", "--set", "batch_size=4", "--set",
           "max_new_tokens=8", "--set", "adaptive_kl=true", "--set", "eval_every=1000", "--device", "cpu"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["step"] == 8
    records = [json.loads(line) for line in (out / "metrics.jsonl").open() if '"kl_coef"' in line]
    assert records and all(r["kl_coef"] > 0 and math.isfinite(r["kl"]) for r in records)
    from genlab.data.chat import Message

    answers = load_model(out, task="chat").respond([Message("user", QUESTIONS[0])], n=2, max_tokens=4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)  # the run loads as a chat model
