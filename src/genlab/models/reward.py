"""Reward model: a scalar score r(x, y) of an answer y to a prompt x, learned from preference pairs (InstructGPT's
second stage; Ouyang et al. 2022, eq. 1).

Formulation: the Bradley–Terry model of a preference, P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l)).
Representation: the chat model's transformer (it starts from an SFT checkpoint with ``--init``) read at the last
token of ``template(x) + y + <|end|>``, and a linear head to one number.
Objective:
    loss(r) = −1/C(K,2) · E_(x, y_w, y_l) [log σ(r(x, y_w) − r(x, y_l))]
with all the comparisons of one prompt in one batch element (InstructGPT: a prompt's K answers are scored once and
its C(K,2) pairs share them, so the model does not overfit to a prompt it meets in many separate steps). The loss
is blind to a constant shift of r; a small penalty ``center_weight · (mean r on demonstrations)²`` pins the shift
so that demonstrations (the SFT data's answers, or the pairs' own answers when those are not available) score 0,
as InstructGPT normalises its reward before RL.
Figures: held-out pair accuracy (r(y_w) > r(y_l)), the mean margin r(y_w) − r(y_l), the held-out loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import NONNEGATIVE, check_ranges
from genlab.data.chat import END, SPECIALS, held_out, load_conversations, prompt_text
from genlab.data.pairs import Pair, by_prompt, read_pairs
from genlab.data.tokenizers import Tokenizer, load_tokenizer, train_tokenizer, with_specials
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel, TrainingData, TrainOptions
from genlab.models.chat import ChatConfig, ChatLM, exchanges, grow_embeddings

DEMOS = 512  # demonstrations kept for centring


@dataclass
class RewardConfig(ChatConfig):
    center_weight: float = 0.1  # weight of (mean reward of demonstrations)²: pins the reward's free shift

    def validate(self) -> None:
        super().validate()
        check_ranges(self, "reward", {"center_weight": NONNEGATIVE})


@dataclass
class PairData:
    """Tokenised preference data: every distinct (prompt, answer) sequence once, and per prompt group the index
    pairs (chosen, rejected) into it."""

    seqs: list[list[int]]
    groups: list[list[tuple[int, int]]]
    demos: list[list[int]]  # demonstrations (prompt + answer) for centring

    def __len__(self) -> int:
        return len(self.groups)


class RewardModel(ChatLM):
    family = "reward"
    modality = "reward"
    trains_on = "pairs"
    Config = RewardConfig
    data_help = "a .jsonl of preference pairs ({'prompt', 'chosen', 'rejected'}): genlab label pairs writes one"
    init_families = ("gpt", "chat", "rlhf", "reward")
    # dropout is the run's own (default 0), not the SFT model's: read through dropout, the reward of an answer is
    # noisy and the model underfits (held-out pair accuracy 0.674 with the 0.2 of chat-kjv, 0.745 without, 48
    # answers a prompt: docs/benchmarks.md); --set dropout=P still sets it
    init_keeps = ("dropout",)
    domain_from = "init"  # it scores answers of the --init model's world
    no_samples = "a reward model scores answers (genlab eval chat --judge ..., genlab train rlhf --reward DIR)"
    sampling_controls = frozenset()
    presets = {
        # tiny: about 3 passes over ~600 prompts' groups; at lr 1e-4 a 2-M model barely left log 2 in 300 steps,
        # and past ~250 steps of 8 it memorises its prompts (held-out accuracy falls while the training loss drops)
        "tiny": dict(batch_size=8, lr=5e-4, min_lr=5e-5, steps=250, warmup=20, eval_every=50, ckpt_every=50),
        "small": dict(batch_size=16, lr=3e-4, min_lr=3e-5, steps=1000, warmup=50, eval_every=250),
        "base": dict(batch_size=32, lr=1e-4, min_lr=1e-5, steps=3000, warmup=100, eval_every=500),
    }

    def __init__(self, config: RewardConfig, tokenizer: Any = None) -> None:
        super().__init__(config, tokenizer)
        self.head = nn.Linear(config.n_embd, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (config.n_embd + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    sample = GenerativeModel.sample  # a scorer: it draws no answers (no_samples says what it does)

    # --- scoring ---------------------------------------------------------------------------------------
    def score_ids(self, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """``B×T`` token rows → ``B`` rewards, read at position ``last[b]`` of each row (its final token)."""
        h = self.hidden(ids)
        return self.head(h[torch.arange(ids.shape[0], device=ids.device), last]).squeeze(-1).float()

    def encode_answer(self, prompt: str, answer: str, system: str | None = None) -> list[int]:
        return encode_answer(self.require_tokenizer(), self.config.block_size, prompt, answer, system)

    def score_seqs(self, seqs: Sequence[Sequence[int]], batch_size: int = 64) -> torch.Tensor:
        """Rewards of token rows (each at most ``block_size`` long), in batches; differentiable. Rows are batched in
        order of length, so a batch pads to about its own rows' length, not to the longest row of all (a preference
        batch's rows run from ~40 to ~128 tokens: a training step 1.4× faster, docs/benchmarks.md)."""
        order = sorted(range(len(seqs)), key=lambda j: len(seqs[j]))
        out = []
        for s in range(0, len(order), batch_size):
            chunk = [seqs[j] for j in order[s : s + batch_size]]
            T = max(len(r) for r in chunk)
            ids = torch.zeros(len(chunk), T, dtype=torch.long)
            for i, r in enumerate(chunk):
                ids[i, : len(r)] = torch.tensor(r)
            last = torch.tensor([len(r) - 1 for r in chunk])
            out.append(self.score_ids(ids.to(self.device), last.to(self.device)))
        if not out:
            return torch.zeros(0, device=self.device)
        return torch.cat(out)[torch.tensor(order).argsort().to(self.device)]  # back to the rows' own order

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str], system: str | None = None) -> torch.Tensor:
        """Rewards of ``responses`` to ``prompts`` (one each), as a ``B`` tensor on the CPU."""
        seqs = [self.encode_answer(p, r, system) for p, r in zip(prompts, responses, strict=True)]
        was = self.training
        self.eval()
        r = self.score_seqs(seqs).cpu()
        self.train(was)
        return r

    # --- training hooks ----------------------------------------------------------------------------
    @classmethod
    def prepare_data(
        cls, source: str, config: Any, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        pairs = read_pairs(source)
        known = options.resume_from or options.init_from  # a reward model usually starts from the SFT model
        if known is not None:
            tok = load_tokenizer(known)
        else:
            text = "".join(p.prompt + p.chosen + p.rejected + (p.system or "") for p in pairs)
            tok = train_tokenizer(options.tokenizer, text, options.vocab_size)
        tok = with_specials(tok, SPECIALS)
        config.vocab_size = tok.vocab_size
        fraction = cls.val_fraction if options.val_fraction is None else options.val_fraction
        groups = by_prompt(pairs)
        val = [g for g in groups if held_out(f"{g[0].system}\n{g[0].prompt}", fraction)]
        train = [g for g in groups if not held_out(f"{g[0].system}\n{g[0].prompt}", fraction)]
        if not train:
            raise GenlabError(f"--data {source}: every prompt is held out; lower --val-fraction")

        def encode(p: Pair, answer: str) -> list[int]:
            return encode_answer(tok, config.block_size, p.prompt, answer, p.system)

        demos = (
            _demonstrations(options.init_model, tok, config.block_size)
            or [encode(p, a) for g in train for p in g for a in (p.chosen, p.rejected)][:DEMOS]
        )
        train_data, val_data = _encode(encode, train, demos), _encode(encode, val, [])
        describe = (
            f"{len(pairs):,} pairs over {len(groups):,} prompts: {len(train_data):,} training prompts, "
            f"{len(val_data):,} held out; {len(demos)} demonstrations centre the reward"
        )
        cache = {"tokenizer": tok}
        return TrainingData(train_data, val_data, describe, {"tokenizer": tok.kind, "template": "genlab-chat"}, cache)

    def init_from(self, source: GenerativeModel) -> None:
        """Start from a chat (or plain GPT) model: its transformer (the vocabulary grown by the template's tokens
        where it lacks them); the reward head starts fresh unless ``source`` is a reward model."""
        mine = self.state_dict()
        keep_head = isinstance(source, RewardModel)
        state = {
            k: v.float()
            for k, v in source.state_dict().items()
            if k in mine and (keep_head or not k.startswith("head."))
        }
        state |= {k: v for k, v in mine.items() if k not in state}
        self.init_from_state(grow_embeddings(state, self.config.vocab_size))

    def batches(self, data: TrainingData, *, batch_size: int, seed: int, rank: int) -> Callable[[int], Any]:
        pd: PairData = data.train

        def batch(i: int) -> dict[str, Any]:
            g = torch.Generator().manual_seed(hash((seed, rank, i)) & (2**63 - 1))
            picked = [pd.groups[j] for j in torch.randint(len(pd), (batch_size,), generator=g).tolist()]
            demos = [pd.demos[j] for j in torch.randint(len(pd.demos), (batch_size,), generator=g).tolist()]
            return _group_batch(pd.seqs, picked) | {"demos": demos}

        return batch

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Bradley–Terry loss, each prompt's pairs averaged first, plus the centring penalty."""
        r = self.score_seqs(batch["seqs"])
        margin = r[batch["chosen"]] - r[batch["rejected"]]
        per_pair = -F.logsigmoid(margin)
        per_group = torch.zeros(int(batch["group"].max()) + 1, device=r.device).index_add(0, batch["group"], per_pair)
        counts = torch.bincount(batch["group"]).clamp(min=1)
        loss = (per_group / counts).mean()
        if self.config.center_weight > 0 and batch.get("demos"):
            loss = loss + self.config.center_weight * self.score_seqs(batch["demos"]).mean() ** 2
        return loss

    @torch.no_grad()
    def evaluate(self, val: PairData, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """Held-out pair accuracy, mean margin and Bradley–Terry loss over every held-out pair."""
        if len(val) == 0:
            return {}
        r = self.score_seqs(val.seqs, batch_size)
        idx = torch.tensor([p for g in val.groups for p in g], device=r.device)
        margin = r[idx[:, 0]] - r[idx[:, 1]]
        return {
            "val_loss": float(-F.logsigmoid(margin).mean()),
            "val_accuracy": float((margin > 0).float().mean()),
            "val_margin": float(margin.mean()),
            "val_pairs": int(idx.shape[0]),
        }

    @torch.no_grad()
    def final_figures(self, data: TrainingData, evals: dict[str, Any]) -> dict[str, Any]:
        figures = dict(evals) if evals else self.evaluate(data.val)
        if data.train.demos:
            figures["demo_mean_reward"] = float(self.score_seqs(data.train.demos[:256]).mean())
        return figures


def encode_answer(tok: Tokenizer, block_size: int, prompt: str, answer: str, system: str | None = None) -> list[int]:
    """The tokens scored for ``answer`` to ``prompt``: template, answer, ``<|end|>``; a row longer than the context
    keeps its last ``block_size`` tokens (the answer and the end of the prompt)."""
    return (tok.encode(prompt_text(prompt, system)) + tok.encode(answer + END))[-block_size:]


def _encode(encode: Callable[[Pair, str], list[int]], groups: list[list[Pair]], demos: list[list[int]]) -> PairData:
    """Each distinct scored row once; each pair as (chosen, rejected) indices into the rows."""
    seqs: list[list[int]] = []
    index: dict[tuple[int, ...], int] = {}

    def at(seq: list[int]) -> int:
        if tuple(seq) not in index:
            index[tuple(seq)] = len(seqs)
            seqs.append(seq)
        return index[tuple(seq)]

    out = [[(at(encode(p, p.chosen)), at(encode(p, p.rejected))) for p in g] for g in groups]
    return PairData(seqs, out, demos)


def _group_batch(seqs: list[list[int]], groups: list[list[tuple[int, int]]]) -> dict[str, Any]:
    """The distinct sequences of the picked prompt groups, and their pairs as indices into them."""
    local: dict[int, int] = {}
    chosen, rejected, group = [], [], []
    for k, g in enumerate(groups):
        for c, r in g:
            chosen.append(local.setdefault(c, len(local)))
            rejected.append(local.setdefault(r, len(local)))
            group.append(k)
    order = sorted(local, key=local.get)
    return {
        "seqs": [seqs[j] for j in order],
        "chosen": torch.tensor(chosen),
        "rejected": torch.tensor(rejected),
        "group": torch.tensor(group),
    }


def _demonstrations(init: Any, tok: Tokenizer, block_size: int) -> list[list[int]]:
    """Answers of the SFT data the ``--init`` model was trained on (its recorded ``--data``), as scored rows; []
    where that data is not conversations available here."""
    run = (getattr(init, "run", None) or {}) if init is not None else {}
    try:
        conversations, _ = load_conversations(str(run["data"]))
    except (KeyError, GenlabError):
        return []
    rows = []
    for _, conv in conversations:
        system, groups = exchanges(conv)
        for g in groups:
            users = [m.content for m in g if m.role == "user"]
            answers = [m.content for m in g if m.role == "assistant"]
            if users and answers:
                sys_text = system[0].content if system else None
                rows.append(encode_answer(tok, block_size, users[-1], answers[0], sys_text))
    return rows[:: max(1, len(rows) // DEMOS)][:DEMOS]
