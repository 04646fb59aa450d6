"""Conversations and the chat template: what a chat model reads and writes.

A conversation is the format chat datasets already use, one JSON object per line of a .jsonl file::

    {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "Hello"},
                  {"role": "assistant", "content": "Hi"}]}

The template renders each message as ``<|role|>content<|end|>`` and ends a prompt with ``<|assistant|>``, so the
model's next tokens are its answer and ``<|end|>`` says it is done. The role markers and ``<|end|>`` are special
tokens: the tokenizer keeps each as one id (:class:`genlab.data.tokenizers.SpecialTokenizer`).

Bundled (offline):
    chatterbot   the English dialogues of the ``chatterbot-corpus`` package (BSD): 2.4 k short conversations on
                 greetings, food, science, ... with the user and the assistant taking turns.
    prompts      user turns of the same corpus (of at most 64 characters, so a 128-token context has room for the
                 answer) for the preference stages (label pairs, PPO, compare); ``prompts:train`` and
                 ``prompts:test`` split them 80/20 by content.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from genlab.data.text import read_jsonl
from genlab.errors import GenlabError
from genlab.io import user_path

ROLES = ("system", "user", "assistant")
END = "<|end|>"
SPECIALS = tuple(f"<|{r}|>" for r in ROLES) + (END,)
BUNDLED_PROMPT_CHARS = 64  # the bundled prompts leave room for an answer in a 128-token context


@dataclass(frozen=True)
class Message:
    role: str
    content: str


Conversation = tuple[Message, ...]


def render(messages: list[Message] | tuple[Message, ...], *, open_answer: bool = False) -> str:
    """The template's text for ``messages``; with ``open_answer`` it ends with ``<|assistant|>`` (a prompt)."""
    text = "".join(f"<|{m.role}|>{m.content}{END}" for m in messages)
    return text + ("<|assistant|>" if open_answer else "")


def prompt_text(prompt: str, system: str | None = None) -> str:
    """The template's text asking for the answer to one user ``prompt`` (after a ``system`` message if given)."""
    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    return render(messages, open_answer=True)


# --- reading conversations -------------------------------------------------------------------------------
def parse_conversation(obj: object, where: str, *, prompt: bool = False) -> Conversation:
    """One conversation from a parsed JSON line; anything malformed is a GenlabError that starts with ``where``.
    With ``prompt`` it asks for the next answer: its last message is the user's (no assistant turn is needed)."""
    if not isinstance(obj, dict) or "messages" not in obj:
        raise GenlabError(f'{where}: expected an object with "messages" (a list of {{"role", "content"}})')
    raw = obj["messages"]
    if not isinstance(raw, list) or not raw:
        raise GenlabError(f'{where}: "messages" must be a non-empty list')
    out = []
    for k, m in enumerate(raw, start=1):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise GenlabError(f'{where}: message {k} must be an object with a "role" and a string "content"')
        role = m.get("role")
        if role not in ROLES:
            raise GenlabError(f"{where}: message {k} has unknown role {role!r}; roles are {', '.join(ROLES)}")
        if role == "assistant" and not m["content"].strip():
            raise GenlabError(f"{where}: message {k} is an empty assistant turn")
        if any(s in m["content"] for s in SPECIALS):
            raise GenlabError(f"{where}: message {k} contains a template token ({', '.join(SPECIALS)})")
        out.append(Message(role, m["content"]))
    if prompt:
        if out[-1].role != "user":
            raise GenlabError(f"{where}: the last message must be the user's (the one to answer)")
        return tuple(out)
    if not any(m.role == "assistant" for m in out):
        raise GenlabError(f"{where}: the conversation has no assistant turn to learn from")
    return tuple(out)


def read_conversations(path: str | Path) -> list[tuple[int, Conversation]]:
    """(line number, conversation) for every non-blank line of a JSONL file."""
    path = user_path(path)
    out = [(n, parse_conversation(obj, f"{path} line {n}")) for n, obj in read_jsonl(path)]
    if not out:
        raise GenlabError(f"{path}: no conversations in it")
    return out


def chatterbot_conversations() -> list[Conversation]:
    """The English dialogues of ``chatterbot-corpus``: turns alternate user, assistant, user, ..."""
    import yaml

    try:
        import chatterbot_corpus
    except ImportError as e:  # pragma: no cover - a dependency
        raise GenlabError("the bundled dialogues need the 'chatterbot-corpus' package") from e
    root = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    out = []
    for f in sorted(root.glob("*.yml")):
        for turns in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations") or []:
            texts = [" ".join(str(t).split()) for t in turns if t is not None]
            texts = [t for t in texts if t and not any(s in t for s in SPECIALS)]
            if len(texts) >= 2:
                out.append(tuple(Message(ROLES[1 + i % 2], t) for i, t in enumerate(texts)))
    return out


def load_conversations(source: str) -> tuple[list[tuple[str, Conversation]], bool]:
    """(where, conversation) pairs of ``--data`` (``chatterbot`` or a .jsonl file) and whether it is bundled
    (a bundled conversation too long for the context is skipped; one of the user's is refused by line number)."""
    if source == "chatterbot" and not Path(source).exists():
        return [(f"chatterbot #{i}", c) for i, c in enumerate(chatterbot_conversations())], True
    path = user_path(source)
    if not path.is_file():
        raise GenlabError(f"--data {source}: no such file (a .jsonl of conversations, or the bundled chatterbot)")
    return [(f"{path} line {n}", c) for n, c in read_conversations(path)], False


def held_out(key: str, fraction: float) -> bool:
    """A stable split by content: the same text is held out on every machine and every run."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < fraction


def load_prompts(source: str) -> list[str]:
    """User prompts: ``prompts`` / ``prompts:train`` / ``prompts:test`` (the bundled dialogues' user turns, split
    by content so the held-out ones never train), a .txt file (one per line) or a .jsonl of ``{"prompt": ...}``."""
    if source.startswith("prompts") and not Path(source).exists():
        part = source.partition(":")[2] or "all"
        if part not in ("all", "train", "test"):
            raise GenlabError(f"{source}: the bundled prompts are prompts, prompts:train or prompts:test")
        seen = dict.fromkeys(
            m.content
            for c in chatterbot_conversations()
            for m in c
            if m.role == "user" and len(m.content) <= BUNDLED_PROMPT_CHARS
        )
        prompts = [p for p in seen if part == "all" or held_out(p, 0.2) == (part == "test")]
        random.Random(0).shuffle(prompts)
        return prompts
    path = user_path(source)
    if not path.is_file():
        raise GenlabError(f"{source}: no such file (prompts: a .txt with one per line, a .jsonl, or 'prompts')")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise GenlabError(f"{path}: cannot read it as UTF-8 text ({e})") from None
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix.lower() == ".jsonl":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise GenlabError(f"{path} line {n}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
                raise GenlabError(f'{path} line {n}: expected an object with a "prompt" string')
            line = obj["prompt"]
        if any(s in line for s in SPECIALS):
            raise GenlabError(f"{path} line {n}: contains a template token ({', '.join(SPECIALS)})")
        out.append(line.strip())
    if not out:
        raise GenlabError(f"{path}: no prompts in it")
    return out
