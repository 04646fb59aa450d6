"""Tokenizers: character-level with byte fallback, and byte-level BPE (HF ``tokenizers``).

Both are lossless on any Unicode text: ``decode(encode(s)) == s``. The character tokenizer maps each
character seen in training to one id and any other character to the ids of its UTF-8 bytes (256
byte tokens follow the characters), so an unseen emoji still round-trips. A checkpoint stores the
tokenizer as ``tokenizer.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from genlab.errors import GenlabError
from genlab.io import write_text

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def to_json(self) -> dict: ...


class CharTokenizer:
    """One id per known character; unknown characters fall back to their UTF-8 bytes."""

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise GenlabError("char tokenizer: the vocabulary must be distinct single characters")
        self.chars = list(chars)
        self._index = {c: i for i, c in enumerate(self.chars)}
        self._byte0 = len(self.chars)
        # Lookup table from code point to id (-1 = not a known char) for fast encoding.
        top = max((ord(c) for c in self.chars), default=0) + 1
        self._lut = np.full(top, -1, dtype=np.int64)
        for c, i in self._index.items():
            self._lut[ord(c)] = i

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 256

    def encode(self, text: str) -> list[int]:
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        ids = np.full(len(cps), -1, dtype=np.int64)
        inside = cps < len(self._lut)
        ids[inside] = self._lut[cps[inside]]
        if (ids >= 0).all():
            return ids.tolist()
        out: list[int] = []
        for ch, i in zip(text, ids.tolist(), strict=True):
            if i >= 0:
                out.append(i)
            else:
                out.extend(self._byte0 + b for b in ch.encode("utf-8", "surrogatepass"))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        parts: list[str] = []
        pending = bytearray()
        for i in ids:
            i = int(i)
            if i >= self._byte0:
                pending.append(i - self._byte0)
                continue
            if pending:
                parts.append(pending.decode("utf-8", "replace"))
                pending.clear()
            parts.append(self.chars[i])
        if pending:
            parts.append(pending.decode("utf-8", "replace"))
        return "".join(parts)

    def to_json(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}


class BPETokenizer:
    """Byte-level BPE trained locally with HF ``tokenizers`` (GPT-2 style pre-tokenization)."""

    kind = "bpe"

    def __init__(self, hf_tokenizer) -> None:  # noqa: ANN001 - tokenizers.Tokenizer
        self._tok = hf_tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int = 1024) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise GenlabError(f"--vocab-size {vocab_size}: byte-level BPE needs at least 257 (256 bytes + merges)")
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        # Lines are encoded in parallel, so a token never spans a line break (training saw the same).
        out: list[int] = []
        for enc in self._tok.encode_batch(text.splitlines(keepends=True)):
            out.extend(enc.ids)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids])

    def to_json(self) -> dict:
        return {"kind": self.kind, "hf": json.loads(self._tok.to_str())}


class SpecialTokenizer:
    """A tokenizer grown by special tokens (a chat template's role markers): each special string becomes one id
    after the base vocabulary and is never split. The base tokenizer's ids are unchanged, so a model trained with
    the base keeps every embedding it learned; the model grows its embedding table by the new rows."""

    def __init__(self, base: Tokenizer, specials: Sequence[str]) -> None:
        if isinstance(base, SpecialTokenizer):
            specials = [*base.specials, *(s for s in specials if s not in base.specials)]
            base = base.base
        if not specials or len(set(specials)) != len(specials) or not all(isinstance(s, str) and s for s in specials):
            raise GenlabError("special tokens must be distinct non-empty strings")
        self.base = base
        self.kind = base.kind
        self.specials = list(specials)
        self._first = base.vocab_size
        self._ids = {s: self._first + i for i, s in enumerate(self.specials)}
        longest_first = sorted(self.specials, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(s) for s in longest_first) + ")")

    @property
    def vocab_size(self) -> int:
        return self._first + len(self.specials)

    def special_id(self, token: str) -> int:
        return self._ids[token]

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self._split.split(text):
            if piece in self._ids:
                out.append(self._ids[piece])
            elif piece:
                out.extend(self.base.encode(piece))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            i = int(i)
            if i >= self._first:
                if run:
                    parts.append(self.base.decode(run))
                    run = []
                parts.append(self.specials[i - self._first])
            else:
                run.append(i)
        if run:
            parts.append(self.base.decode(run))
        return "".join(parts)

    def to_json(self) -> dict:
        return self.base.to_json() | {"specials": self.specials}


def with_specials(tok: Tokenizer, specials: Sequence[str]) -> SpecialTokenizer:
    """``tok`` grown by the ``specials`` it lacks (ids after its vocabulary; a grown tokenizer keeps its order)."""
    have = tok.specials if isinstance(tok, SpecialTokenizer) else []
    missing = [s for s in specials if s not in have]
    if isinstance(tok, SpecialTokenizer) and not missing:
        return tok
    return SpecialTokenizer(tok, missing)


def train_tokenizer(kind: str, text: str, vocab_size: int = 1024) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``char`` or ``bpe``) on ``text``."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise GenlabError(f"unknown tokenizer {kind!r}; choose char or bpe")


def tokenizer_from_json(data: object, source: str | Path = TOKENIZER_FILE) -> Tokenizer:
    """The tokenizer a ``tokenizer.json`` holds; anything malformed is a :class:`GenlabError` naming ``source``."""
    if not isinstance(data, dict):
        raise GenlabError(f'{source}: expected a JSON object with a tokenizer "kind", found {type(data).__name__}')
    if "specials" in data:
        specials = data["specials"]
        if not isinstance(specials, list) or not all(isinstance(s, str) for s in specials):
            raise GenlabError(f'{source}: "specials" must be a list of strings')
        base = tokenizer_from_json({k: v for k, v in data.items() if k != "specials"}, source)
        try:
            return SpecialTokenizer(base, specials)
        except GenlabError as e:
            raise GenlabError(f"{source}: {e}") from None
    kind = data.get("kind")
    if kind == "char":
        chars = data.get("chars")
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise GenlabError(f'{source}: a char tokenizer\'s "chars" must be a list of characters')
        try:
            return CharTokenizer(chars)
        except GenlabError as e:
            raise GenlabError(f"{source}: {e}") from None
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        if not isinstance(data.get("hf"), dict):
            raise GenlabError(f'{source}: a bpe tokenizer\'s "hf" must be a JSON object (a tokenizers file)')
        try:
            return BPETokenizer(HFTokenizer.from_str(json.dumps(data["hf"])))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises a bare Exception for bad files
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise GenlabError(f"{source}: not a valid BPE tokenizer ({reason})") from None
    raise GenlabError(f"{source}: unknown tokenizer kind {kind!r}; expected char or bpe")


def check_vocabulary(tok: Tokenizer, vocab_size: int, source: str | Path) -> None:
    """A tokenizer may not emit ids the model has no embedding for: a :class:`GenlabError` naming both sizes."""
    if tok.vocab_size > vocab_size:
        raise GenlabError(
            f"{source}: the tokenizer has {tok.vocab_size} tokens, more than the model's vocab_size={vocab_size}"
        )


def save_tokenizer(tok: Tokenizer, directory: str | Path) -> None:
    write_text(Path(directory) / TOKENIZER_FILE, json.dumps(tok.to_json(), ensure_ascii=False))


def load_tokenizer(directory: str | Path, *, vocab_size: int | None = None) -> Tokenizer:
    """The tokenizer of a checkpoint directory. With ``vocab_size`` (the model's), a tokenizer with more tokens
    than the model has embeddings is refused."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise GenlabError(f"{directory}: checkpoint is missing {TOKENIZER_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GenlabError(f"{path}: not a valid tokenizer file ({e})") from None
    tok = tokenizer_from_json(data, path)
    if vocab_size is not None:
        check_vocabulary(tok, vocab_size, path)
    return tok
