"""A property-based fuzzer of the ``genlab`` command: Hypothesis strategies that draw commands full of hostile
values, a sandbox of small input files to run them in, and the checker every run must pass.

Shared by the bounded CI test (tests/test_fuzz.py) and the long run (bench/fuzz.py).

What a draw is: a verb (generate text, generate image, eval text/image, every ``edit`` task, segment,
classify image, export, train text/image) with a cheap valid command as its base (small --n, --steps 1, tiny
models, 32×32 images), each option absent, valid, or given a hostile value of its kind: NaN, ±inf, huge ints
(10**24), negatives, 0, empty strings, unicode, malformed text; inputs that are empty, binary, missing, folders or
a unicode-named copy; outputs that are folders, a read-only folder, an input of the same command, a missing parent
folder or a checkpoint. The shipped models serve every verb that loads one, so nothing is trained first.

The checker's rules, for every run (:func:`check`):

1. the exit code is 0 or 2 (an exception escaping ``genlab.cli.main`` is exit 1 with a traceback);
2. no ``Traceback`` on stderr;
3. exit 2 is one error line: exactly one stderr line contains ``: error:``, it is the last non-empty line and it
   matches ``genlab: error: ...`` (usage errors too: no ``usage:`` lines; progress bars and ``genlab: warning:``
   lines before it are allowed);
4. no file or folder of the sandbox is created, removed or rewritten (size, hash or mtime) except the named
   output (``--out``, and what lies under it when it is a folder; ``nnf``'s reconstruction; ``samples.png`` for
   ``generate image`` without ``--out``), and no input file of the command changes, even when it is also the
   output;
5. with ``--json`` and exit 0, stdout is one JSON document that parses without NaN or Infinity;
6. a NaN given to a numeric option is refused (exit 2): no option has a meaning for NaN;
7. the run ends within the time limit (a huge count that is not refused runs until it is stopped).
"""

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

from hypothesis import strategies as st

# --- hostile values, by kind ------------------------------------------------------------------------------------
HUGE = str(10**24)
HOSTILE = {
    "int": ["0", "-1", "-7", HUGE, "-" + HUGE, "", "nan", "inf", "1.5", "1e3", "٣", "0x10"],
    "float": ["nan", "NaN", "inf", "-inf", "-1", "0", "1e309", "-1e309", HUGE, "", "1e-320", "abc"],
    "count": ["0", "-1", HUGE, "nan", "", "2147483648"],  # ints that size a loop or an allocation
    "str": ["", " ", "ünïcødé ☃ 文字", "\t\n", ",", ",,,", "x" * 400, "-1", "nan"],
    "image": ["empty.png", "binary.png", "folder", "missing.png", "text.txt", "", "ckpt", "ünï ☃.png"],
    "mask": ["empty.png", "binary.png", "folder", "missing.png", "img.png", "big.png", "ünï ☃.png", ""],
    "text": ["empty.txt", "binary.png", "folder", "missing.txt", "img.png", "", "latin1.txt"],
    "ckpt": ["folder", "badckpt", "emptyckpt", "img.png", "missing", "", "ckpt/config.json"],
    "out": ["folder", "ro/out.png", "img.png", "", "deep/er/out.png", "out.xyz", "ckpt", "text.txt", "ro"],
    "outdir": ["folder", "ro/run", "img.png", "", "ckpt", "text.txt", "ro", "deep/er/run"],
    "choice": ["", "bogus", "ÜNÏ"],
}
#: kinds whose value is a number: a NaN given to one must be refused (rule 6)
NUMERIC = {"int", "float", "count"}


@dataclass(frozen=True)
class Opt:
    """One option of a verb. ``valid``: values a careful user might give; ``cheap``: the value used when the draw
    leaves the option out (keeps every run small); ``hostile_kind``: which hostile list to draw from."""

    name: str  # "--steps", or "" for a positional argument
    kind: str
    valid: tuple[str, ...] = ()
    cheap: str | None = None
    required: bool = False
    flag: bool = False


def O(name: str, kind: str, *valid: str, cheap: str | None = None, required: bool = False) -> Opt:  # noqa: E743
    return Opt(name, kind, tuple(valid), cheap, required)


def F(name: str) -> Opt:
    return Opt(name, "flag", flag=True)


COMMON_EDIT = (
    O("--out", "out", "out.png", "o.jpg", "o.webp", required=True),
    O("--seed", "int", "0", "3"),
    O("--max-pixels", "count", "100000", "2000"),
    F("--quiet"),
    F("--json"),
)
DIP = (
    O("--iterations", "count", "1", "2", cheap="2"),
    O("--width", "count", "4", "8", cheap="4"),
    O("--lr", "float", "0.01", "0.1"),
    O("--reg-noise", "float", "0", "0.03"),
    O("--average", "float", "0", "0.99"),
    O("--time-budget", "float", "0", "5"),
    O("--min-loss", "float", "0", "0.001"),
    O("--patience", "int", "0", "1"),
    O("--threads", "int", "0", "1"),
    O("--device", "str", "cpu"),
)
DIFFUSION_EDIT = (
    O("--prompt", "str", "a red circle", "a large blue star at the top"),
    O("--negative-prompt", "str", "red", "a square"),
    O("--guidance", "float", "0", "3"),
    O("--steps", "count", "1", "2", cheap="2"),
)
SAMPLER = (
    O("--sampler", "choice", "ddpm", "ddim", "dpmpp"),
    O("--steps", "count", "1", "2", cheap="2"),
    O("--eta", "float", "0", "1"),
    O("--spacing", "choice", "auto", "uniform", "quadratic", "logsnr"),
    O("--variance", "choice", "beta", "beta_tilde"),
    O("--guidance", "float", "0", "2"),
)
TINY_GPT = ("--set", "n_layer=1", "--set", "n_head=1", "--set", "n_embd=16", "--set", "block_size=16")
TINY_UNET = ("--set", "base_channels=8", "--set", "channel_mult=1", "--set", "attn_resolutions=")

#: verb -> (the words that start the command, its options)
VERBS: dict[str, tuple[tuple[str, ...], tuple[Opt, ...]]] = {
    "generate text": (
        ("generate", "text"),
        (
            O("--model", "ckpt", "ckpt"),
            O("--prompt", "str", "In the beginning", "the "),
            O("--n", "count", "1", "2", cheap="1"),
            O("--max-tokens", "count", "1", "8", cheap="4"),
            O("--temperature", "float", "0", "0.8", "1.5"),
            O("--top-k", "int", "0", "5"),
            O("--top-p", "float", "0.5", "1"),
            O("--stop", "str", ".", "the"),
            O("--seed", "int", "0", "7"),
            O("--out", "out", "out.txt"),
            O("--device", "str", "cpu"),
            F("--stream"),
            F("--no-cache"),
            F("--json"),
        ),
    ),
    "generate image": (
        ("generate", "image"),
        (
            O("--prompt", "str", "a red circle"),
            O("--negative-prompt", "str", "blue"),
            O("--to-prompt", "str", "a blue square"),
            O("--class", "str", "3", "7"),
            O("--n", "count", "1", "2", cheap="1"),
            O("--scale", "int", "1", "2"),
            O("--interpolate", "str", "0,1", "img.png,img.png"),
            O("--frames", "count", "2", "3", cheap="2"),
            O("--through", "choice", "noise", "diffused"),
            O("--strength", "float", "0.3", "0.5"),
            O("--classifier-scale", "float", "0", "1"),
            O("--seed", "int", "0", "1"),
            O("--out", "out", "out.png", "many/"),
            F("--json"),
            *SAMPLER,
        ),
    ),
    "eval text": (
        ("eval", "text"),
        (
            O("", "ckpt", "ckpt", required=True),
            O("--data", "text", "text.txt", required=True),
            O("--split", "choice", "all", "train", "val"),
            O("--val-fraction", "float", "0", "0.1", "0.5"),
            O("--device", "str", "cpu"),
            F("--json"),
        ),
    ),
    "eval image": (
        ("eval", "image", "DIGITS"),
        (
            O("--data", "text", "digits", "imgs", required=True),
            O("--split", "choice", "val"),  # all/train: the held-out loss of ~1,500 digits, too slow here
            O("--val-fraction", "float", "0.05", "0.1"),
            O("--seed", "int", "0"),
            F("--json"),
            *SAMPLER,
        ),
    ),
    "edit texture": (
        ("edit", "texture"),
        (
            O("--sample", "image", "img.png", required=True),
            O("--size", "str", "24x16", "40x40", cheap="24x24"),
            O("--method", "choice", "quilting", "efros-leung"),
            O("--block", "int", "8", "12"),
            O("--overlap", "int", "1", "3"),
            O("--tolerance", "float", "0", "0.1"),
            O("--window", "int", "3", "5", cheap="5"),
            O("--error-threshold", "float", "0.1"),
            O("--max-error", "float", "0.3"),
            *COMMON_EDIT,
        ),
    ),
    "edit inpaint": (
        ("edit", "inpaint"),
        (
            O("--image", "image", "img.png", required=True),
            O("--mask", "mask", "mask.png", required=True),
            O("--method", "choice", "patchmatch", "telea", "ns", "biharmonic", "dip", "diffusion"),
            O("--patch", "int", "3", "5", cheap="5"),
            O("--radius", "int", "1", "3"),
            O("--resample", "count", "1", cheap="1"),
            O("--reference", "image", "img.png"),
            *DIP[:1],
            *DIP[1:-1],
            *DIFFUSION_EDIT,
            *COMMON_EDIT,
        ),
    ),
    "edit retarget": (
        ("edit", "retarget"),
        (
            O("--image", "image", "img.png", required=True),
            O("--width", "int", "24", "40", cheap="24"),
            O("--height", "int", "20", "36"),
            O("--patch", "int", "3", "5", cheap="5"),
            O("--iterations", "count", "1", "2", cheap="1"),
            *COMMON_EDIT,
        ),
    ),
    "edit reshuffle": (
        ("edit", "reshuffle"),
        (
            O("--image", "image", "img.png", required=True),
            O("--region", "str", "4,4,12,12", "0,0,8,8", required=True),
            O("--to", "str", "16,16", "20,4", required=True),
            O("--margin", "int", "0", "2"),
            O("--patch", "int", "3", "5", cheap="5"),
            O("--iterations", "count", "1", cheap="1"),
            *COMMON_EDIT,
        ),
    ),
    "edit denoise": (("edit", "denoise"), (O("--image", "image", "img.png", required=True), *DIP, *COMMON_EDIT)),
    "edit dejpeg": (("edit", "dejpeg"), (O("--image", "image", "img.png", required=True), *DIP, *COMMON_EDIT)),
    "edit superres": (
        ("edit", "superres"),
        (
            O("--image", "image", "img.png", required=True),
            O("--method", "choice", "dip", "bicubic"),
            O("--scale", "int", "2", "3", cheap="2"),
            O("--reference", "image", "img.png"),
            *DIP,
            *COMMON_EDIT,
        ),
    ),
    "edit nnf": (
        ("edit", "nnf"),
        (
            O("--a", "image", "img.png", required=True),
            O("--b", "image", "img.png", "grey.png", required=True),
            O("--patch", "int", "3", "5"),
            O("--iterations", "count", "0", "2", cheap="2"),
            O("--reconstruction", "out", "rec.png"),
            F("--exact"),
            *COMMON_EDIT,
        ),
    ),
    "edit img2img": (
        ("edit", "img2img"),
        (
            O("--image", "image", "img.png", required=True),
            O("--strength", "float", "0", "0.5", "1"),
            O("--reference", "image", "img.png"),
            *DIFFUSION_EDIT,
            *COMMON_EDIT,
        ),
    ),
    "segment": (
        ("segment",),
        (
            O("", "image", "img.png", "grey.png", required=True),
            O("--point", "str", "3,3", "10,20,0", "16.5,16.5"),
            O("--box", "str", "2,2,20,20", "0,0,31,31"),
            F("--multimask"),
            O("--refine", "int", "0", "1"),
            F("--all"),
            O("--points-per-side", "count", "2", "3", cheap="2"),
            O("--format", "choice", "png", "coco-rle", "polygons"),
            O("--pred-iou-thresh", "float", "0.5", "0.9"),
            O("--stability-thresh", "float", "0.8"),
            O("--min-area", "int", "0", "5"),
            O("--max-pixels", "count", "5000"),
            O("--out", "out", "m.png", "masks/", "m.json"),
            F("--json"),
        ),
    ),
    "classify image": (
        ("classify", "image"),
        (
            O("", "image", "img.png", "grey.png", required=True),
            O("--labels", "str", "a circle,a square", "a red shape,a blue shape", required=True),
            O("--max-pixels", "count", "5000"),
            F("--json"),
        ),
    ),
    "export": (
        ("export",),
        (
            O("", "ckpt", "ckpt", required=True),
            O("--out", "outdir", "exported", required=True),
            O("--dtype", "choice", "float32", "float16", "bfloat16"),
            O("--decoder", "ckpt", "ckpt"),
        ),
    ),
    "train text": (
        ("train", "text", *TINY_GPT),
        (
            O("--data", "text", "text.txt", required=True),
            O("--out", "outdir", "run", required=True),
            O("--steps", "count", "1", "2", cheap="1"),
            O("--time-budget", "float", "5", "0.5"),
            O("--seed", "int", "0", "3"),
            O("--set", "str", "batch_size=2", "lr=0.01", "dropout=0.1", cheap="batch_size=2"),
            O("--set", "str", "lr=nan", "batch_size=0", "dropout=inf", "lr=-1", "eval_every=0", "warmup=-5"),
            O("--tokenizer", "choice", "char", "bpe"),
            O("--vocab-size", "int", "260", "300"),
            O("--val-fraction", "float", "0", "0.2"),
            F("--resume"),
            F("--json"),
        ),
    ),
    "train image": (
        ("train", "image", "--model", "diffusion", *TINY_UNET, "--set", "eval_batches=1"),
        (
            O("--data", "text", "digits", required=True),  # a folder of RGB images: ~15 s (its final samples)
            O("--out", "outdir", "run", required=True),
            O("--size", "int", "8", cheap="8"),
            O("--steps", "count", "1", cheap="1"),
            O("--set", "str", "batch_size=2", cheap="batch_size=2"),
            O("--set", "str", "lr=inf", "ema=nan", "grad_clip=-1", "num_classes=-3", "timesteps=0"),
            O("--val-fraction", "float", "0", "0.25"),
            F("--strict"),
            F("--json"),
        ),
    ),
}


@dataclass(repr=False)
class Command:
    verb: str
    argv: list[str]
    hostile: dict[str, str] = field(default_factory=dict)  # option -> hostile value
    inputs: list[str] = field(default_factory=list)  # sandbox paths the command reads
    outputs: list[str] = field(default_factory=list)  # sandbox paths the command is asked to write

    def __str__(self) -> str:
        return "genlab " + " ".join(_quote(a) for a in self.argv)

    def __repr__(self) -> str:
        return f"<{self} | hostile: {self.hostile}>"


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


INPUT_KINDS = {"image", "mask", "text", "ckpt"}
OUTPUT_KINDS = {"out", "outdir"}


@st.composite
def commands(draw: st.DrawFn, verbs: list[str] | None = None) -> Command:
    """A command of one of ``verbs`` (default: all), with each option absent, valid or hostile."""
    verb = draw(st.sampled_from(verbs or list(VERBS)))
    head, options = VERBS[verb]
    cmd = Command(verb, ["@digits" if w == "DIGITS" else w for w in head])
    positional: list[str] = []
    valued = [i for i, o in enumerate(options) if not o.flag]
    # mostly valid commands with one or two hostile values, so that each value meets the code behind the parser
    n_hostile = draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3]))
    hostile = set(draw(st.lists(st.sampled_from(valued), min_size=n_hostile, max_size=n_hostile, unique=True)))
    for i, opt in enumerate(options):
        if opt.flag:
            if draw(st.integers(0, 3)) == 0:
                cmd.argv.append(opt.name)
            continue
        if i in hostile:
            mode = "hostile"
        elif opt.required or opt.cheap is not None:
            mode = "valid"
        else:
            mode = "absent" if draw(st.integers(0, 2)) else "valid"
        if mode == "absent":
            continue
        if mode == "valid":
            value = draw(st.sampled_from(opt.valid)) if opt.valid else opt.cheap
        else:
            value = draw(st.sampled_from(HOSTILE[opt.kind]))
            cmd.hostile[opt.name or f"<{opt.kind}>"] = value
        if value is None:
            continue
        if opt.kind in INPUT_KINDS:
            cmd.inputs.append(value)
        elif opt.kind in OUTPUT_KINDS:
            cmd.outputs.append(value)
        if not opt.name:
            positional.append(value)
        elif value.startswith("-"):  # `--opt=-1`: a value starting with '-' reaches the option
            cmd.argv.append(f"{opt.name}={value}")
        else:
            cmd.argv += [opt.name, value]
    # positional arguments go right after the verb's words, before any option
    at = next((i for i, w in enumerate(head) if w.startswith("-")), len(head))
    cmd.argv[at:at] = positional
    if verb == "generate image" and not cmd.outputs:
        cmd.outputs.append("samples.png")  # its default output
    if verb == "edit nnf" and not any(a.startswith("--reconstruction") for a in cmd.argv):
        out = next((o for o in cmd.outputs if o), None)
        if out is not None:
            p = Path(out)
            cmd.outputs.append(str(p.with_name(f"{p.stem}-reconstruction{p.suffix or '.png'}")))
    return cmd


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
    (root / "badckpt").mkdir()
    (root / "badckpt" / "config.json").write_text("{not json", encoding="utf-8")
    (root / "badckpt" / "model.safetensors").write_bytes(bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
    (root / "emptyckpt").mkdir()
    (root / "emptyckpt" / "config.json").write_bytes(b"")
    (root / "emptyckpt" / "model.safetensors").write_bytes(b"")
    (root / "ro").chmod(0o500)
    return root


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


def run_cli(argv: list[str], cwd: Path, timeout: float) -> tuple[int | str, str, str]:
    """``genlab.cli.main(argv)`` in this process, in ``cwd``, with stdout/stderr captured."""
    from genlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()

    def alarm(signum, frame):  # noqa: ANN001
        raise Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    # a run stuck in native code never reaches the alarm's handler: dump where it is and end the process
    faulthandler.dump_traceback_later(timeout * 4 + 30, exit=True)
    try:
        os.chdir(cwd)
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
    code, out, err = run_cli(cmd.argv, work, timeout)
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
