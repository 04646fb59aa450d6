"""What every language model shares: p(x) = Π_i p(x_i | x_<i) over tokens.

A family provides three things and inherits the rest (loss, sampling, log-likelihood, tokenizer I/O):
    init_state(batch_size)  the decoding state of an empty prefix (KV cache, LSTM state, n-gram history)
    step(ids, state)        feed ``B×T`` token ids; return ``B×V`` logits for the next token and the state
    token_logprobs(ids)     log p(ids[i] | ids[:i]) for i = 1 … N-1, each with as much context as the model uses
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genlab.data.text import TokenBatches, load_text, split_text
from genlab.data.tokenizers import Tokenizer, load_tokenizer, save_tokenizer, train_tokenizer
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel, TrainingData, TrainOptions


class LanguageModel(GenerativeModel):
    modality = "text"
    trains_on = "text"
    data_help = "a .txt file, a folder, a .jsonl file, or 'kjv'"
    unit = "tok"
    val_fraction = 0.1
    sampling_controls = frozenset({"max_tokens", "temperature", "top_k", "top_p", "stop", "on_text", "cache"})

    def __init__(self, config: Any, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(config)
        self.tokenizer = tokenizer

    # --- what a family implements -------------------------------------------------------------
    @property
    def max_context(self) -> int | None:
        """The most tokens of context the model can use at once (None: unbounded)."""
        return None

    def sampling_bytes(self, n: int, tokens: int = 0) -> int:
        # per row: the token history, a few copies of the next-token distribution, a recurrent state if any
        c = self.config
        return n * (8 * tokens + 16 * c.vocab_size + 8 * getattr(c, "n_layer", 0) * getattr(c, "n_hidden", 0))

    def init_state(self, batch_size: int, *, cache: bool = True) -> Any:
        """The state of an empty prefix; ``cache=False`` asks for recomputation instead (GPT)."""
        raise NotImplementedError

    def step(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def token_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """``B×T`` token ids → ``B×T×V`` next-token logits (neural families)."""
        raise NotImplementedError

    # --- training hooks: a corpus, split by position; a tokenizer trained on its first part ------------
    @classmethod
    def prepare_data(
        cls, source: str, config: Any, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        text = load_text(source)
        fraction = cls.val_fraction if options.val_fraction is None else options.val_fraction
        train_part, val_part = split_text(text, fraction)
        known = options.resume_from or options.init_from  # a resumed or fine-tuned model keeps its tokenizer
        if known is not None:
            tok = load_tokenizer(known, vocab_size=config.vocab_size if config.vocab_size > 0 else None)
        else:
            tok = train_tokenizer(options.tokenizer, train_part, options.vocab_size)
        config.vocab_size = tok.vocab_size
        ids = torch.tensor(tok.encode(train_part), dtype=torch.long)
        val_ids = torch.tensor(tok.encode(val_part), dtype=torch.long) if val_part else torch.zeros(0, dtype=torch.long)
        describe = (
            f"{len(text):,} characters, {ids.numel():,} training tokens, {val_ids.numel():,} held out; "
            f"vocabulary {tok.vocab_size} ({tok.kind})"
        )
        cache = {"tokenizer": tok, "train_ids": ids, "val_text": val_part}
        return TrainingData(ids, val_ids, describe, {"tokenizer": tok.kind}, cache)

    @classmethod
    def build(cls, config: Any, data: TrainingData, parts: dict[str, GenerativeModel]) -> LanguageModel:
        return cls(config, data.cache["tokenizer"])

    def batches(self, data: TrainingData, *, batch_size: int, seed: int, rank: int) -> Callable[[int], Any]:
        return TokenBatches(data.train, block_size=self.config.block_size, batch_size=batch_size, seed=seed, rank=rank)

    def items_per_batch(self, batch_size: int) -> int:
        return batch_size * self.config.block_size

    def evaluate(self, val: torch.Tensor, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """nanoGPT's estimator of the held-out loss (nats per token): random windows, context growing from zero."""
        from genlab.eval.text import mean_block_loss

        block = getattr(self.config, "block_size", None)
        if block is None:  # a model without a fixed window (n-gram): every held-out token, scored in context
            return {"val_loss": float(-self.token_logprobs(val.to(self.device)).mean())} if val.numel() >= 2 else {}
        if val.numel() < block + 2:
            return {}
        return {"val_loss": mean_block_loss(self, val, block_size=block, batches=batches, batch_size=batch_size)}

    def final_figures(self, data: TrainingData, evals: dict[str, Any]) -> dict[str, Any]:
        """Every held-out token scored with all the context the model uses (``genlab eval text``'s figures)."""
        from genlab.eval.text import evaluate_text

        text = data.cache["val_text"]
        return evaluate_text(self, text) if text and data.val.numel() >= 2 else {}

    # --- shared --------------------------------------------------------------------------------
    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy (nats/token) of targets ``y`` given inputs ``x``, both ``B×T``: the
        pre-training objective L = -Σ log P(x_i | x_{i-k} … x_{i-1})."""
        x, y = batch
        logits = self.logits(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    def sample(
        self, n: int, cond: str | None = None, *, generator: torch.Generator | None = None, **controls: Any
    ) -> list[str]:
        """``n`` continuations of the prompt ``cond``; controls as in :func:`genlab.sampling.text.generate`."""
        from genlab.sampling.text import generate

        return generate(self, cond or "", n=n, generator=generator, **controls).texts

    @torch.inference_mode()
    def log_prob(self, x: str, cond: str | None = None) -> torch.Tensor:
        """log p(x | cond) in nats. Without ``cond`` the first token of ``x`` is given, not scored."""
        tok = self.require_tokenizer()
        prefix = tok.encode(cond) if cond else []
        ids = prefix + tok.encode(x)
        if len(ids) < 2:
            raise GenlabError("log_prob needs at least two tokens of text")
        lp = self.token_logprobs(torch.tensor(ids, dtype=torch.long, device=self.device))
        return lp[max(len(prefix) - 1, 0) :].sum()

    def require_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise GenlabError(f"this {self.family} model has no tokenizer attached")
        return self.tokenizer

    def save_extras(self, directory: Path) -> None:
        save_tokenizer(self.require_tokenizer(), directory)

    def load_extras(self, directory: Path) -> None:
        self.tokenizer = load_tokenizer(directory, vocab_size=self.config.vocab_size)
