"""Tiny chat models for the judge, labelling and chat-evaluation tests: random ones built in a blink, and one trained
briefly on happy and gloomy answers (it learns to close its answers with <|end|>)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from genlab.checkpoint import save_model
from genlab.data.chat import SPECIALS
from genlab.data.tokenizers import CharTokenizer, Tokenizer, with_specials
from genlab.models.chat import ChatConfig, ChatLM

HAPPY = ["I love it, thank you!", "That is wonderful and great.", "Yes, happy to help.", "What a lovely day."]
GLOOMY = ["I hate it.", "That is terrible and awful.", "No, go away.", "What a horrible day."]
USERS = ["hello", "how are you", "what do you think", "tell me something", "good morning", "is it nice"]
CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.!?'"


def char_tokenizer(chars: str = CHARS) -> Tokenizer:
    return with_specials(CharTokenizer(sorted(set(chars))), SPECIALS)


def tiny_chat(seed: int = 0, *, tokenizer: Tokenizer | None = None, block_size: int = 48) -> ChatLM:
    """A 1-layer chat model with random weights (eval mode)."""
    torch.manual_seed(seed)
    tok = tokenizer if tokenizer is not None else char_tokenizer()
    cfg = ChatConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=32)
    return ChatLM(cfg, tok).eval()


def save_tiny_chat(path: Path, seed: int = 0, **kw) -> Path:
    save_model(tiny_chat(seed, **kw), path)
    return path


def conversations(path: Path, n: int = 60) -> Path:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            turns = [("user", rng.choice(USERS)), ("assistant", rng.choice(HAPPY + GLOOMY))]
            f.write(json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]}) + "\n")
    return path


def train_tiny_chat(root: Path) -> Path:
    """A chat model trained for 150 steps on :func:`conversations` (it ends most answers with <|end|>)."""
    from genlab.train.run import train

    data = conversations(root / "conv.jsonl")
    overrides = {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 64, "steps": 150, "lr": 3e-3}
    overrides |= {"batch_size": 16, "eval_every": 1000, "ckpt_every": 1000}
    train(family="chat", data=str(data), out=root / "sft", overrides=overrides, quiet=True)
    return root / "sft"


def prompts_file(path: Path, prompts: list[str] | None = None) -> Path:
    path.write_text("\n".join(prompts or USERS) + "\n", encoding="utf-8")
    return path
