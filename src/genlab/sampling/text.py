"""Autoregressive text decoding: temperature, top-k, top-p (nucleus), stop strings, streaming.

Each step feeds the newest token to ``model.step`` (a KV cache for GPT, the recurrent state for the
LSTM, the recent history for the n-gram), so generating costs one position per token.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from genlab.errors import GenlabError, GenlabWarning


class TextModel(Protocol):
    """What decoding needs of a language model (:class:`genlab.models.lm.LanguageModel` provides it); sampling
    sits below the model families, so it names the interface, not the class."""

    training: bool

    @property
    def max_context(self) -> int | None: ...

    @property
    def device(self) -> torch.device: ...

    def require_tokenizer(self) -> Any: ...

    def init_state(self, batch_size: int, *, cache: bool = True) -> Any: ...

    def step(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


class BatchTextModel(TextModel, Protocol):
    """What decoding several prompts as one batch needs besides (:class:`genlab.models.gpt.GPT` provides it)."""

    def keep_rows(self, state: Any, rows: torch.Tensor) -> Any: ...


@dataclass
class Generation:
    texts: list[str]  # the continuations, without the prompt
    prompt_tokens: int
    new_tokens: int  # tokens generated (all rows)
    seconds: float
    stopped: list[bool]  # per row: a stop string ended it (not max_tokens)
    ids: list[list[int]]  # per row: the new token ids, up to and including the one that completed a stop string

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else float("inf")


def filter_logits(
    logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """Scale ``B×V`` logits by 1/temperature, then keep the top-k and the smallest set whose
    probability reaches top_p (Holtzman et al. 2020); the rest become -inf."""
    # a floor on T: below it float32 logits / T overflow to ±inf and softmax gives NaN; at it sampling is greedy
    logits = logits.float() / max(temperature, 1e-30)
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens ranked above it already reach top_p (the first always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def check_controls(temperature: float, top_k: int, top_p: float, max_tokens: int) -> None:
    if not (math.isfinite(temperature) and math.isfinite(top_p)):
        raise GenlabError(f"--temperature {temperature}, --top-p {top_p}: must be finite numbers")
    if temperature < 0:
        raise GenlabError(f"--temperature {temperature}: must be ≥ 0 (0 picks the most likely token)")
    if top_k < 0:
        raise GenlabError(f"--top-k {top_k}: must be ≥ 0 (0 keeps every token)")
    if not 0.0 < top_p <= 1.0:
        raise GenlabError(f"--top-p {top_p}: must be in (0, 1]")
    if max_tokens < 0:
        raise GenlabError(f"--max-tokens {max_tokens}: must be ≥ 0")


class _StopWatch:
    """Incremental decoding of one row: emits text that is final (no stop string can still start
    in it, no unfinished UTF-8 character) and reports when a stop string appears."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.emitted = 0
        self.done = False
        self.text = ""

    def update(self, text: str) -> str:
        self.text = text
        for s in self.stop:
            at = text.find(s)
            if at >= 0:
                self.text = text[:at]
                self.done = True
        end = len(self.text) if self.done else max(self.emitted, len(self.text) - self.hold)
        if not self.done:
            while end > self.emitted and self.text[end - 1] == "\ufffd":  # maybe half a character
                end -= 1
        new, self.emitted = self.text[self.emitted : end], max(self.emitted, end)
        return new

    def flush(self) -> str:
        new, self.emitted = self.text[self.emitted :], len(self.text)
        return new


def generate(
    model: TextModel,
    prompt: str = "",
    *,
    n: int = 1,
    max_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop: Sequence[str] = (),
    generator: torch.Generator | None = None,
    on_text: Callable[[str], None] | None = None,
    cache: bool = True,
) -> Generation:
    """Sample ``n`` continuations of ``prompt``.

    temperature 0 is greedy decoding. ``stop`` strings end a row (the stop string is not included).
    ``on_text`` receives the first row's new text as it becomes final (streaming). An empty prompt
    starts after a newline. A prompt longer than the model's context keeps its last tokens, with a
    warning. ``cache=False`` recomputes the whole window each step (GPT; for comparison).
    """
    check_controls(temperature, top_k, top_p, max_tokens)
    ids = model.require_tokenizer().encode(prompt if prompt else "\n")
    limit = model.max_context
    if limit is not None and len(ids) > limit:
        warnings.warn(
            f"the prompt has {len(ids)} tokens but the model's context is {limit}; keeping the last {limit}",
            GenlabWarning,
            stacklevel=3,
        )
        ids = ids[-limit:]
    return generate_ids(
        model, ids, n=n, max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, stop=stop,
        generator=generator, on_text=on_text, cache=cache,
    )  # fmt: skip


@torch.inference_mode()
def generate_ids(
    model: TextModel,
    ids: list[int],
    *,
    n: int = 1,
    max_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop: Sequence[str] = (),
    generator: torch.Generator | None = None,
    on_text: Callable[[str], None] | None = None,
    cache: bool = True,
) -> Generation:
    """:func:`generate` from prompt token ids (at least one, within the model's context)."""
    check_controls(temperature, top_k, top_p, max_tokens)
    if n < 1:
        raise GenlabError(f"--n {n}: must be at least 1")
    if not ids:
        raise GenlabError("the prompt must have at least one token")
    tok = model.require_tokenizer()
    device = model.device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    state = model.init_state(n, cache=cache)
    x = torch.tensor([ids] * n, dtype=torch.long, device=device)
    watch = [_StopWatch(stop) for _ in range(n)] if (stop or on_text) else None
    out: list[list[int]] = [[] for _ in range(n)]
    alive = torch.ones(n, dtype=torch.bool, device=device)
    for _ in range(max_tokens):
        logits, state = model.step(x, state)
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            probs = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
        for r, t in enumerate(nxt.tolist()):
            if alive[r]:
                out[r].append(t)
        if watch is not None:
            for r in range(n):
                if not alive[r]:
                    continue
                new = watch[r].update(tok.decode(out[r]))
                if r == 0 and on_text is not None and new:
                    on_text(new)
                if watch[r].done:
                    alive[r] = False
            if not alive.any():
                break
        x = nxt[:, None]
    seconds = time.perf_counter() - start
    if watch is not None:
        texts = [w.text for w in watch]
        if on_text is not None:
            rest = watch[0].flush()
            if rest:
                on_text(rest)
    else:
        texts = [tok.decode(o) for o in out]
    model.train(was_training)
    stopped = [w.done for w in watch] if watch is not None else [False] * n
    return Generation(texts, len(ids), sum(len(o) for o in out), seconds, stopped, out)


@torch.inference_mode()
def generate_batch(
    model: BatchTextModel,
    prompts: Sequence[Sequence[int]],
    *,
    max_tokens: int,
    stop_ids: Sequence[int] = (),
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """One continuation of each of several prompts (token ids, lengths may differ), decoded together: every row
    starts at position 0 and is fed its own prompt's tokens until its prompt ends, then samples; a row ends after
    a token of ``stop_ids`` (kept) or ``max_tokens`` new tokens. Each row's prompt plus ``max_tokens`` must fit the
    model's context. Returns each row's new token ids. ``B`` rows cost one batched step per position, not ``B``; rows
    that have finished leave the batch (``model.keep_rows``), so a batch costs about its rows' own lengths, not B
    times the longest."""
    check_controls(temperature, 0, 1.0, max_tokens)
    if not prompts or not all(prompts):
        raise GenlabError("every prompt must have at least one token")
    lengths = [len(p) for p in prompts]
    limit = model.max_context
    if limit is not None and max(lengths) + max_tokens > limit:
        raise GenlabError(f"a prompt of {max(lengths)} tokens leaves no room for {max_tokens} new ones in {limit}")
    device, n, first = model.device, len(prompts), min(lengths)
    was_training = model.training
    model.eval()
    state = model.init_state(n)
    fed = torch.zeros(n, max(lengths) + max_tokens, dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        fed[r, : len(p)] = torch.tensor(p, device=device)
    length = torch.tensor(lengths, device=device)
    stops = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    rows = torch.arange(n, device=device)  # the rows still decoded (finished ones leave the batch)
    x = fed[:, :first]
    for t in range(first, max(lengths) + max_tokens):
        logits, state = model.step(x, state)
        # every row draws, the finished ones from a uniform stand-in: the same random numbers go to the same row
        # as when no row leaves, so the answers do not depend on when the batch shrinks
        full = logits.new_zeros(n, logits.shape[-1]).index_copy_(0, rows, logits)
        if temperature == 0:
            nxt = full.argmax(-1)
        else:
            nxt = torch.multinomial((full.float() / temperature).softmax(-1), 1, generator=generator)[:, 0]
        answering = (t >= length) & ~done
        fed[:, t] = torch.where(answering, nxt, fed[:, t])
        done |= answering & (torch.isin(nxt, stops) | (t + 1 - length >= max_tokens))
        if bool(done.all()):
            break
        live = (~done[rows]).nonzero()[:, 0]
        if 8 * len(live) <= 7 * len(rows):  # an eighth of the batch has finished: drop those rows
            state, rows = model.keep_rows(state, live), rows[live]
        x = fed[rows, t : t + 1]
    model.train(was_training)
    out, stop_set = [], set(stop_ids)
    for r, p in enumerate(prompts):
        new = fed[r, len(p) : len(p) + max_tokens].tolist()
        end = next((i + 1 for i, tok in enumerate(new) if tok in stop_set), None)
        out.append(new[:end] if end is not None else new)
    return out
