"""Small file helpers: atomic writes, so a crash never leaves a half-written file; whole folders swapped in."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

#: the most pixels an image may have wherever images enter genlab (files, folders, interpolation ends) unless a
#: command's --max-pixels says otherwise; Pillow's decompression-bomb limit follows it (genlab.data.images)
MAX_PIXELS = 50_000_000

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path`` (atomic on POSIX).

    On an exception the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    if path.is_dir():
        raise GenlabError(f"{path}: is a folder; name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise GenlabError(f"{path}: cannot write there ({e.strerror or e})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        fsync_path(tmp)  # on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def user_path(text: str | Path) -> Path:
    """A path the user gave, ``~`` expanded; a ``~name`` that names no user stays as written (no exception)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def check_writable(path: str | Path, option: str = "--out") -> None:
    """GenlabError, before any work, unless ``path`` can be created: its nearest existing folder must be a folder
    in which a new entry can be made (probed by making and removing one, so root and read-only filesystems are
    judged right). Nothing is left behind: folders that do not exist yet are not created."""
    path = Path(path)
    parent = path if path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise GenlabError(f"{option} {path}: {parent} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".genlab-probe-", dir=parent))
    except OSError as e:
        raise GenlabError(f"{option} {path}: cannot write there ({e.strerror or e}); choose a writable place") from None


def jsonable(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf: not JSON) replaced by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line (a metrics log); a non-finite figure is written as null."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(jsonable(record), allow_nan=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (NaN and infinity are not JSON: refused)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- whole folders: written beside, fsynced, swapped in ------------------------------------------------------------
MANIFEST_FILE = "manifest.json"
#: what a run folder holds besides its checkpoint (the trainer's log, the preview grids): never in a manifest
RUN_FILES = frozenset({"metrics.jsonl", "samples"})
#: never listed in a manifest either: documentation one may edit (the shipped models' cards)
DOC_FILES = frozenset({"MODEL_CARD.md"})
SAVING, OLD = ".saving", ".old"  # suffixes of the hidden siblings ``.NAME.saving`` / ``.NAME.old``


def sibling(path: Path, suffix: str) -> Path:
    """``<parent>/.<name><suffix>``: where a folder's next version is written, or its last one set aside."""
    return path.parent / f".{path.name}{suffix}"


def fsync_path(path: str | Path) -> None:
    """Flush a file or a folder (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if Path(path).is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (``root`` last)."""
    for dirpath, _, files in os.walk(root, topdown=False):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                fsync_path(p)
        fsync_path(dirpath)


def carry_over(old: Path, new: Path, skip: set[str]) -> None:
    """Hard-link every entry of ``old`` except the names in ``skip`` (and those ``new`` has) into ``new``; folders
    are recreated and their files linked, so a file appended to later (metrics.jsonl) is one file in both."""
    for entry in old.iterdir():
        target = new / entry.name
        if entry.name in skip or target.exists() or target.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            target.mkdir()
            carry_over(entry, target, set())
        else:
            try:
                os.link(entry, target)
            except OSError:  # a file system without hard links
                shutil.copy2(entry, target)


def _exchange_fn():  # noqa: ANN202
    """renameat2(RENAME_EXCHANGE) from the C library (Linux), or None where it is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _exchange_fn()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # kernel or file system says no
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap_in(new: Path, target: Path, *, keep: Path | None = None) -> None:
    """Make the finished folder ``new`` (``sibling(target, SAVING)``) be ``target``, replacing what was there;
    ``keep``: where the replaced folder goes instead of being removed (``--force``'s run set aside).

    One atomic exchange where the system has it; else ``target`` → ``.NAME.old`` (or ``keep``), ``new`` →
    ``target``, remove the old. Whatever step a crash interrupts, :func:`recover_folder` completes or rolls it
    back."""
    parent = target.parent
    if not target.exists():
        os.rename(new, target)
        fsync_path(parent)
        return
    if exchange(new, target):  # ``new`` now holds the replaced folder
        if keep is None:
            fsync_path(parent)
            shutil.rmtree(new)
        else:
            os.rename(new, keep)
            fsync_path(parent)
        return
    old = sibling(target, OLD) if keep is None else keep
    if old.exists():
        shutil.rmtree(old)
    os.rename(target, old)
    os.rename(new, target)
    fsync_path(parent)
    if keep is None:
        shutil.rmtree(old)


def recover_folder(target: Path, *, writer: bool, complete: Callable[[Path], bool] = lambda p: True) -> None:
    """Finish or undo a swap a crash interrupted, so ``target`` is a whole folder again.

    Where ``target`` is missing, the set-aside ``.NAME.saving`` (if ``complete`` says it is whole) or else
    ``.NAME.old`` becomes it. A ``writer`` (the only one who may write there: a save, a resume) also removes the
    leftovers; a reader leaves them, as a save may be under way."""
    saving, old = sibling(target, SAVING), sibling(target, OLD)
    if not target.exists() and not target.is_symlink():
        for _ in range(1 if writer else 20):  # a reader gives a save under way a moment to rename
            if target.exists() or not (saving.exists() or old.exists()):
                break
            time.sleep(0.05)
        else:
            if saving.is_dir() and complete(saving):
                os.rename(saving, target)
            elif old.is_dir():
                os.rename(old, target)
            with contextlib.suppress(OSError):
                fsync_path(target.parent)
    if writer:
        for leftover in (saving, old):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)


# --- manifests: each file's name, size and SHA-256 ------------------------------------------------------------------
def _manifest_entries(d: Path) -> list[Path]:
    """The files a manifest of ``d`` lists: all of them but the manifest, the run's own files and temporaries."""
    out = []
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d)
        hidden = any(part.startswith(".") for part in rel.parts)
        if hidden or rel.parts[0] in RUN_FILES | DOC_FILES or str(rel) == MANIFEST_FILE:
            continue
        if p.is_file() and not p.is_symlink():
            out.append(p)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest_file(d: Path, header: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` (``header``, then each file's name, size and SHA-256) into ``d`` and flush it."""
    files = [
        {"name": p.relative_to(d).as_posix(), "size": p.stat().st_size, "sha256": _sha256(p)}
        for p in _manifest_entries(d)
    ]
    manifest = header | {"files": files}
    write_json(d / MANIFEST_FILE, manifest)
    fsync_path(d / MANIFEST_FILE)
    fsync_path(d)
    return manifest


def read_manifest(directory: str | Path) -> dict[str, Any]:
    d = Path(directory)
    path = d / MANIFEST_FILE
    if not path.is_file():
        raise GenlabError(
            f"{d}: no {MANIFEST_FILE}, so genlab cannot check that the checkpoint is whole (written by hand, or by a "
            f"genlab before checkpoint manifests); if you trust its files, vouch for them with: "
            f"python -c \"import genlab.checkpoint as c; c.write_manifest('{d}')\""
        )
    try:
        manifest = read_json(path)
        files = manifest["files"]
        for f in files:
            name = f["name"]
            if not isinstance(name, str) or not isinstance(f["size"], int) or ".." in Path(name).parts:
                raise TypeError
            if Path(name).is_absolute():
                raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise GenlabError(f"{path}: not a valid manifest; the checkpoint is damaged (save it again)") from None
    return manifest


def verify_manifest(directory: str | Path, *, skip_hash: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The manifest of a checkpoint folder, after checking every file it lists: present, its size, its SHA-256
    (except the files named in ``skip_hash``, whose size alone is checked). GenlabError on any mismatch."""
    d = Path(directory)
    manifest = read_manifest(d)
    advice = "the checkpoint is incomplete or was changed since it was saved; use a copy you trust or save it again"
    for f in manifest["files"]:
        path = d / f["name"]
        if not path.is_file():
            raise GenlabError(f"{d}: {f['name']} is missing ({MANIFEST_FILE} lists it): {advice}")
        size = path.stat().st_size
        if size != f["size"]:
            raise GenlabError(f"{d}: {f['name']} has {size} bytes, {MANIFEST_FILE} says {f['size']}: {advice}")
        if f["name"] not in skip_hash and _sha256(path) != f.get("sha256"):
            raise GenlabError(f"{d}: {f['name']} does not match its SHA-256 in {MANIFEST_FILE}: {advice}")
    return manifest


def whole(directory: Path) -> bool:
    try:
        verify_manifest(directory)
    except GenlabError:
        return False
    return True
