"""Benchmark: the whole chat pipeline on the bundled data (SFT → preference pairs → reward models → PPO and DPO →
the comparison), timed per stage; one JSON object on stdout with the targets beside the measured figures.

    PYTHONPATH=src python bench/chat.py --out runs/chat-bench                 # 56 min, 2 EPYC cores (12-07 run)
    PYTHONPATH=src python bench/chat.py --stages sft,pairs,rm,ppo,dpo,dpo2,ppo2,compare --out D  # and PPO's 2nd round
    PYTHONPATH=src python bench/chat.py --quick --out /tmp/chat-quick          # a smoke run: about 8 minutes
    PYTHONPATH=src python bench/chat.py --stages sft,pairs,rm,compare --out D  # without the rlhf family (PPO, DPO)

Every stage is the ``genlab`` command a user would type (run as a subprocess, ``--json``), its output in ``--out``:
  sft      genlab train chat --data chatterbot --init gpt-kjv --set dropout=0.2        → sft/
  pairs    genlab label pairs --model sft --judge sentiment --n 48, on each half of prompts:train → pairs-a.jsonl,
           pairs-b.jsonl (halves split by a hash of the prompt: A for the training reward model, B the held-out one)
  rm       genlab train reward --init gpt-kjv --steps 100 on pairs A (seed 0) and on pairs B (seed 1)  → rm/, rm2/
  ppo      genlab train rlhf --method ppo --policy sft --reward rm --prompts prompts:train
           --steps N, saved at N = 240, 264, ..., 384 (each resumed from the one before)  → ppo-step240/, ...
  dpo      genlab train rlhf --method dpo --policy sft --data pairs-a.jsonl --set beta=B --steps 864, B = 0.1 and 0.3
                                                                                    → dpo-beta0.1/, dpo-beta0.3/
  dpo2     a second round (iterated, "online" DPO): genlab label pairs --model dpo-beta0.3 --n 48 --seed 2 on half A
           → pairs-a2.jsonl; genlab train rlhf --method dpo --policy dpo-beta0.3 --data pairs-a2.jsonl --set beta=0.3
           --steps N, saved at N = 72, 144, 216 (each resumed from the one before)      → dpo-round2-step72/, ...
  ppo2     (only when --stages names it) a second round for PPO (an iterated reward model, as InstructGPT and
           Anthropic's online RLHF): genlab label pairs --model ppo-step288 --n 48 --seed 3 on half A
           → pairs-a3.jsonl; genlab train reward --init rm --steps 50 on them → rm-round2/; genlab train rlhf
           --method ppo --policy ppo-step288 --reward rm-round2 --steps N, saved at N = 8, 16, 24, 32, 48, 64
                                                                                    → ppo-round2-step8/, ...
  compare  genlab compare chat ppo-step* dpo-beta* dpo-round2-step* ppo-round2-step* --reference sft --reward rm
           --held-out-reward rm2                                                         → report/
A later stage reuses what an earlier run left in ``--out`` (``--stages compare`` redoes the comparison alone).

Figures beside them: the base model — gpt-kjv in the chat template (its vocabulary grown by the template's tokens,
i.e. the chat model before SFT: ``ChatLM.init_from``) — against SFT on the held-out conversations' assistant loss
and the end rate of answers to prompts:test; the reward models' held-out pair accuracy against the judge's agreement
with the labels of those same pairs (what a perfect reward model could reach); the alignment tax, nats per character
of the held-out tail of the King James Bible (gpt-kjv's pretraining text) for the base model and after each stage.
Targets: each ``true`` (met), ``false`` (missed) or ``null`` (not measured in this run: a stage not run; the
wall-time target under ``--quick`` or a partial ``--stages``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if "OMP_WAIT_POLICY" not in os.environ:  # as genlab's command sets it: torch's workers spin briefly, then sleep
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # (before torch starts its threads; docs/design.md)

import torch  # noqa: E402

from genlab.io import jsonable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sft", "pairs", "rm", "ppo", "dpo", "dpo2", "ppo2", "compare")
# PPO's second round runs when asked (--stages ...,ppo2): since PPO's reward models start from gpt-kjv and PPO keeps
# its end penalty, the first round's frontier lies above the second's (docs/benchmarks.md, 2026-12-07's third run)
DEFAULT_STAGES = tuple(s for s in STAGES if s != "ppo2")
QUICK = {"sft_steps": 30, "pair_prompts": 24, "rm_steps": 20, "ppo_steps": (8, 16), "dpo_steps": 16,
         "dpo2_steps": (8, 16), "ppo2_from": 16, "rm_round2_steps": 10, "ppo2_steps": (8, 16), "prompts": 16,
         "best_of": "1,4,16"}  # fmt: skip
# DPO: three passes of the tiny preset's 288 steps; the reward models: 100 of the preset's 250 steps from gpt-kjv
# (the pretrained model, not the SFT one: on the same pairs 0.750 held out at 100 steps against 0.732 from the SFT
# model at 150, docs/benchmarks.md; 48 answers a prompt make a step 3× the cost of 16's); PPO: checkpoints along
# training, every 3 rollouts (24 steps) from 240 to 384, each a copy of the one before resumed (exact at rollout
# boundaries) — the PPO points of the frontier; PPO's second round from step 288: its reward model is `rm` trained
# 50 steps more on that policy's own labelled answers (0.813 at step 50 of a 100-step run, 0.851 at 100), then PPO
# saved after each rollout to 32 steps, then at 48 and 64 (PPO's pace differs from run to run: one run passed 9.9
# nats at step 48, another stood at 5.5; the points show where this one crosses KL 10)
FULL = {"sft_steps": None, "pair_prompts": None, "rm_steps": 100, "ppo_steps": (240, 264, 288, 312, 336, 360, 384),
        "dpo_steps": 864, "dpo2_steps": (72, 144, 216), "ppo2_from": 288, "rm_round2_steps": 50,
        "ppo2_steps": (8, 16, 24, 32, 48, 64), "prompts": 200, "best_of": "1,4,16,64"}  # fmt: skip
# PPO keeps the tiny preset's end_penalty 1 (an answer cut off unclosed loses 1): a reward model reads an answer at
# its closing <|end|> and never saw one cut off, so what it says of those is an accident of its start. From SFT it
# disliked them (the bench ran with end_penalty 0: 0.219 at 6.9 nats at step 288, 0.054 with the penalty); from
# gpt-kjv it likes them (without the penalty 0.113 at 7.6 nats, end rate 0.33; with it 0.224 at 7.6, end rate 0.88)
PAIR_ANSWERS = 48  # answers sampled a prompt for the pairs: 16 gave the reward model ~5,000 distinct answers, too few
DPO_BETAS = (0.1, 0.3)  # DPO at several β: points of the frontier (the DPO paper's Figure 2)
DPO_RUNS = tuple(f"dpo-beta{b}" for b in DPO_BETAS)
# DPO's second round: pairs drawn from the first round's β 0.3 policy (its own answers, labelled by the judge: the
# labels of iterated or "online" DPO), then DPO from that policy, which is also the round's reference
ROUND2_FROM, ROUND2_BETA, ROUND2_SEED = "dpo-beta0.3", 0.3, 2
PPO_ROUND2_SEED = 3
SPLIT_KEY = "reward-model-half:"  # prompts:train's halves: held_out(SPLIT_KEY + prompt, 0.5) is half B
WALL_TARGET_S = 3600
# The end rate is read with room for 96 characters: 30% of the bundled answers are longer than 64, so a 64-character
# budget cuts answers the data itself would make long (end_rate_64 reports that budget too)
END_ROOM = 96
END_TARGET = 0.95


def rlhf_runs(cfg: dict) -> tuple[str, ...]:
    """The RLHF runs' folder names: the PPO checkpoints along training, DPO at each β, then the second rounds'
    checkpoints along training."""
    return (*(f"ppo-step{n}" for n in cfg["ppo_steps"]), *DPO_RUNS, *(f"dpo-round2-step{n}" for n in cfg["dpo2_steps"]),
            *(f"ppo-round2-step{n}" for n in cfg["ppo2_steps"]))  # fmt: skip


def genlab(*args: object) -> dict:
    """Run ``genlab ARGS --json`` in a fresh process (this checkout's genlab); its JSON object. A failure stops the
    bench with the command's exit status."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "genlab", *map(str, args), "--json"]
    print("$ genlab " + " ".join(map(str, args)), file=sys.stderr)
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench/chat.py: genlab {' '.join(map(str, args[:2]))} failed (exit {done.returncode})")
    return json.loads(done.stdout)


def split_prompts(prompts: list[str]) -> tuple[list[str], list[str]]:
    """prompts:train in two halves by a hash of each prompt (stable on every machine): A (the training reward
    model's) and B (the held-out one's); no prompt in both."""
    from genlab.data.chat import held_out

    return [p for p in prompts if not held_out(SPLIT_KEY + p, 0.5)], [
        p for p in prompts if held_out(SPLIT_KEY + p, 0.5)
    ]


def held_out_agreement(pairs_file: Path) -> dict:
    """The judge's agreement with the labels of the pairs a reward model holds out (the same split as
    genlab.models.reward: by prompt, 10%): the accuracy a perfect reward model could reach there."""
    from genlab.data.chat import held_out
    from genlab.models.reward import RewardModel

    hits, n = 0.0, 0
    for line in pairs_file.read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        if held_out(f"{p.get('system')}\n{p['prompt']}", RewardModel.val_fraction):
            c, r = p["scores"]
            hits += c > r
            n += 1
    return {"judge_agreement_held_out": hits / n if n else None, "held_out_pairs": n}


def bag_of_words(pairs_file: Path) -> dict:
    """The classic reward model a user could fit instead: a logistic regression on word counts (scikit-learn),
    P(chosen ≻ rejected) = σ(w·(counts(chosen) − counts(rejected))), trained on the same pairs the reward model
    trains on and scored on the pairs it holds out (the same split). VADER itself sums word valences, so this is
    the judge's own form with the lexicon learned from the pairs."""
    import numpy as np
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from genlab.data.chat import held_out
    from genlab.models.reward import RewardModel

    rows = [json.loads(line) for line in pairs_file.read_text(encoding="utf-8").splitlines()]
    held = [held_out(f"{p.get('system')}\n{p['prompt']}", RewardModel.val_fraction) for p in rows]
    train, test = (
        [p for p, h in zip(rows, held, strict=True) if not h],
        [p for p, h in zip(rows, held, strict=True) if h],
    )
    if not train or not test:
        return {}
    words = CountVectorizer().fit([p["chosen"] for p in train] + [p["rejected"] for p in train])

    def diff(pairs: list[dict]):  # noqa: ANN202
        return words.transform([p["chosen"] for p in pairs]) - words.transform([p["rejected"] for p in pairs])

    x = diff(train)  # each pair both ways round, so the model has no side to prefer
    fit = LogisticRegression(C=0.1, fit_intercept=False, max_iter=2000)
    fit.fit(sparse.vstack([x, -x]), np.r_[np.ones(x.shape[0]), np.zeros(x.shape[0])])
    return {"bag_of_words_val_accuracy": float((diff(test) @ fit.coef_[0] > 0).mean()), "bag_of_words_vocab":
            len(words.vocabulary_)}  # fmt: skip


def base_vs_sft(sft_dir: Path, prompts: int) -> dict:
    """gpt-kjv in the chat template (before SFT) against the SFT model: held-out assistant loss (the SFT run's own
    held-out conversations) and the end rate of answers to prompts:test."""
    from genlab.checkpoint import load_model
    from genlab.data.chat import load_prompts
    from genlab.eval.chat import evaluate_chat
    from genlab.eval.judges import load_judge
    from genlab.models.base import TrainOptions
    from genlab.models.chat import ChatLM

    sft = load_model(sft_dir, task="chat")
    base = ChatLM(dataclasses.replace(sft.config), sft.require_tokenizer()).eval()
    base.init_from(load_model("gpt-kjv"))
    data = ChatLM.prepare_data("chatterbot", dataclasses.replace(sft.config), TrainOptions(init_from=sft_dir), {})
    test, judge = load_prompts("prompts:test")[:prompts], load_judge("sentiment")
    out = {}
    for name, model in (("base", base), ("sft", sft)):
        figures = evaluate_chat(model, test, judge, max_tokens=64, seed=0)
        roomy = evaluate_chat(model, test, judge, max_tokens=END_ROOM, seed=0)
        out[name] = {"held_out_loss": model.evaluate(data.val)["val_loss"], "end_rate": roomy["end_rate"],
                     "end_rate_prompts": roomy["prompts"], "end_rate_64": figures["end_rate"],
                     "score": figures["score"], "prompts": figures["prompts"]}  # fmt: skip
    return out


def alignment_tax(out: Path, cfg: dict) -> dict:
    """Nats per character of gpt-kjv's held-out pretraining text: gpt-kjv itself and each chat model in ``out``."""
    from genlab.checkpoint import load_model
    from genlab.models.chat import alignment_tax as tax

    base = load_model("gpt-kjv")
    figures = {}
    for name in ("sft", *rlhf_runs(cfg)):
        if (out / name / "config.json").is_file():
            t = tax(base, load_model(out / name, task="chat"))
            figures["gpt-kjv"] = t.get("pretrain_nats_per_char_before")
            figures[name] = t.get("pretrain_nats_per_char_after")
    return figures


def along_training(out: Path, prefix: str, steps: tuple[int, ...], *rlhf: object) -> dict:
    """``genlab train rlhf RLHF`` saved along training, at each of ``steps`` (``PREFIX-stepN``): each checkpoint a
    copy of the one before resumed with a larger ``--steps`` — the same weights as one longer run (the presets keep
    ``lr`` constant and draw each step's batch by its index)."""
    result, before = {}, None
    for n in steps:
        name = f"{prefix}-step{n}"
        if before is None:
            start_run = ["--force"]
        else:  # the checkpoint before, trained on to step n
            shutil.rmtree(out / name, ignore_errors=True)
            shutil.copytree(out / before, out / name)
            start_run = ["--resume"]
        s = genlab("train", "rlhf", *rlhf, "--out", out / name, *start_run, "--steps", n)
        result[name] = {"train": s["held_out"], "step": s["step"]}
        before = name
    return result


def run_stages(stages: list[str], out: Path, cfg: dict, result: dict) -> None:
    """Run each stage of ``stages`` in order, filling ``result`` with its figures and ``result['timing_s']``."""
    from genlab.data.chat import load_prompts

    timing = result["timing_s"]

    def steps(key: str) -> list[str]:
        return [] if cfg[key] is None else ["--steps", str(cfg[key])]

    limit = [] if cfg["pair_prompts"] is None else ["--limit", str(cfg["pair_prompts"])]  # prompts labelled

    def label(model: Path, half: str, seed: int, pairs: Path) -> dict:
        """``genlab label pairs``: PAIR_ANSWERS answers of ``model`` to each prompt of a half, labelled by the judge."""
        return genlab("label", "pairs", "--model", model, "--prompts", out / f"prompts-{half}.txt", "--judge",
                      "sentiment", "--n", PAIR_ANSWERS, "--seed", seed, "--out", pairs, *limit)  # fmt: skip

    for stage in stages:
        start = time.perf_counter()
        if stage == "sft":
            s = genlab("train", "chat", "--data", "chatterbot", "--init", "gpt-kjv", "--set", "dropout=0.2",
                       "--out", out / "sft", "--force", *steps("sft_steps"))  # fmt: skip
            result["sft"] = {"train": s["held_out"], "step": s["step"]}
            timing["sft"] = time.perf_counter() - start
            start = time.perf_counter()
            result["sft"] |= base_vs_sft(out / "sft", cfg["prompts"])
            timing["base_vs_sft"] = time.perf_counter() - start
            continue
        if stage == "pairs":
            halves = split_prompts(load_prompts("prompts:train"))
            result["pairs"] = {}
            for half, prompts, seed in (("a", halves[0], 0), ("b", halves[1], 1)):
                (out / f"prompts-{half}.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
                s = label(out / "sft", half, seed, out / f"pairs-{half}.jsonl")
                result["pairs"][half] = {"prompts_in_half": len(prompts)} | s
        elif stage == "rm":
            result["rm"] = {}
            for name, half, seed in (("rm", "a", 0), ("rm2", "b", 1)):
                s = genlab("train", "reward", "--data", out / f"pairs-{half}.jsonl", "--init", "gpt-kjv",
                           "--seed", seed, "--out", out / name, "--force", *steps("rm_steps"))  # fmt: skip
                pairs = out / f"pairs-{half}.jsonl"
                result["rm"][name] = s["held_out"] | held_out_agreement(pairs) | bag_of_words(pairs)
        elif stage == "ppo":
            result |= along_training(out, "ppo", cfg["ppo_steps"], "--method", "ppo", "--policy", out / "sft",
                                     "--reward", out / "rm", "--prompts", "prompts:train")  # fmt: skip
        elif stage == "dpo":
            for beta in DPO_BETAS:
                name = f"dpo-beta{beta}"
                s = genlab("train", "rlhf", "--method", "dpo", "--policy", out / "sft", "--data", out / "pairs-a.jsonl",
                           "--set", f"beta={beta}", "--out", out / name, "--force", *steps("dpo_steps"))  # fmt: skip
                result[name] = {"train": s["held_out"], "step": s["step"]}
        elif stage == "dpo2":
            s = label(out / ROUND2_FROM, "a", ROUND2_SEED, out / "pairs-a2.jsonl")
            result["pairs"] = result.get("pairs", {}) | {"a2": s}
            result |= along_training(out, "dpo-round2", cfg["dpo2_steps"], "--method", "dpo", "--policy",
                                     out / ROUND2_FROM, "--data", out / "pairs-a2.jsonl", "--set",
                                     f"beta={ROUND2_BETA}")  # fmt: skip
        elif stage == "ppo2":
            policy = out / f"ppo-step{cfg['ppo2_from']}"
            pairs = out / "pairs-a3.jsonl"
            s = label(policy, "a", PPO_ROUND2_SEED, pairs)
            result["pairs"] = result.get("pairs", {}) | {"a3": s}
            s = genlab("train", "reward", "--data", pairs, "--init", out / "rm", "--out", out / "rm-round2", "--force",
                       *steps("rm_round2_steps"))  # fmt: skip
            result["rm"] = result.get("rm", {}) | {"rm-round2": s["held_out"] | held_out_agreement(pairs)}
            result |= along_training(out, "ppo-round2", cfg["ppo2_steps"], "--method", "ppo", "--policy", policy,
                                     "--reward", out / "rm-round2", "--prompts", "prompts:train")  # fmt: skip
        elif stage == "compare":
            runs = [out / r for r in rlhf_runs(cfg) if (out / r / "config.json").is_file()] or [out / "sft"]
            if (out / "report").exists():
                shutil.rmtree(out / "report")  # the bench's own report of an earlier run
            s = genlab("compare", "chat", *runs, "--reference", out / "sft", "--reward", out / "rm",
                       "--held-out-reward", out / "rm2", "--best-of", cfg["best_of"], "--limit", cfg["prompts"],
                       "--out", out / "report")  # fmt: skip
            keep = ("score", "score_se", "kl", "kl_se", "words", "distinct_2", "end_rate", "win_rate", "win_low",
                    "win_high")  # fmt: skip
            result["compare"] = {"prompts": s["prompts"], "report": str(out / "report"),
                                 "methods": {m["name"]: {k: m[k] for k in keep} | {"kind": m["kind"]}
                                             for m in s["methods"]}}  # fmt: skip
        timing[stage] = time.perf_counter() - start


def target(value: float | None, met, *others: float | None) -> dict:  # noqa: ANN001
    """Whether a figure meets its target: True, False, or None (JSON null) when it (or a figure it is measured
    against) was not measured."""
    missing = value is None or any(o is None for o in others)
    return None if missing else bool(met(value, *others))


def targets(result: dict) -> dict:
    """The issue's targets beside the measured figures: {name: {"target", "measured", "met"}}."""
    sft, rm, methods = result.get("sft", {}), result.get("rm", {}), result.get("compare", {}).get("methods", {})
    get = lambda d, *keys: _dig(d, keys)  # noqa: E731
    out = {
        "sft_end_rate_ge_0.95_above_base": {
            "target": f"SFT closes ≥ {END_TARGET:.0%} of its answers to prompts:test with <|end|> (room for {END_ROOM} "
            "characters), and more than the base model",
            "measured": {"sft": get(sft, "sft", "end_rate"), "base": get(sft, "base", "end_rate")},
        },
        "sft_loss_below_base": {
            "target": "SFT held-out assistant loss below the base model's (nats/token)",
            "measured": {"sft": get(sft, "sft", "held_out_loss"), "base": get(sft, "base", "held_out_loss")},
        },
    }
    out["sft_end_rate_ge_0.95_above_base"]["met"] = target(get(sft, "sft", "end_rate"),
                                                           lambda a, b: a >= END_TARGET and a > b,
                                                           get(sft, "base", "end_rate"))  # fmt: skip
    out["sft_loss_below_base"]["met"] = target(get(sft, "sft", "held_out_loss"), lambda a, b: a < b,
                                               get(sft, "base", "held_out_loss"))  # fmt: skip
    for name in ("rm", "rm2", "rm-round2"):
        acc, agree = get(rm, name, "val_accuracy"), get(rm, name, "judge_agreement_held_out")
        out[f"{name}_accuracy_ge_0.85x_agreement"] = {
            "target": "reward model held-out pair accuracy ≥ 0.85 × the judge's agreement with those labels",
            "measured": {"accuracy": acc, "judge_agreement": agree},
            "met": target(acc, lambda a, b: a >= 0.85 * b, agree),
        }
    sft_row = next((m for m in methods.values() if m.get("kind") == "reference"), {})
    bo16 = methods.get("best-of-16", {})
    for run in rlhf_runs(result.get("settings", FULL)):
        m = methods.get(run, {})
        score, kl = m.get("score"), m.get("kl")
        out[f"{run}_score_ge_sft_plus_0.3_at_kl_le_10"] = {
            "target": "judge score ≥ SFT's + 0.3 at a KL ≤ 10 nats per answer",
            "measured": {"score": score, "kl": kl, "sft_score": sft_row.get("score")},
            "met": target(score, lambda s, k, r: s >= r + 0.3 and k <= 10, kl, sft_row.get("score")),
        }
        out[f"{run}_score_ge_best_of_16"] = {
            "target": "judge score ≥ best-of-16's (picked by the training reward model) at a KL ≤ 10 nats per answer",
            "measured": {"score": score, "kl": kl, "best_of_16": bo16.get("score")},
            "met": target(score, lambda s, k, b: s >= b and k <= 10, kl, bo16.get("score")),
        }
        out[f"{run}_win_rate_ge_0.70"] = {
            "target": "win rate over SFT ≥ 0.70 by the held-out reward model (95% Wilson interval; ties ½)",
            "measured": {"win_rate": m.get("win_rate"), "ci95": [m.get("win_low"), m.get("win_high")]},
            "met": target(m.get("win_rate"), lambda w: w >= 0.70),
        }
    total = result.get("timing_s", {}).get("total") if result.get("whole_pipeline") else None
    out["wall_lt_60_min"] = {"target": "the whole pipeline in < 60 minutes on 2 CPU cores",
                             "measured": total, "met": target(total, lambda t: t < WALL_TARGET_S)}  # fmt: skip
    return out


def _dig(d: dict, keys: tuple) -> float | None:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for the runs and the report (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="tiny step counts and few prompts: a smoke run")
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help=f"comma-separated, from {','.join(STAGES)} (default: %(default)s)")  # fmt: skip
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        parser.error(f"--stages: unknown {', '.join(unknown) or '(none)'}; choose from {','.join(STAGES)}")
    stages = [s for s in STAGES if s in stages]  # always in pipeline order
    from genlab.models import FAMILIES

    if {"ppo", "dpo", "dpo2", "ppo2"} & set(stages) and "rlhf" not in FAMILIES:
        parser.error("this genlab has no rlhf family (PPO, DPO): run with --stages sft,pairs,rm,compare")
    cfg = QUICK if args.quick else FULL
    result: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "quick": args.quick, "stages": stages, "whole_pipeline": not args.quick and set(DEFAULT_STAGES) <= set(stages),
        "settings": cfg, "timing_s": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        run_stages(stages, out, cfg, result)
        t = time.perf_counter()
        result["alignment_tax_nats_per_char"] = alignment_tax(out, cfg)
        result["timing_s"]["alignment_tax"] = time.perf_counter() - t
        result["timing_s"]["total"] = time.perf_counter() - start
        result["timing_s"] = {k: round(v, 1) for k, v in result["timing_s"].items()}
        result["targets"] = targets(result)
        text = json.dumps(jsonable(result), indent=2, allow_nan=False, ensure_ascii=False, default=str)
        if args.out:
            (out / "chat-bench.json").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
