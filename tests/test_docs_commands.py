"""Every command in README.md and docs/*.md runs, with the inputs the docs name (issue 16, item 8).

The commands are read from the documents when the tests are collected, so an edited or added example is tested
without touching this file:

- a command is a line of a fenced code block that starts with ``genlab `` or ``$ genlab `` (console blocks), with
  backslash continuations joined and a trailing ``# comment`` removed (shell rules: a ``#`` inside quotes is text);
  ``echo 'TEXT' | genlab ...`` is a command reading TEXT on stdin (every other command reads an empty stdin);
- a console block's ``$ genlab ...`` followed by a ``genlab: error: ...`` line is a documented failure: it must exit
  2 with that error line (figures written ``~N``, estimates and free memory, are compared with the number masked);
- skipped, each with its reason (``test_skips_are_few_and_each_has_a_reason``):
  a synopsis line — it has an unquoted token that is a metavar in capitals (``IMAGE``, ``DIR``, ``X,Y[,L]``), holds
  ``[`` or ``]`` (an optional part), ``|`` (alternatives) or is ``...``;
  ``genlab demo`` (tests/test_demo.py runs it);
  ``torchrun ... -m genlab ...`` (tests/test_distributed.py runs genlab under torchrun).

Each document runs in its own folder of one world (a temporary HOME and working folder) in which every input the
commands name exists, made from the command's tokens just before it runs (:func:`make_inputs`); bundled names
(kjv, digits, brick, ...) are used as they are. A document's ``genlab train`` commands run first, in document order,
so that its other commands find the ``runs/...`` they use (every run the docs use is trained by the same document:
none needs an extra training); a train command already run for another document is copied, not rerun.
CAPS lists every change made to a documented command to keep it cheap.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab.cli import main
from tests.conftest import CORPUS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: what is appended to a documented command to keep it cheap: (regex on the command, extra arguments); the first
#: match applies. Every other command runs as written.
QUIET = ("--quiet", "--set", "eval_batches=1", "--set", "sample_every=0")  # no progress bar, no preview grid
TRAIN = ("--steps", "2", *QUIET)
CAPS: list[tuple[str, tuple[str, ...]]] = [
    (r"^genlab train .*--resume", ("--steps", "3", *QUIET)),  # one step further than the run it continues
    (r"^genlab train text .*--data kjv", (*TRAIN, "--val-fraction", "0.001")),  # held-out figures on 4k characters
    (r"^genlab train ", TRAIN),
    (r"^genlab edit (denoise|dejpeg|superres) |^genlab edit inpaint .*--method dip", ("--iterations", "2")),
    (r"^genlab eval image .*--fid", ("--samples", "20", "--features", "classifier")),  # Inception features: slow
    (r"^genlab eval text .*--data kjv", ("--val-fraction", "0.001")),
    (r"^genlab eval text2image ", ("--samples", "4", "--steps", "5")),
    (r"^genlab (label pairs|eval chat) ", ("--limit", "4", "--max-tokens", "24")),  # sampling answers: slow
    (r"^genlab compare chat ", ("--limit", "4", "--max-tokens", "24", "--best-of", "1,2")),
    (r"^genlab compare image .*--from", ("--samples", "20", "--features", "classifier")),
    (r"^genlab compare image ", ("--budget", "2", "--seeds", "1", "--samples", "20", "--features", "classifier")),
]

SKIPS = [
    (r"^genlab demo\b", "genlab demo: tests/test_demo.py runs it"),
    (r"^genlab serve\b", "genlab serve: a server; tests/test_serve_browser.py starts one and drives it"),
    (r"^torchrun .*-m genlab ", "torchrun: tests/test_distributed.py runs genlab under torchrun"),
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TEXT_SUFFIXES = {".txt", ".jsonl"}
#: options whose value is an output (never made as an input)
OUTPUT_OPTIONS = {"--out"}


@dataclass(frozen=True)
class DocCommand:
    doc: str  # path relative to the repository
    line: int
    text: str  # the command, comment removed
    error: str | None = None  # the documented error line, for a failure shown on purpose
    stdin: str = ""  # what ``echo '...' |`` pipes into it

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)[1:]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def _strip_comment(text: str) -> str:
    """The command without its trailing comment, quotes kept as written."""
    lexer = shlex.shlex(text, posix=False)
    lexer.whitespace_split, lexer.commenters = True, "#"
    return " ".join(lexer)


PIPED = re.compile(r"""^echo\s+(?P<echoed>'[^']*'|"[^"]*")\s*\|\s*(?P<command>genlab\s.*)$""")


def synopsis_reason(text: str) -> str | None:
    """Why a line is a synopsis rather than a command, or None (see the module docstring)."""
    lexer = shlex.shlex(text, posix=False)
    lexer.whitespace_split = True
    for token in lexer:
        if token[0] in "\"'":
            continue  # a quoted value, e.g. --prompt "..."
        if "[" in token or "]" in token or "|" in token or token == "...":
            return f"synopsis: {token!r}"
        if re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\.\.)?", token.split("=")[-1]):
            return f"synopsis: metavar {token!r}"
    return None


def extract(path: Path) -> tuple[list[DocCommand], list[tuple[DocCommand, str]]]:
    """The commands of one document, and the lines skipped with their reason."""
    doc = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    commands: list[DocCommand] = []
    skipped: list[tuple[DocCommand, str]] = []
    fence = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if re.match(r"^(```|~~~)", stripped):
            fence = None if fence else stripped[:3]
            i += 1
            continue
        start, text = i, stripped.removeprefix("$ ")
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1].rstrip() + " " + lines[i].strip()
        i += 1
        stdin = ""
        piped = PIPED.match(text)
        if piped:
            stdin, text = shlex.split(piped["echoed"])[0] + "\n", piped["command"]
        if not fence or not re.match(r"^(genlab|torchrun) ", text):
            continue
        error = None
        if stripped.startswith("$ "):  # console: the output follows until the next prompt
            while i < len(lines) and not lines[i].startswith(("$ ", "```", "~~~")):
                if lines[i].startswith("genlab: error:") and error is None:
                    error = lines[i].strip()
                i += 1
        command = DocCommand(doc, start + 1, _strip_comment(text), error, stdin)
        reason = synopsis_reason(command.text) or next((r for p, r in SKIPS if re.search(p, command.text)), None)
        if reason:
            skipped.append((command, reason))
        else:
            commands.append(command)
    return commands, skipped


def all_commands() -> tuple[list[DocCommand], list[tuple[DocCommand, str]]]:
    commands, skipped = [], []
    for path in DOCUMENTS:
        c, s = extract(path)
        commands += c
        skipped += s
    return commands, skipped


COMMANDS, SKIPPED = all_commands()
TRAINS = [c for c in COMMANDS if c.text.startswith("genlab train ")]
OTHERS = [c for c in COMMANDS if not c.text.startswith("genlab train ")]


def capped(command: DocCommand) -> list[str]:
    extra = next((args for pattern, args in CAPS if re.search(pattern, command.text)), ())
    return command.argv + list(extra)


# --- the world: inputs made from a command's tokens ----------------------------------------------------------
def _ints(value: str) -> list[int]:
    return [int(v) for v in re.findall(r"-?\d+", value)]


def image_size(argv: list[str]) -> tuple[int, int]:
    """(width, height) of the images a command reads: 64×64, or large enough for the places it names."""
    w = h = 64
    options = dict(zip(argv, argv[1:], strict=False))
    for i, token in enumerate(argv[:-1]):
        value = _ints(argv[i + 1])
        if token in ("--point", "--box", "--region") and len(value) >= 2:
            xy = value[:2] if token == "--point" else value[:4]  # a click's label is no place
            w, h = max(w, max(xy[0::2]) + 8), max(h, max(xy[1::2]) + 8)
        if token == "--to" and "--region" in options:  # the region's new place must fit
            x0, y0, x1, y1 = _ints(options["--region"])
            w, h = max(w, value[0] + x1 - x0 + 8), max(h, value[1] + y1 - y0 + 8)
        if token in ("--width", "--height") and value:  # retarget: shrink a little rather than enlarge
            w, h = (max(w, value[0] + 16), h) if token == "--width" else (w, max(h, value[0] + 16))
    return w, h


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A colour picture with some structure: a gradient, a disc and a bar."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 90)], -1).astype(float)
    rgb[(x - w / 3) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 5) ** 2] = (220, 40, 40)
    rgb[h // 5 : h // 5 + max(h // 10, 2), w // 2 : w - w // 8] = (30, 30, 200)
    return Image.fromarray(np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8))


def mask(size: tuple[int, int]) -> Image.Image:
    """A binary mask: white (the hole) is a square in the middle."""
    w, h = size
    m = np.zeros((h, w), np.uint8)
    m[h * 3 // 8 : h * 5 // 8, w * 3 // 8 : w * 5 // 8] = 255
    return Image.fromarray(m)


def segment_folder(folder: Path, n: int = 12) -> None:
    """images/ and masks/ as docs/segment.md describes: here one label map per image."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    for k in range(n):
        image = photo((64, 64), k)
        labels = (np.asarray(image)[..., 0] > 200).astype(np.uint8) * 255  # the red disc
        image.save(folder / "images" / f"{k}.png")
        Image.fromarray(labels).save(folder / "masks" / f"{k}.png")


def make_inputs(argv: list[str], cwd: Path, home: Path) -> list[str]:
    """Make every input file or folder the command names (in ``cwd``); returns argv with ``~`` expanded."""
    argv = [str(home / a[2:]) if a.startswith("~/") else a for a in argv]
    size = image_size(argv)
    for i, token in enumerate(argv):
        before = argv[i - 1] if i else ""
        if before in OUTPUT_OPTIONS or token.startswith("-"):
            continue
        path = cwd / token
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            path.parent.mkdir(parents=True, exist_ok=True)
            is_mask = before == "--mask" or re.search("hole|mask", path.stem)
            (mask(size) if is_mask else photo(size, i)).save(path)
        elif suffix in TEXT_SUFFIXES and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = CORPUS.splitlines()
            if suffix == ".jsonl" and "pairs" in path.stem:  # preference pairs (genlab train reward, rlhf)
                lines = [json.dumps({"prompt": f"line {k}?", "chosen": line, "rejected": line[::-1]})
                         for k, line in enumerate(lines[:40])]  # fmt: skip
            elif suffix == ".jsonl":
                lines = [json.dumps({"text": line}) for line in lines]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        elif before == "--data" and (token.startswith(str(home)) or token.endswith("/")) and not path.exists():
            if argv[:2] == ["train", "segment"]:
                segment_folder(path)
            else:
                path.mkdir(parents=True)
                for k in range(12):
                    photo((64, 64), k).save(path / f"{k}.png")
    return argv


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[-800:]!r}, err={self.err[-1500:]!r})"


class World:
    def __init__(self, root: Path) -> None:
        self.root, self.home = root, root / "home"
        self.home.mkdir(parents=True)
        self.trained: dict[tuple[str, ...], Path] = {}  # a train command's argv → the folder it ran in
        self.results: dict[DocCommand, Result] = {}
        self.docs_ready: set[str] = set()

    def folder(self, command: DocCommand) -> Path:
        cwd = self.root / re.sub(r"\W", "-", command.doc)
        cwd.mkdir(exist_ok=True)
        return cwd

    def run(self, command: DocCommand, monkeypatch: pytest.MonkeyPatch) -> Result:
        cwd = self.folder(command)
        argv = capped(command)
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.chdir(cwd)
        argv = make_inputs(argv, cwd, self.home)
        key = tuple(argv)
        if key in self.trained and "--out" in argv:  # the same training shown again: run once, copied
            out = argv[argv.index("--out") + 1]
            if not (cwd / out).exists():
                shutil.copytree(self.trained[key] / out, cwd / out)
            return Result(0, "", "")
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr("sys.stdin", io.StringIO(command.stdin))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse usage errors
                code = e.code if isinstance(e.code, int) else 1
        result = Result(code, out.getvalue(), err.getvalue())
        if command.text.startswith("genlab train ") and code == 0:
            self.trained.setdefault(key, cwd)
        return result

    def ready(self, doc: str) -> None:
        """Run a document's train commands, in document order, the first time one of its commands is tested."""
        if doc in self.docs_ready:
            return
        self.docs_ready.add(doc)
        with pytest.MonkeyPatch.context() as mp:
            for command in (c for c in TRAINS if c.doc == doc):
                self.results[command] = self.run(command, mp)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("docs-world"))


def masked(line: str) -> str:
    """An error line with its approximate figures (``~1,480,102.5``: estimates, free memory) masked."""
    return re.sub(r"~\d[\d,]*(\.\d+)?", "~N", line)


def check(command: DocCommand, result: Result) -> None:
    if command.error is None:
        assert result.code == 0, f"{command}\n{result!r}"
        return
    assert result.code == 2, f"{command}\n{result!r}"
    lines = [line for line in result.err.splitlines() if line.startswith("genlab: error:")]
    assert lines and masked(lines[-1]) == masked(command.error), f"{command}\n{result!r}"


# --- the tests ------------------------------------------------------------------------------------------------
def test_commands_are_found_with_comments_and_continuations_handled():
    texts = {c.text for c in COMMANDS}
    assert len(COMMANDS) >= 40 and any(c.text.startswith("genlab train ") for c in COMMANDS)
    assert all("#" not in c.text or '"' in c.text for c in COMMANDS)
    assert _strip_comment('genlab x --prompt "a # b" --n 2   # two') == 'genlab x --prompt "a # b" --n 2'
    assert not any(t.endswith("\\") for t in texts)
    assert any(c.error for c in COMMANDS), "docs/index.md's failures shown on purpose are found"


def test_skips_are_few_and_each_has_a_reason():
    synopses = [str(c) for c, reason in SKIPPED if reason.startswith("synopsis")]
    assert len(synopses) <= 20, synopses  # the synopses of docs/index.md's command table
    assert len(SKIPPED) - len(synopses) <= 8, [str(c) for c, _ in SKIPPED]  # demo, serve and torchrun lines
    for command, reason in SKIPPED:
        assert reason.startswith(("synopsis", "genlab demo", "genlab serve", "torchrun")), (str(command), reason)
        if reason.startswith("synopsis"):  # synopses live in the usage block, never in a runnable example
            assert command.doc == "docs/index.md", str(command)
    assert synopsis_reason('genlab generate text --prompt "..." --n 2') is None
    assert synopsis_reason("genlab segment IMAGE --out X.png") is not None
    assert synopsis_reason("genlab eval text DIR --data SRC") is not None


@pytest.mark.slow
@pytest.mark.xdist_group("docs-world")  # with --dist loadgroup one worker trains the documents' runs once
@pytest.mark.parametrize("command", TRAINS, ids=lambda c: f"{c.doc}:{c.line}")
def test_documented_train_command_runs(world, command):
    world.ready(command.doc)
    check(command, world.results[command])


@pytest.mark.slow
@pytest.mark.xdist_group("docs-world")
@pytest.mark.parametrize("command", OTHERS, ids=lambda c: f"{c.doc}:{c.line}")
def test_documented_command_runs(world, command, monkeypatch):
    world.ready(command.doc)
    check(command, world.run(command, monkeypatch))
