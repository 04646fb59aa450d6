"""RLHF: a chat model tuned to preferences, by PPO against a reward model (InstructGPT) or by DPO on pairs.

Formulation: the policy π (started from the SFT model, which also stays frozen as the reference π_ref) maximizes
    PPO  (Ziegler et al. 2019; Ouyang et al. 2022, eq. 2):  E_{x, y∼π}[ r(x, y) ] − β KL(π(·|x) ‖ π_ref(·|x))
         with r the frozen reward model's score of the whole answer; the KL enters as a per-token reward
         −β(log π − log π_ref), so r_t = −β(log π − log π_ref) + r(x, y)·[t is the answer's last token], and PPO's
         clipped surrogate (Schulman et al. 2017) with GAE advantages (Schulman et al. 2016) and a value head on
         the shared trunk optimizes it. β is ``kl_coef``, fixed or (``adaptive_kl``) steered towards ``target_kl``
         nats per answer (Ziegler et al. 2019, §2.2).
    DPO  (Rafailov et al. 2023, eq. 7): the same objective solved in closed form for Bradley–Terry preferences:
         −log σ(β[(log π − log π_ref)(y_w|x) − (log π − log π_ref)(y_l|x)]) on preference pairs; no reward model,
         no sampling, no value head (a DPO model holds none).
The tensor math is :mod:`genlab.nn.rl`. Log-probabilities are of the answer's tokens including its closing <|end|>.

Training (the one Trainer; ``batch_size`` is PPO's minibatch and DPO's pairs per step): PPO's micro-batch ``i``
belongs to rollout ``i // (ppo_epochs·⌈rollout/batch_size⌉)``; the first micro-batch of a rollout draws it: ``rollout``
prompts answered by the current policy (temperature 1, no top-k/top-p, so the KL estimate is honest; seeded by
(seed, rank, rollout)), scored, with advantages whitened; then ``ppo_epochs`` shuffled passes over it in
minibatches. Exact resume holds at rollout boundaries: a run resumed mid-rollout draws that rollout afresh from the
restored weights (the tiny preset checkpoints on boundaries). The adaptive β is a buffer, saved with the weights.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from genlab.config import FRACTION, NONNEGATIVE, Range, check_ranges
from genlab.data.chat_batches import TokenPairs, TokenPrompts, encode_pairs, encode_prompts, join_batch
from genlab.errors import GenlabError, GenlabWarning
from genlab.models.base import Flag, GenerativeModel, Part, TrainingData, TrainOptions, load_state_strict
from genlab.models.chat import ChatConfig, ChatLM
from genlab.models.gpt import GPTConfig
from genlab.nn import rl
from genlab.runtime import mean_over_ranks
from genlab.sampling.text import generate_batch

METHODS = ("ppo", "dpo")
DPO_EVAL_PAIRS = 1024  # held-out pairs a DPO evaluation scores (at most)
OWN = ("value_head.weight", "value_head.bias", "kl_coef_now")  # what an RLHF model holds beyond its policy


@dataclass
class RLHFConfig(ChatConfig):
    method: str = "ppo"  # ppo | dpo
    kl_coef: float = 0.05  # β of the per-token KL penalty (PPO)
    adaptive_kl: bool = False  # steer β towards target_kl (Ziegler et al. 2019)
    target_kl: float = 6.0  # nats per answer
    beta: float = 0.1  # DPO's β
    # DPO + α × the chosen answers' negative log-likelihood per token (RPO: Pang et al. 2024, TRL's rpo_alpha): holds
    # the chosen answers' probability up, against DPO's known failure where both answers fall
    rpo_alpha: float = 0.0
    clip: float = 0.2  # ε of the ratio clip
    vf_clip: float = 0.2  # how far a value may move per rollout
    vf_coef: float = 0.1  # weight of the value loss
    # GAE's λ; 1 gives Monte-Carlo returns: with a value head that starts untrained, λ < 1 favours short answers
    gae_lambda: float = 1.0
    gamma: float = 1.0
    ppo_epochs: int = 4  # passes over each rollout
    rollout: int = 32  # prompts per rollout
    max_new_tokens: int = 48  # answer length limit in a rollout
    # subtracted from the reward of an answer that max_new_tokens cut before it closed (TRL's missing_eos_penalty):
    # a reward model that likes long answers otherwise teaches the policy never to stop
    end_penalty: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.method not in METHODS:
            raise GenlabError(f"rlhf: method={self.method!r}: choose {' or '.join(METHODS)}")
        positive = Range(0, 1000, lo_open=True)
        check_ranges(self, "rlhf", {
            "kl_coef": Range(0, 1000), "target_kl": positive, "beta": positive, "rpo_alpha": NONNEGATIVE,
            "clip": Range(0, 1, lo_open=True), "vf_clip": positive, "vf_coef": NONNEGATIVE, "gae_lambda": FRACTION,
            "gamma": FRACTION, "ppo_epochs": Range(1, 1000), "rollout": Range(1, 1_000_000),
            "max_new_tokens": Range(1, 65536), "end_penalty": Range(0, 1000),
        })  # fmt: skip
        if self.method == "ppo" and self.dropout > 0:  # the rollout (eval mode) and the update must agree: ρ = 1
            raise GenlabError(f"rlhf: ppo needs dropout=0 (got {self.dropout}): with dropout the update's "
                              "log-probabilities differ from the rollout's before any step")  # fmt: skip
        if self.adaptive_kl and self.kl_coef == 0:
            raise GenlabError("rlhf: adaptive_kl scales kl_coef, so it needs kl_coef > 0")


def _seed(*parts: int) -> int:
    return hash(parts) & (2**63 - 1)


class RLHF(ChatLM):
    family = "rlhf"
    modality = "chat"
    trains_on = "chat"
    Config = RLHFConfig
    data_help = "ppo: prompts (--prompts FILE: .txt, .jsonl, or prompts:train); dpo: preference pairs (.jsonl)"
    fine_tunes = False  # the policy part gives the starting weights
    domain_from = "policy"  # it knows what its policy knew
    init_families = ()
    unit = "ex"
    flags = {
        "method": Flag(help="rlhf: ppo (against --reward, on --prompts) or dpo (on --data pairs.jsonl)", key="method"),
        "prompts": Flag(help="rlhf ppo: the prompts to answer (.txt, .jsonl or prompts:train)", to_data=True,
                        metavar="FILE"),
    }  # fmt: skip
    parts = {
        "policy": Part(task="chat", help="rlhf: the SFT chat model to start from (also the frozen reference)",
                       on_resume=True),
        "reward": Part(task="reward", help="rlhf ppo: the reward model scoring answers", on_resume=True,
                       needed=lambda c: c.method == "ppo"),
    }  # fmt: skip
    presets = {
        # rollouts of 32 prompts, 2 passes in minibatches of 8: a rollout every 8 steps, checkpoints on rollout
        # boundaries; lr constant after a two-rollout warmup; no weight decay (it pulls away from π_ref too).
        # PPO from chat-kjv against a sentiment reward model (docs/chat.md): kl_coef 0.05 drifted to 33 nats per
        # answer and stopped closing answers (end rate 0.03); 0.1 with end_penalty 1 kept 6 nats and 0.93
        "tiny": dict(rollout=32, ppo_epochs=2, batch_size=8, lr=5e-5, min_lr=5e-5, warmup=16, weight_decay=0.0,
                     steps=288, log_every=1, eval_every=48, eval_batches=4, ckpt_every=48, kl_coef=0.1,
                     end_penalty=1.0),
        "small": dict(rollout=32, ppo_epochs=4, batch_size=8, lr=3e-5, min_lr=3e-5, warmup=32, weight_decay=0.0,
                      steps=1600, log_every=1, eval_every=160, eval_batches=8, ckpt_every=160),
        "base": dict(rollout=64, ppo_epochs=4, batch_size=16, lr=1e-5, min_lr=1e-5, warmup=64, weight_decay=0.0,
                     steps=4000, log_every=1, eval_every=320, eval_batches=8, ckpt_every=320),
    }  # fmt: skip

    def __init__(self, config: RLHFConfig, tokenizer: Any = None) -> None:
        super().__init__(config, tokenizer)
        if config.method == "ppo":
            self.value_head = torch.nn.Linear(config.n_embd, 1)  # V(s_t) from the shared trunk's hidden state
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)
            self.register_buffer("kl_coef_now", torch.tensor(float(config.kl_coef)))
        self._parts: dict[str, GenerativeModel] = {}  # π_ref and the reward model: frozen, not saved, not optimized
        self._rollout_figures: dict[str, float] = {}
        self._start_reward: dict[tuple[str, int], float] = {}
        self._sums: dict[str, list[float]] = {}

    # --- parts ---------------------------------------------------------------------------------------
    def attach_parts(self, parts: dict[str, GenerativeModel]) -> None:
        for name, part in parts.items():
            self._parts[name] = part.eval().requires_grad_(False)

    def part(self, name: str) -> GenerativeModel:
        """The frozen ``policy`` (π_ref) or ``reward`` model, on this model's device."""
        if name not in self._parts:
            raise GenlabError(f"this rlhf model has no --{name} model attached (it is needed to train and evaluate)")
        m = self._parts[name]
        if m.device != self.device:
            m.to(self.device)
        return m

    # --- training hooks ------------------------------------------------------------------------------
    @classmethod
    def prepare_data(
        cls, source: str, config: RLHFConfig, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        policy = parts["policy"]
        for f in dataclasses.fields(GPTConfig):  # the run's model has the policy's shape (dropout stays the run's)
            theirs = getattr(policy.config, f.name)
            if f.name != "dropout" and f.name in options.explicit and getattr(config, f.name) != theirs:
                raise GenlabError(f"--set {f.name}: an rlhf model has its --policy model's shape ({f.name}={theirs})")
            if f.name != "dropout":
                setattr(config, f.name, theirs)
        config.validate()
        if config.max_new_tokens >= config.block_size:
            raise GenlabError(f"rlhf: max_new_tokens={config.max_new_tokens} must be less than the policy's "
                              f"context ({config.block_size} tokens)")  # fmt: skip
        tok = policy.require_tokenizer()
        reward = parts.get("reward")
        if config.method == "ppo" and reward is not None:
            theirs = getattr(reward, "tokenizer", None)
            if theirs is None or theirs.to_json() != tok.to_json():
                raise GenlabError("--reward: its tokenizer differs from the --policy model's; train the reward model "
                                  "from the same SFT model")  # fmt: skip
            context = getattr(reward, "max_context", None)
            if context is not None and context < config.block_size:
                raise GenlabError(f"--reward: its context ({context} tokens) is shorter than the --policy model's "
                                  f"({config.block_size})")  # fmt: skip
        fraction = cls.val_fraction if options.val_fraction is None else options.val_fraction
        if config.method == "ppo":
            data = TrainingData(*encode_prompts(source, tok, config.block_size - config.max_new_tokens, fraction))
        else:
            data = TrainingData(*encode_pairs(source, tok, config.block_size, fraction))
        data.cache["tokenizer"] = tok
        data.run |= {"tokenizer": tok.kind, "template": "genlab-chat", "method": config.method}
        return data

    @classmethod
    def build(cls, config: RLHFConfig, data: TrainingData, parts: dict[str, GenerativeModel]) -> RLHF:
        """The policy's weights (an RLHF policy's extras left behind), with a fresh value head for PPO."""
        config.validate()
        model = cls(config, data.cache["tokenizer"])
        mine = model.state_dict()
        state = {k: v.float() for k, v in parts["policy"].state_dict().items() if k in mine and k not in OWN}
        state |= {k: v for k, v in mine.items() if k in OWN}
        load_state_strict(model, state, "--policy: its weights do not fit this model")
        return model

    def batches(self, data: TrainingData, *, batch_size: int, seed: int, rank: int) -> Callable[[int], Any]:
        if self.config.method == "dpo":
            pairs: TokenPairs = data.train

            def pair_batch(i: int) -> dict[str, torch.Tensor]:
                g = torch.Generator().manual_seed(_seed(seed, rank, i))
                return pairs.batch(torch.randint(len(pairs), (batch_size,), generator=g).tolist())

            return pair_batch
        prompts: TokenPrompts = data.train
        minibatches = math.ceil(self.config.rollout / batch_size)
        current: dict[str, Any] = {}

        def ppo_batch(i: int) -> dict[str, torch.Tensor]:
            k, j = divmod(i, self.config.ppo_epochs * minibatches)
            if current.get("k") != k:
                current.update(k=k, rollout=self.draw_rollout(prompts, seed=_seed(seed, rank, k)))
            epoch, m = divmod(j, minibatches)
            order = torch.randperm(
                self.config.rollout, generator=torch.Generator().manual_seed(_seed(seed, rank, k, epoch))
            )
            return _rows(current["rollout"], order[m * batch_size : (m + 1) * batch_size])

        return ppo_batch

    # --- PPO --------------------------------------------------------------------------------------------
    def answer(
        self, prompts: list[list[int]], generator: torch.Generator, sampler: ChatLM | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One answer per prompt by ``sampler`` (default: this policy), sampled at temperature 1 from the full
        distribution: prompt+answer ids ``B×T`` and the answer-token mask ``B×(T-1)`` (:func:`join_batch`)."""
        answers = generate_batch(sampler or self, prompts, max_tokens=self.config.max_new_tokens,
                                 stop_ids=self.stop_ids(), generator=generator)  # fmt: skip
        ids, mask = join_batch(prompts, answers)
        return ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def score(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """What a rollout records of answers ``ids`` ``B×T``: per token (``B×(T-1)``) log π, log π_ref, values and
        entropy; per answer (``B``) the reward model's score and KL (Σ_t log π − log π_ref, nats)."""
        h = self.hidden(ids[:, :-1])
        logits = self.lm_head(h).float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
        ref = self.part("policy").sequence_logprobs(ids)
        last = (mask * torch.arange(mask.shape[1], device=mask.device)).amax(1).long()  # the answer's last target
        score = self.part("reward").score_ids(ids, last + 1).float()
        values = self.value_head(h)[..., 0].float() * mask if hasattr(self, "value_head") else torch.zeros_like(mask)
        kl = ((logp - ref) * mask).sum(1)
        return {"logp": logp, "ref": ref, "values": values, "entropy": rl.entropy(logits), "score": score,
                "kl": kl, "last": last}  # fmt: skip

    def draw_rollout(self, prompts: TokenPrompts, *, seed: int) -> dict[str, torch.Tensor]:
        """A rollout of the current policy on ``rollout`` prompts: answers, their per-token rewards, GAE advantages
        (whitened) and returns; its figures go to :meth:`train_metrics`."""
        c = self.config
        pick = torch.randint(len(prompts), (c.rollout,), generator=torch.Generator().manual_seed(seed))
        was = self.training
        self.eval()
        try:
            sampler = torch.Generator(device=self.device).manual_seed(seed)
            ids, mask = self.answer([prompts.ids[i] for i in pick.tolist()], sampler)
            s = self.score(ids, mask)
        finally:
            self.train(was)
        kl = mean_over_ranks(s["kl"].mean())  # every rank steers the adaptive β by the same KL
        if not math.isfinite(kl):
            raise GenlabError(f"the KL to the reference became {kl} in a rollout; the last checkpoint in --out (if "
                              "any) stays resumable: try a lower learning rate (--set lr=...)")  # fmt: skip
        coef = float(self.kl_coef_now)
        rows = torch.arange(len(ids), device=ids.device)
        stops = torch.tensor(self.stop_ids(), device=ids.device)
        closed = torch.isin(ids[rows, s["last"] + 1], stops)  # the answer ended with a template token
        rewards = -coef * (s["logp"] - s["ref"]) * mask  # the per-token KL penalty (Ziegler et al. 2019, eq. 2)
        rewards[rows, s["last"]] += s["score"] - c.end_penalty * (~closed).float()  # the RM's score: last token
        adv, returns = rl.gae(rewards, s["values"], mask, gamma=c.gamma, lam=c.gae_lambda)
        self._rollout_figures = {
            "reward": s["score"].mean().item(),
            "kl": kl,
            "entropy": rl.masked_mean(s["entropy"], mask).item(),
            "resp_len": mask.sum(1).mean().item(),
            "end_rate": closed.float().mean().item(),
        } | ({"kl_coef": coef} if c.adaptive_kl else {})
        if c.adaptive_kl:
            self.kl_coef_now.fill_(rl.adaptive_kl_coef(coef, kl, c.target_kl))
        return {"ids": ids, "mask": mask, "logp": s["logp"], "values": s["values"], "returns": returns,
                "advantages": rl.whiten(adv, mask)}  # fmt: skip

    def _ppo_losses(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask, c = batch["ids"], batch["mask"], self.config
        # in float32 even where the trainer autocasts (GPU bf16): the rollout's log-probs were computed in float32
        # outside autocast, and the ratio π/π_old must be exactly 1 before the first update
        with torch.autocast(device_type=ids.device.type, enabled=False):
            h = self.hidden(ids[:, :-1])
            logp = torch.log_softmax(self.lm_head(h).float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
            values = self.value_head(h)[..., 0].float()
        policy, figures = rl.ppo_policy_loss(logp, batch["logp"], batch["advantages"], mask, clip=c.clip)
        value = rl.clipped_value_loss(values, batch["values"], batch["returns"], mask, clip=c.vf_clip)
        self._note(policy_loss=policy, value_loss=value, **figures)
        return policy + c.vf_coef * value

    # --- DPO --------------------------------------------------------------------------------------------
    def pair_logprobs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence log-probs ``2B`` of the batch's answers under π (differentiable) and π_ref."""
        ids, mask = batch["ids"], batch["mask"]
        logp = (self.sequence_logprobs(ids) * mask).sum(1)
        with torch.no_grad():
            ref = (self.part("policy").sequence_logprobs(ids) * mask).sum(1)
        return logp, ref

    def _dpo_figures(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logp, ref = self.pair_logprobs(batch)
        B = len(logp) // 2
        loss, chosen, rejected = rl.dpo_loss(logp[:B], logp[B:], ref[:B], ref[B:], beta=self.config.beta)
        nll = -(logp[:B] / batch["mask"][:B].sum(1).clamp(min=1)).mean()  # the chosen answers' nats per token
        if self.config.rpo_alpha > 0:
            loss = loss + self.config.rpo_alpha * nll
        logp = logp.detach()
        return loss, {"accuracy": (chosen > rejected).float().mean(), "margin": (chosen - rejected).mean(),
                      "chosen_nll": nll.detach(),
                      "chosen_logp": logp[:B].mean(), "rejected_logp": logp[B:].mean(),
                      # log π − log π_ref: how each answer's probability moved from the start
                      "chosen_shift": (logp[:B] - ref[:B]).mean(),
                      "rejected_shift": (logp[B:] - ref[B:]).mean()}  # fmt: skip

    # --- the objective and its figures --------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.config.method == "ppo":
            return {"model": self._ppo_losses(batch)}
        loss, figures = self._dpo_figures(batch)
        self._note(**{k: v for k, v in figures.items() if not k.endswith("shift")})
        return {"model": loss}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.losses(batch)["model"]

    def _note(self, **figures: torch.Tensor) -> None:
        for k, v in figures.items():
            total = self._sums.setdefault(k, [0.0, 0])
            total[0] += float(v.detach())
            total[1] += 1

    def train_metrics(self) -> dict[str, float]:
        """PPO: the figures of the rollout the steps trained on (reward, kl, entropy, resp_len, end_rate, kl_coef
        when adaptive) and the minibatches' means since the last call (clip_frac, approx_kl, value_loss, policy_loss);
        DPO: the pairs' implicit-reward accuracy and margin, the chosen and rejected answers' log-probs."""
        out = dict(self._rollout_figures) | {k: s / n for k, (s, n) in self._sums.items()}
        self._sums.clear()
        return out

    @torch.no_grad()
    def evaluate(self, val: TokenPrompts | TokenPairs, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """PPO: the reward model's mean score and the KL (nats per answer) of one answer sampled (seed 0) to each of
        the first ``batches × batch_size`` held-out prompts, and the reference's score there (where the policy
        started); DPO: the figures of :data:`DPO_EVAL_PAIRS` held-out pairs (or ``batches × batch_size`` if more)
        spread evenly over them, all of them when fewer (48 answers a prompt give thousands: scoring them all at
        every evaluation cost more than the training)."""
        if len(val) == 0:
            return {}
        if isinstance(val, TokenPrompts):
            prompts = val.ids[: batches * batch_size]
            s = self.score(*self.answer(prompts, torch.Generator(device=self.device).manual_seed(0)))
            key = ("start", len(prompts))
            if key not in self._start_reward:  # the reference does not change: scored once
                ref = self.score(*self.answer(prompts, torch.Generator(device=self.device).manual_seed(0),
                                              sampler=self.part("policy")))  # fmt: skip
                self._start_reward[key] = ref["score"].mean().item()
            return {"val_reward": s["score"].mean().item(), "val_kl": s["kl"].mean().item(),
                    "val_reward_start": self._start_reward[key]}  # fmt: skip
        n = min(len(val), max(batches * batch_size, DPO_EVAL_PAIRS))
        picked = torch.linspace(0, len(val) - 1, n).round().long().tolist()  # every prompt's pairs, not the first few
        sums: dict[str, float] = {}
        for start in range(0, n, batch_size):
            rows = picked[start : start + batch_size]
            batch = {k: v.to(self.device) for k, v in val.batch(rows).items()}
            loss, figures = self._dpo_figures(batch)
            for k, v in {"loss": loss, **figures}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(rows)
        return {f"val_{k}": v / n for k, v in sums.items()} | {"val_pairs": n}

    def final_figures(self, data: TrainingData, evals: dict[str, Any]) -> dict[str, Any]:
        """The last held-out figures (without held-out data: the training data's); DPO warns when both the chosen
        and the rejected answers lost probability against the start, π_ref (and records ``both_fell``)."""
        figures = dict(evals) if evals else self.evaluate(data.val if len(data.val) else data.train)
        fell = [figures.get(f"val_{k}_shift", 0.0) < 0 for k in ("chosen", "rejected")]
        if self.config.method == "dpo" and all(fell):
            warnings.warn(
                "DPO lowered the log-probability of both the chosen and the rejected answers (a known failure: "
                "probability moves to answers in neither set); check the samples, or lower beta or the steps",
                GenlabWarning,
                stacklevel=2,
            )
            figures["both_fell"] = True
        return figures


def _rows(rollout: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows of a rollout, cut after the last answer token they hold."""
    mask = rollout["mask"][rows]
    width = int(mask.nonzero()[:, 1].max()) + 1
    return {k: v[rows, : width + 1] if k == "ids" else v[rows, :width] for k, v in rollout.items()}
