"""The CLI fuzzer's sandbox, runner and checker: each drawn command (tests/fuzz_cli.py) runs in-process in a fresh copy
of a folder of small inputs, and :func:`check` applies the rules listed in tests/fuzz_cli.py's docstring."""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .fuzz_cli import NUMERIC, VERBS, Command


# --- the sandbox --------------------------------------------------------------------------------------------------
def make_template(root: Path) -> Path:
    """The input files every command runs among (created once; each run gets a fresh copy)."""
    import numpy as np
    from PIL import Image

    from genlab.assets import default_model

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(root / "img.png")
    Image.fromarray(img).save(root / "ünï ☃.png")
    Image.fromarray(img[..., 0]).save(root / "grey.png")
    Image.fromarray(np.zeros((64, 48), np.uint8)).save(root / "big.png")  # a mask of another size
    mask = np.zeros((32, 32), np.uint8)
    mask[10:18, 12:20] = 255
    Image.fromarray(mask).save(root / "mask.png")
    (root / "empty.png").write_bytes(b"")
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.png").write_bytes(bytes(rng.integers(0, 256, 600, dtype=np.uint8)))
    (root / "latin1.txt").write_bytes("café crème brûlée ".encode("latin-1") * 40)
    (root / "text.txt").write_text("In the beginning God created the heaven and the earth. " * 40, encoding="utf-8")
    (root / "folder").mkdir()
    (root / "imgs").mkdir()
    for i in range(6):
        Image.fromarray(np.roll(img, i, axis=0)).save(root / "imgs" / f"{i}.png")
    (root / "ro").mkdir()
    shutil.copytree(default_model("text"), root / "ckpt")
    tiny_chat_model(root / "chat")
    tiny_reward_model(root / "chat", root / "rm")
    questions = ["hi", "how are you?", "what is this?", "who are you?", "is it late?", "good day"]
    (root / "prompts.txt").write_text("\n".join(questions) + "\n", encoding="utf-8")
    pairs = [{"prompt": q, "chosen": "yes, fine.", "rejected": "no"} for q in questions]
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(p) for p in pairs) + "\n", encoding="utf-8")
    tiny_reward_model(root / "chat", root / "rm2")  # another draw of weights: compare chat's held-out reward model
    (root / "badckpt").mkdir()
    (root / "badckpt" / "config.json").write_text("{not json", encoding="utf-8")
    (root / "badckpt" / "model.safetensors").write_bytes(bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
    (root / "emptyckpt").mkdir()
    (root / "emptyckpt" / "config.json").write_bytes(b"")
    (root / "emptyckpt" / "model.safetensors").write_bytes(b"")
    (root / "prompts.txt").write_text("hello\nhow are you\nis it nice\n", encoding="utf-8")
    (root / "ro").chmod(0o500)
    return root


def tiny_chat_model(out: Path) -> None:
    """A chat checkpoint with random weights and a 64-token context: the fuzzed chat verbs read it (sampling it
    costs next to nothing; its answers are noise)."""
    import torch

    from genlab.checkpoint import save_model
    from genlab.data.chat import SPECIALS
    from genlab.data.tokenizers import CharTokenizer, with_specials
    from genlab.models.chat import ChatConfig, ChatLM

    torch.manual_seed(0)
    tok = with_specials(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz .,?!"), SPECIALS)
    model = ChatLM(ChatConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16), tok)
    save_model(model, out, run={"domain": {"kind": "nothing: untrained"}})


def tiny_reward_model(chat: Path, out: Path) -> None:
    """An untrained reward model on the tokenizer of the chat model in ``chat`` (its scores are noise)."""
    from genlab.checkpoint import load_model, save_model
    from genlab.models.reward import RewardConfig, RewardModel

    tok = load_model(chat).tokenizer
    save_model(
        RewardModel(RewardConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16), tok), out
    )


def read_only_works(root: Path) -> bool:
    """Whether a 0o500 folder refuses writes here (it does not for root)."""
    probe = root / "ro" / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return True
    probe.unlink()
    return False


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: (kind, size, mtime_ns, sha1) for files, ("dir",) for folders."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            found[os.path.relpath(os.path.join(dirpath, d), root)] = ("dir",)
        for f in filenames:
            path = os.path.join(dirpath, f)
            st_ = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st_.st_mode):
                with open(path, "rb") as fh:
                    digest = hashlib.sha1(fh.read()).hexdigest()
            found[os.path.relpath(path, root)] = ("file", st_.st_size, st_.st_mtime_ns, digest)
    return found


def changed_paths(before: dict, after: dict) -> list[str]:
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k) != after.get(k))


def _under(path: str, named: str) -> bool:
    p, n = os.path.normpath(path), os.path.normpath(named)
    return p == n or p.startswith(n.rstrip(os.sep) + os.sep)


# --- running ------------------------------------------------------------------------------------------------------
class Timeout(BaseException):
    """Raised by the alarm when a run takes too long (a BaseException, so the CLI cannot swallow it)."""


@dataclass
class Outcome:
    command: Command
    code: int | str  # an int, or "exception" / "timeout"
    out: str
    err: str
    problems: list[str]
    changed: list[str] = field(default_factory=list)
    clobbered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        tail = "\n".join(self.err.strip().splitlines()[-6:])
        return f"{self.command}\n  exit {self.code}; problems: {self.problems}\n  stderr tail:\n{tail}"


def run_cli(argv: list[str], cwd: Path, timeout: float, stdin: str = "") -> tuple[int | str, str, str]:
    """``genlab.cli.main(argv)`` in this process, in ``cwd``, reading ``stdin``, with stdout/stderr captured."""
    import sys

    from genlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    old, old_stdin = os.getcwd(), sys.stdin

    def alarm(signum, frame):  # noqa: ANN001
        raise Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    # a run stuck in native code never reaches the alarm's handler: dump where it is and end the process
    faulthandler.dump_traceback_later(timeout * 4 + 30, exit=True)
    try:
        os.chdir(cwd)
        sys.stdin = io.StringIO(stdin)  # never the terminal's: a verb that reads stdin must not wait for it
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code: int | str = main(argv)
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Timeout:
                code = "timeout"
            except Exception:  # what a real process prints before exit 1
                err.write(traceback.format_exc())
                code = "exception"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()
        os.chdir(old)
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


_ERROR_LINE = re.compile(r"^genlab: error: \S")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} in JSON output")


def check(cmd: Command, code: int | str, out: str, err: str, changed: list[str], clobbered: list[str]) -> list[str]:
    """The rules of the module docstring; returns the broken ones (empty: the run is fine)."""
    problems = []
    if code == "timeout":
        problems.append("timeout")
    elif code not in (0, 2):
        problems.append(f"exit {code}")
    if "Traceback" in err:
        problems.append("traceback")
    if code == 2:
        lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ": error:" in ln]
        usage = any(ln.startswith("usage:") for ln in lines)
        if usage or len(errors) != 1 or lines[-1] != errors[0] or not _ERROR_LINE.match(errors[0]):
            problems.append("error not one line")
    if changed:
        problems.append("changed outside the output: " + ", ".join(changed[:5]))
    if clobbered:
        problems.append("input clobbered: " + ", ".join(clobbered))
    if code == 0 and "--json" in cmd.argv:
        try:
            json.loads(out, parse_constant=_reject_constant)
        except ValueError as e:
            problems.append(f"invalid JSON: {str(e)[:80]}")
    nan_opts = [k for k, v in cmd.hostile.items() if v.lower() == "nan" and _numeric(cmd.verb, k)]
    if code == 0 and nan_opts:
        problems.append("NaN accepted: " + ", ".join(nan_opts))
    return problems


def _numeric(verb: str, name: str) -> bool:
    return any(o.name == name and o.kind in NUMERIC for o in VERBS[verb][1])


def resolve(cmd: Command) -> Command:
    """Fill the placeholders of a command (the shipped digits model for eval image)."""
    from genlab.assets import default_model

    cmd.argv = [str(default_model("image")) if a == "@digits" else a for a in cmd.argv]
    return cmd


def run_in_sandbox(template: Path, cmd: Command, work: Path, timeout: float = 20.0) -> Outcome:
    """Copy ``template`` to ``work``, run ``cmd`` there, check it, remove ``work``."""
    import time

    resolve(cmd)
    if work.exists():
        _rmtree(work)
    shutil.copytree(template, work, symlinks=True)
    before = snapshot(work)
    start = time.perf_counter()
    code, out, err = run_cli(cmd.argv, work, timeout, cmd.stdin)
    seconds = time.perf_counter() - start
    after = snapshot(work)
    named = [o for o in cmd.outputs if o]
    diff = changed_paths(before, after)
    inputs = {os.path.normpath(i) for i in cmd.inputs if i}
    clobbered = [p for p in diff if any(_under(p, i) for i in inputs) and p in before]
    outside = [p for p in diff if not any(_under(p, n) for n in named) and p not in clobbered]
    # a folder created on the way to a named output (deep/er/ for deep/er/out.png) is part of that output
    outside = [p for p in outside if not (after.get(p) == ("dir",) and any(_under(n, p) for n in named))]
    problems = check(cmd, code, out, err, outside, clobbered)
    _rmtree(work)
    return Outcome(cmd, code, out, err, problems, outside, clobbered, seconds)


def _rmtree(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o700)
    shutil.rmtree(path, ignore_errors=True)


def drop_read_only(cmd: Command, read_only: bool) -> bool:
    """False when the command writes into the read-only folder where it is not read-only (root): skip it."""
    return read_only or not any(o.startswith("ro") for o in cmd.outputs)
