"""The demo's chat section: the same prompts answered by the pretrained model given the chat template, by its
supervised fine-tuning (the shipped ``chat-kjv``) and by its RLHF successor where one ships, each scored by the
sentiment judge the preference stages used."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import torch

from genlab.assets import DEFAULTS, ROOT
from genlab.checkpoint import load_model
from genlab.data.chat import Message
from genlab.eval.judges import load_judge
from genlab.models.chat import ChatLM

PROMPTS = ("Hello", "How are you?", "What is your favorite book?", "Tell me about science.")
STAGES = (("pretrained (gpt-kjv, template only)", "text"), ("SFT", "chat"), ("RLHF", "chat-rlhf"))


def _installed(task: str) -> bool:
    return task in DEFAULTS and (ROOT / DEFAULTS[task] / "config.json").is_file()


def _models() -> list[tuple[str, ChatLM]]:
    """(label, chat model) for every stage that ships (none without the shipped chat model); the pretrained GPT is
    read through the chat template, its new template tokens at the mean embedding (what SFT starts from)."""
    if not _installed("chat"):
        return []
    chat = load_model(task="chat")
    out = []
    for label, task in STAGES:
        if not _installed(task):
            continue
        if task == "text":
            model = type(chat)(chat.config, chat.tokenizer)
            model.init_from(load_model(task="text"))
            model.eval()
        else:
            model = chat if task == "chat" else load_model(task=task)
        out.append((label, model))
    return out


def chat_section(out_dir: Path, seed: int) -> str:
    models = _models()
    if not models:
        return ""
    judge = load_judge("sentiment")
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in models)
    rows = []
    for i, prompt in enumerate(PROMPTS):
        cells = []
        for _, model in models:
            g = torch.Generator().manual_seed(seed + i)
            answer = model.respond([Message("user", prompt)], max_tokens=48, temperature=0.7, generator=g)[0]
            score = judge([prompt], [answer])[0]
            cells.append(f"<td>{html.escape(answer)}<div class='meta'>sentiment {score:+.2f}</div></td>")
        rows.append(f"<tr><td><b>{html.escape(prompt)}</b></td>{''.join(cells)}</tr>")
    return _answers_html(head, rows) + _frontier_html(out_dir)


def _frontier_html(out_dir: Path) -> str:
    """The frontier plot the RLHF model's card reports (genlab compare chat), where the RLHF model ships."""
    if not _installed("chat-rlhf") or not (ROOT / DEFAULTS["chat-rlhf"] / "frontier.png").is_file():
        return ""
    shutil.copyfile(ROOT / DEFAULTS["chat-rlhf"] / "frontier.png", out_dir / "chat_frontier.png")
    return (
        "<p>How far each method moved the judge's score for how much it moved away from the SFT model (KL, nats per "
        "answer), on held-out prompts: SFT, best-of-n picked by the reward model, PPO and DPO (the shipped RLHF "
        f"model's card, {html.escape(DEFAULTS['chat-rlhf'])}/MODEL_CARD.md, says how it was measured).</p>"
        "<img src='chat_frontier.png' alt='judge score against KL from SFT' style='max-width:640px'>"
    )


def _answers_html(head: str, rows: list[str]) -> str:
    return (
        "<h2>Chat: from a pretrained model to a chat model</h2>"
        "<p>The same prompts, sampled at temperature 0.7 with the same seed, answered by each stage (docs/chat.md). "
        "The pretrained model has never seen the template, so it rarely closes an answer; supervised fine-tuning on "
        "the bundled dialogues teaches it the turn-taking; RLHF tunes it to what the judge (VADER sentiment) prefers. "
        "Try: <code>genlab chat</code></p>"
        f"<table><tr><th>prompt</th>{head}</tr>{''.join(rows)}</table>"
    )
