"""Chat LM: a GPT fine-tuned on conversations (supervised fine-tuning, InstructGPT's first stage).

Formulation: p(answer | conversation so far) = Π_i p(a_i | template(history), a_<i), the same decoder-only
transformer as :mod:`genlab.models.gpt` reading the chat template of :mod:`genlab.data.chat`
(``<|user|>…<|end|><|assistant|>…<|end|>``). The role markers and ``<|end|>`` are special tokens: starting from a
pretrained LM (``--init``) the vocabulary grows by them, and their new embedding rows start at the mean of the
pretrained rows (Hewitt 2021: the new tokens then change no existing prediction much).
Objective: the next-token loss on assistant tokens only (their content and the ``<|end|>`` that closes them); the
user's and system's tokens are context, never targets. Conversations are padded to the context window with a mask.
Figures: held-out assistant-token loss; how often answers to held-out prompts end with ``<|end|>``; and the
"alignment tax": nats per character on the pretraining text's held-out part before and after fine-tuning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from genlab.data.chat import END, SPECIALS, Conversation, Message, load_conversations, prompt_text, render
from genlab.data.chat_batches import join_batch
from genlab.data.text import load_text, split_text
from genlab.data.tokenizers import Tokenizer, load_tokenizer, train_tokenizer, with_specials
from genlab.errors import GenlabError, GenlabWarning
from genlab.models.base import GenerativeModel, TrainingData, TrainOptions
from genlab.models.gpt import GPT, GPTConfig

if TYPE_CHECKING:
    from genlab.sampling.text import Generation

IGNORE = -100  # a target the loss skips (context tokens, padding)
TAX_CHARS = 8000  # pretraining held-out characters scored for the alignment tax


@dataclass
class ChatConfig(GPTConfig):
    pass


@dataclass
class Examples:
    """Conversations cut to the context window: inputs ``N×T`` and targets ``N×T`` (``IGNORE`` where no loss)."""

    x: torch.Tensor
    y: torch.Tensor
    prompts: list[tuple[str | None, str]]  # (system, first user turn) of each, for sampling figures

    def __len__(self) -> int:
        return self.x.shape[0]


def exchanges(conv: Conversation) -> tuple[list[Message], list[list[Message]]]:
    """(system messages, the rest cut into exchanges): each exchange is user turns then assistant turns."""
    system = [m for m in conv if m.role == "system"]
    rest = [m for m in conv if m.role != "system"]
    groups: list[list[Message]] = []
    for m in rest:
        if not groups or (m.role == "user" and groups[-1][-1].role == "assistant"):
            groups.append([])
        groups[-1].append(m)
    return system, groups


def encode_with_mask(tok: Tokenizer, messages: Sequence[Message]) -> tuple[list[int], list[bool]]:
    """Token ids of the rendered ``messages`` and, per id, whether it is a target (assistant content or its end)."""
    ids: list[int] = []
    target: list[bool] = []
    for m in messages:
        head = tok.encode(f"<|{m.role}|>")
        body = tok.encode(m.content + END)
        ids += head + body
        target += [False] * len(head) + [m.role == "assistant"] * len(body)
    return ids, target


def build_examples(
    tok: Tokenizer, conversations: list[tuple[str, Conversation]], block_size: int, *, bundled: bool
) -> tuple[Examples, int]:
    """Each conversation becomes one or more windows of at most ``block_size + 1`` tokens, cut between exchanges
    (the system message repeats in each). An exchange that cannot fit is refused naming where it is (or, in the
    bundled data, skipped and counted)."""
    xs, ys, prompts, skipped = [], [], [], 0
    for where, conv in conversations:
        system, groups = exchanges(conv)
        fits = [g for g in groups if len(encode_with_mask(tok, system + g)[0]) <= block_size + 1]
        if len(fits) < len(groups) and not bundled:
            raise GenlabError(
                f"{where}: an exchange of this conversation is longer than the model's context "
                f"({block_size} tokens); shorten it or remove it"
            )
        skipped += len(groups) - len(fits)
        windows: list[list[Message]] = [[]]
        for g in fits:
            if len(encode_with_mask(tok, system + windows[-1] + g)[0]) > block_size + 1:
                windows.append([])
            windows[-1] += g
        for win in windows:
            if not any(m.role == "assistant" for m in win):
                continue
            ids, target = encode_with_mask(tok, system + win)
            x = torch.zeros(block_size, dtype=torch.long)
            y = torch.full((block_size,), IGNORE, dtype=torch.long)
            x[: len(ids) - 1] = torch.tensor(ids[:-1])
            y[: len(ids) - 1] = torch.where(torch.tensor(target[1:]), torch.tensor(ids[1:]), IGNORE)
            xs.append(x)
            ys.append(y)
            first = next((m.content for m in win if m.role == "user"), "")
            prompts.append((system[0].content if system else None, first))
    if not xs:
        raise GenlabError("no conversation has an assistant turn that fits the model's context")
    return Examples(torch.stack(xs), torch.stack(ys), prompts), skipped


class ChatLM(GPT):
    family = "chat"
    modality = "chat"
    trains_on = "chat"
    Config = ChatConfig
    data_help = "a .jsonl of conversations ({'messages': [{'role', 'content'}, ...]}) or chatterbot"
    fine_tunes = True
    init_families = ("gpt", "chat")
    unit = "ex"
    val_fraction = 0.1
    sampling_controls = GPT.sampling_controls | {"system"}
    presets = {
        # SFT of the shipped gpt-kjv (its shape comes from --init; these are the trainer's settings). The bundled
        # dialogues are small: held-out loss is lowest near step 200 while the share of answers that close with
        # <|end|> keeps rising; with --set dropout=0.2, 800 steps is the compromise chat-kjv ships (MODEL_CARD.md).
        "tiny": dict(batch_size=32, lr=2e-4, min_lr=2e-5, steps=800, warmup=30, eval_every=200, ckpt_every=200),
        "small": dict(batch_size=32, lr=2e-4, min_lr=2e-5, steps=1600, warmup=50, eval_every=250),
        "base": dict(batch_size=64, lr=2e-4, min_lr=2e-5, steps=4000, warmup=100, eval_every=500),
    }

    # --- the template --------------------------------------------------------------------------------
    def end_id(self) -> int:
        return self.require_tokenizer().special_id(END)

    def stop_ids(self) -> list[int]:
        """The ids of the template tokens, any of which closes an answer."""
        return [self.require_tokenizer().special_id(s) for s in SPECIALS]

    def prompt_ids(self, messages: Sequence[Message], *, reserve: int = 0) -> list[int]:
        """Token ids asking for the next answer to ``messages``; the oldest non-system turns are dropped until the
        prompt leaves ``reserve`` positions of the context for the answer (a warning says so)."""
        tok = self.require_tokenizer()
        system = [m for m in messages if m.role == "system"]
        rest = [m for m in messages if m.role != "system"]
        limit = self.config.block_size - reserve
        dropped = 0
        while True:
            ids = tok.encode(render(system + rest, open_answer=True))
            if len(ids) <= limit or len(rest) <= 1:
                break
            rest, dropped = rest[1:], dropped + 1
        if dropped:
            warnings.warn(
                f"the conversation is longer than the model's context ({self.config.block_size} tokens); "
                f"the oldest {dropped} turn(s) were left out",
                GenlabWarning,
                stacklevel=3,
            )
        if len(ids) >= self.config.block_size:
            raise GenlabError(
                f"the prompt is {len(ids)} tokens, the model's whole context is {self.config.block_size}: "
                "shorten it (or the system message)"
            )
        if len(ids) > limit:
            warnings.warn(
                f"the prompt is {len(ids)} tokens: of the model's context ({self.config.block_size}) it leaves "
                f"{self.config.block_size - len(ids)} for the answer; a longer answer slides the window past the "
                "prompt's start",
                GenlabWarning,
                stacklevel=3,
            )
        return ids

    @torch.inference_mode()
    def respond_ids(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        max_tokens: int = 64,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[list[int], Generation]:
        """(the prompt's token ids, the :class:`Generation` of ``n`` answers to ``messages``): each answer's text,
        its token ids up to and including the special token that closed it, and whether one did."""
        from genlab.sampling.text import generate_ids

        max_tokens = min(max_tokens, self.config.block_size - 1)
        ids = self.prompt_ids(messages, reserve=max_tokens)
        return ids, generate_ids(
            self, ids, n=n, max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            stop=SPECIALS, generator=generator, on_text=on_text,
        )  # fmt: skip

    @torch.inference_mode()
    def answer_batch(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_tokens: int = 64,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[tuple[str, list[int], bool]]:
        """One answer to each of several template prompts (token ids, from :meth:`prompt_ids`), decoded as one
        batch (:func:`genlab.sampling.text.generate_batch`, full distribution): per prompt (its text, its ids up to
        and including the special token that closed it, whether one did)."""
        from genlab.sampling.text import generate_batch

        tok, stops = self.require_tokenizer(), set(self.stop_ids())
        news = generate_batch(self, prompts, max_tokens=max_tokens, stop_ids=sorted(stops), temperature=temperature,
                              generator=generator)  # fmt: skip
        out = []
        for new in news:
            closed = bool(new) and new[-1] in stops
            out.append((tok.decode(new[:-1] if closed else new), new, closed))
        return out

    def respond(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        max_tokens: int = 64,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """``n`` answers to the conversation ``messages`` (the last one the user's), each ending at ``<|end|>``."""
        return self.respond_ids(
            messages, n=n, max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            generator=generator, on_text=on_text,
        )[1].texts  # fmt: skip

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        """``B×T`` ids → ``B×(T-1)``: log p(ids[:, t+1] | ids[:, :t+1]) (differentiable; T ≤ block_size)."""
        logits = self.logits(ids[:, :-1]).float()
        return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]

    def response_logprobs(self, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> torch.Tensor:
        """log p(response | prompt) of each (prompt ids, response ids) row: ``B`` nats (differentiable; each row
        at most ``block_size`` tokens), by :func:`join_batch` and :meth:`sequence_logprobs`."""
        ids, mask = join_batch(prompts, responses)
        return (self.sequence_logprobs(ids.to(self.device)) * mask.to(self.device)).sum(1)

    def sample(
        self, n: int, cond: str | None = None, *, generator: torch.Generator | None = None, **controls: Any
    ) -> list[str]:
        """``n`` answers to the user prompt ``cond`` (after the ``system`` control's message, if given)."""
        system = controls.pop("system", None)
        controls.pop("stop", None)
        controls.pop("cache", None)
        messages = ([Message("system", system)] if system else []) + [Message("user", cond or "")]
        return self.respond(messages, n=n, generator=generator, **controls)

    # --- training hooks ----------------------------------------------------------------------------
    @classmethod
    def prepare_data(
        cls, source: str, config: Any, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        from genlab.data.chat import held_out

        conversations, bundled = load_conversations(source)
        fraction = cls.val_fraction if options.val_fraction is None else options.val_fraction
        known = options.resume_from or options.init_from
        if known is not None:
            tok = load_tokenizer(known)
        else:
            text = "".join(render(c) for _, c in conversations)
            for s in SPECIALS:
                text = text.replace(s, "")
            tok = train_tokenizer(options.tokenizer, text, options.vocab_size)
        tok = with_specials(tok, SPECIALS)
        config.vocab_size = tok.vocab_size
        val = [wc for wc in conversations if held_out(render(wc[1]), fraction)]
        train = [wc for wc in conversations if not held_out(render(wc[1]), fraction)]
        if not train:
            raise GenlabError(f"--data {source}: every conversation is held out; lower --val-fraction")
        train_ex, skipped = build_examples(tok, train, config.block_size, bundled=bundled)
        val_ex = (
            build_examples(tok, val, config.block_size, bundled=bundled)[0]
            if val
            else Examples(train_ex.x[:0], train_ex.y[:0], [])
        )
        describe = (
            f"{len(conversations):,} conversations: {len(train_ex):,} training windows, {len(val_ex):,} held out"
            + (f"; {skipped} exchanges longer than the context skipped" if skipped else "")
            + f"; vocabulary {tok.vocab_size} ({tok.kind} + {len(SPECIALS)} template tokens)"
        )
        cache: dict[str, Any] = {"tokenizer": tok}
        if options.init_model is not None:
            cache["init_model"] = options.init_model
        return TrainingData(train_ex, val_ex, describe, {"tokenizer": tok.kind, "template": "genlab-chat"}, cache)

    def init_from(self, source: GenerativeModel) -> None:
        """Start from a pretrained LM: every weight copied, the embedding table grown by the template's tokens."""
        self.init_from_state(
            grow_embeddings({k: v.float() for k, v in source.state_dict().items()}, self.config.vocab_size)
        )

    def batches(self, data: TrainingData, *, batch_size: int, seed: int, rank: int) -> Callable[[int], Any]:
        ex: Examples = data.train

        def batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            g = torch.Generator().manual_seed(hash((seed, rank, i)) & (2**63 - 1))
            pick = torch.randint(len(ex), (batch_size,), generator=g)
            return ex.x[pick], ex.y[pick]

        return batch

    def items_per_batch(self, batch_size: int) -> int:
        return batch_size

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over assistant tokens (nats/token); context and padding are ignored."""
        x, y = batch
        last = int((y != IGNORE).nonzero()[:, 1].max()) + 1 if (y != IGNORE).any() else 1
        logits = self.logits(x[:, :last])  # no work on the padding after the last target
        flat = logits.reshape(-1, logits.shape[-1]).float()
        return F.cross_entropy(flat, y[:, :last].reshape(-1), ignore_index=IGNORE)

    @torch.no_grad()
    def evaluate(self, val: Examples, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """Held-out assistant-token loss, every held-out window counted (weighted by its targets)."""
        if len(val) == 0:
            return {}
        total, count = 0.0, 0
        for s in range(0, len(val), batch_size):
            x, y = val.x[s : s + batch_size].to(self.device), val.y[s : s + batch_size].to(self.device)
            n = int((y != IGNORE).sum())
            total += self.loss((x, y)).item() * n
            count += n
        return {"val_loss": total / max(count, 1)}

    def final_figures(self, data: TrainingData, evals: dict[str, Any]) -> dict[str, Any]:
        figures = dict(evals) if evals else self.evaluate(data.val)
        if len(data.val):
            figures["end_rate"] = end_rate(self, [p for _, p in data.val.prompts[:64]], seed=0)
        base = data.cache.get("init_model")
        if base is not None:
            figures |= alignment_tax(base, self)
        return figures


def grow_embeddings(state: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """``state`` with its (tied) token embedding grown to ``vocab_size`` rows; the new rows (the template's tokens)
    start at the mean of the pretrained rows (Hewitt 2021)."""
    old = state["wte.weight"]
    if old.shape[0] > vocab_size:
        raise GenlabError(f"--init: its vocabulary ({old.shape[0]}) is larger than this model's ({vocab_size})")
    if old.shape[0] == vocab_size:
        return state
    grown = torch.cat([old, old.mean(0, keepdim=True).expand(vocab_size - old.shape[0], -1)])
    return state | {"wte.weight": grown, "lm_head.weight": grown}


def end_rate(model: ChatLM, prompts: list[str], *, seed: int = 0, max_tokens: int = 96) -> float:
    """The share of ``prompts`` whose sampled answer (temperature 1) closes with ``<|end|>`` within ``max_tokens``
    (at most half the context: the prompt keeps the other half)."""
    from genlab.sampling.text import generate_ids

    if not prompts:
        return float("nan")
    tok = model.require_tokenizer()
    max_tokens = min(max_tokens, model.config.block_size // 2)  # a small context keeps half for the prompt
    g = torch.Generator(device=model.device).manual_seed(seed)
    ended = 0
    for p in prompts:
        ids = tok.encode(prompt_text(p))[-(model.config.block_size - max_tokens) :]
        out = generate_ids(model, ids, n=1, max_tokens=max_tokens, stop=SPECIALS, generator=g)
        ended += out.stopped[0]
    return ended / len(prompts)


def alignment_tax(base: GenerativeModel, model: GenerativeModel) -> dict[str, float]:
    """Nats per character on the held-out tail of the pretraining text of ``base`` (the ``--init`` checkpoint),
    before (``base``) and after (``model``) fine-tuning; {} where that text is not available here."""
    from genlab.eval.text import evaluate_text

    run = base.run or {}
    base.to(model.device)
    try:
        text = split_text(load_text(run["data"]), float(run.get("val_fraction", 0.1)))[1][:TAX_CHARS]
    except (KeyError, GenlabError, TypeError, ValueError):
        return {}
    if len(text) < 100:
        return {}
    before = evaluate_text(base, text)["nats_per_char"]
    was = model.training
    model.eval()
    after = evaluate_text(model, text)["nats_per_char"]
    model.train(was)
    return {"pretrain_nats_per_char_before": before, "pretrain_nats_per_char_after": after}
