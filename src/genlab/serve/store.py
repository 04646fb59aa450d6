"""The studio's history: every result with its full parameters, kept across restarts.

One folder (``--root``, default ``~/.genlab/studio``) holds ``history.db`` (SQLite: one row per result — id, kind,
time, parameters as JSON, the text of a text result, favourite) and ``files/ID.png``. Ids are 32 hex digits made
here; a request names a result only by id, and an id that is not 32 hex digits is not found — no path from the
client ever reaches the filesystem. PNGs carry their parameters twice: a ``parameters`` text chunk in the
AUTOMATIC1111 convention (``prompt`` / ``Negative prompt: …`` / ``Steps: 50, Sampler: ddim, Seed: 0, …``) and a
``genlab`` chunk with the JSON, so a downloaded image still says how it was made and dropping it back in restores
the settings (:func:`read_parameters`).
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from genlab.data.images import to_uint8
from genlab.io import atomic_path

ID = re.compile(r"[0-9a-f]{32}")
PREVIEWS = 64  # previews kept in memory (never in the history)
SCHEMA = """CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, created REAL NOT NULL, params TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '', has_file INTEGER NOT NULL DEFAULT 0, favourite INTEGER NOT NULL DEFAULT 0)"""


def new_id() -> str:
    return uuid.uuid4().hex


def valid_id(text: str) -> bool:
    return bool(ID.fullmatch(text))


def a1111_parameters(params: dict[str, Any]) -> str:
    """The ``parameters`` text chunk: the prompt, the negative prompt, then ``Key: value`` pairs."""
    lines = [str(params.get("prompt", ""))]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    rest = {k: v for k, v in params.items() if k not in ("prompt", "negative_prompt")}
    lines.append(", ".join(f"{k.replace('_', ' ').capitalize()}: {v}" for k, v in rest.items()))
    return "\n".join(lines)


def png_bytes(image: np.ndarray, params: dict[str, Any]) -> bytes:
    """An image in [0, 1] (``H×W`` or ``H×W×3``) as PNG bytes with its parameters in text chunks (the same
    parameters give the same bytes: no time stamp)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", a1111_parameters(params))
    info.add_text("genlab", json.dumps(params, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(to_uint8(np.asarray(image))).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_parameters(data: bytes) -> dict[str, Any] | None:
    """The ``genlab`` parameters of a PNG the studio wrote, or None (not a PNG, or none recorded)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            text = img.info.get("genlab") if img.format == "PNG" else None
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


class Store:
    """The history database and result files under ``root``; safe to use from the worker and request threads."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.files = self.root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "history.db", check_same_thread=False)
        self._db.execute(SCHEMA)
        self._db.commit()
        self._previews: OrderedDict[str, bytes] = OrderedDict()

    def add_preview(self, image: np.ndarray, params: dict[str, Any]) -> str:
        """A preview of a running job, kept in memory (the last :data:`PREVIEWS`), not in the history; its id."""
        item = new_id()
        data = png_bytes(image, params)
        with self._lock:
            self._previews[item] = data
            while len(self._previews) > PREVIEWS:
                self._previews.popitem(last=False)
        return item

    def preview(self, item: str) -> bytes | None:
        with self._lock:
            return self._previews.get(item)

    def add(self, kind: str, params: dict[str, Any], *, image: np.ndarray | None = None, text: str = "") -> str:
        """Record a result (writing its PNG first, atomically); its id."""
        item = new_id()
        if image is not None:
            with atomic_path(self.files / f"{item}.png") as tmp:
                tmp.write_bytes(png_bytes(image, params))
        with self._lock:
            self._db.execute(
                "INSERT INTO items (id, kind, created, params, text, has_file) VALUES (?, ?, ?, ?, ?, ?)",
                (item, kind, time.time(), json.dumps(params, sort_keys=True), text, int(image is not None)),
            )
            self._db.commit()
        return item

    def file(self, item: str) -> Path | None:
        """The PNG of result ``item``, or None for an invalid id or a result without one."""
        if not valid_id(item):
            return None
        path = self.files / f"{item}.png"
        return path if path.is_file() else None

    def items(self, query: str = "", *, favourites: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        """The newest results first; ``query`` matches the parameters or the text (case-insensitive)."""
        sql = "SELECT id, kind, created, params, text, has_file, favourite FROM items WHERE 1=1"
        args: list[Any] = []
        if query:
            sql += " AND (params LIKE ? OR text LIKE ?)"
            args += [f"%{query}%", f"%{query}%"]
        if favourites:
            sql += " AND favourite = 1"
        sql += " ORDER BY created DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        keys = ("id", "kind", "created", "params", "text", "has_file", "favourite")
        return [dict(zip(keys, r, strict=True)) | {"params": json.loads(r[3]), "has_file": bool(r[5]),
                                                    "favourite": bool(r[6])} for r in rows]  # fmt: skip

    def set_favourite(self, item: str, value: bool) -> bool:
        with self._lock:
            done = self._db.execute("UPDATE items SET favourite = ? WHERE id = ?", (int(value), item)).rowcount
            self._db.commit()
        return bool(done)

    def delete(self, item: str) -> bool:
        if not valid_id(item):
            return False
        with self._lock:
            done = self._db.execute("DELETE FROM items WHERE id = ?", (item,)).rowcount
            self._db.commit()
        (self.files / f"{item}.png").unlink(missing_ok=True)
        return bool(done)

    def close(self) -> None:
        with self._lock:
            self._db.close()
