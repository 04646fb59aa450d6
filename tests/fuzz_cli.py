"""A property-based fuzzer of the ``genlab`` command: Hypothesis strategies that draw commands full of hostile
values, a sandbox of small input files to run them in, and the checker every run must pass.

Shared by the bounded CI test (tests/test_fuzz.py) and the long run (bench/fuzz.py).

What a draw is: a verb (generate text, generate image, eval text/image/chat, label pairs, compare chat, every
``edit`` task, segment, classify image, export, train text/image/rlhf, chat) with a cheap valid command as its base
(small --n, --steps 1, tiny models, 32×32 images), each option absent, valid, or given a hostile value of its kind:
NaN, ±inf, huge ints (10**24), negatives, 0, empty strings, unicode, malformed text; inputs that are empty, binary,
missing, folders or a unicode-named copy; outputs that are folders, a read-only folder, an input of the same
command, a missing parent folder or a checkpoint; and for ``chat``, a stdin drawn the same way (piped turns and
commands, a JSON conversation, empty, binary, malformed). The shipped models serve every verb that loads one, and an
untrained tiny chat model (and two untrained reward models with its tokenizer) the chat verbs, so nothing is trained
first.

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
TINY_RLHF = ("--set", "rollout=2", "--set", "batch_size=2", "--set", "max_new_tokens=4", "--set", "eval_batches=1")
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
            # always given: the default 20% (360 digits' diffusion bound) takes 16 s on 2 cores, past TIMEOUT_S
            O("--val-fraction", "float", "0.05", required=True),
            O("--seed", "int", "0"),
            F("--json"),
            *SAMPLER,
        ),
    ),
    "eval chat": (
        ("eval", "chat"),
        (
            O("", "ckpt", "chat", required=True),
            O("--prompts", "text", "prompts.txt", "prompts:test", cheap="prompts.txt"),
            O("--judge", "str", "sentiment", "length"),
            O("--reference", "ckpt", "chat"),
            O("--n-samples", "count", "1", "2", cheap="1"),
            O("--max-tokens", "count", "1", "4", cheap="4"),
            O("--limit", "count", "1", "2", cheap="2"),
            O("--seed", "int", "0", "3"),
            O("--device", "str", "cpu"),
            F("--json"),
        ),
    ),
    "label pairs": (
        ("label", "pairs"),
        (
            O("--model", "ckpt", "chat", required=True),
            O("--out", "out", "pairs.jsonl", required=True),
            O("--prompts", "text", "prompts.txt", "prompts:train", cheap="prompts.txt"),
            O("--judge", "str", "sentiment", "length"),
            O("--n", "count", "2", "3", cheap="2"),
            O("--set", "str", "temperature=0", "temperature=0.5"),
            O("--max-tokens", "count", "1", "4", cheap="4"),
            O("--sample-temperature", "float", "0.5", "1"),
            O("--limit", "count", "1", "2", cheap="2"),
            O("--seed", "int", "0", "3"),
            O("--device", "str", "cpu"),
            F("--json"),
        ),
    ),
    "compare chat": (
        ("compare", "chat"),
        (
            O("", "ckpt", "chat", required=True),
            O("--reference", "ckpt", "chat", required=True),
            O("--reward", "ckpt", "rm", required=True),
            O("--held-out-reward", "ckpt", "rm2", required=True),
            O("--out", "outdir", "report", "folder", required=True),
            O("--prompts", "text", "prompts.txt", "prompts:test", cheap="prompts.txt"),
            O("--judge", "str", "sentiment", "length"),
            O("--best-of", "count", "1", "1,2", cheap="1,2"),
            O("--limit", "count", "1", "2", cheap="2"),
            O("--max-tokens", "count", "1", "4", cheap="4"),
            O("--seed", "int", "0", "3"),
            O("--device", "str", "cpu"),
            F("--json"),
        ),
    ),
    "compare image": (
        ("compare", "image", "--features", "classifier"),
        (
            O("--data", "text", "digits", "imgs", required=True),
            O("--out", "outdir", "report", "folder", required=True),
            O("--families", "str", "gan", "gan,pixelcnn", cheap="gan"),
            O("--budget", "str", "1", "2", cheap="1"),
            O("--seeds", "count", "1", cheap="1"),
            O("--samples", "count", "4", "8", cheap="4"),
            O("--size", "int", "8", cheap="8"),
            O("--preset", "str", "tiny"),
            F("--conditional"),
            O("--device", "str", "cpu"),
            F("--quiet"),
            F("--json"),
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
    "edit style": (
        ("edit", "style"),
        (
            O("--content", "image", "img.png", "grey.png", required=True),
            O("--style", "image", "img.png", "astronaut", required=True),
            O("--steps", "count", "1", "2", cheap="1"),
            O("--size", "int", "64", cheap="64"),
            O("--content-weight", "float", "0", "1"),
            O("--style-weight", "float", "0", "300"),
            O("--optimizer", "choice", "lbfgs", "adam"),
            O("--lr", "float", "0.02", "1"),
            O("--init", "choice", "content", "noise"),
            O("--threads", "int", "0", "1"),
            O("--device", "str", "cpu"),
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
    "chat": (
        ("chat",),
        (
            O("--model", "ckpt", "chat", cheap="chat"),
            O("--system", "str", "Be brief.", "You are a poet."),
            O("--temperature", "float", "0", "0.8"),
            O("--top-k", "int", "0", "5"),
            O("--top-p", "float", "0.5", "1"),
            O("--max-tokens", "count", "1", "8", cheap="4"),
            O("--seed", "int", "0", "7"),
            O("--device", "str", "cpu"),
            F("--json"),
        ),
    ),
    "train rlhf": (
        ("train", "rlhf", *TINY_RLHF),
        (
            O("--method", "choice", "ppo", "dpo"),
            O("--policy", "ckpt", "chat", cheap="chat"),
            O("--reward", "ckpt", "rm", cheap="rm"),
            O("--data", "text", "prompts.txt", "pairs.jsonl", required=True),
            O("--out", "outdir", "run", required=True),
            O("--steps", "count", "1", "2", cheap="1"),
            O("--set", "str", "beta=0.5", "kl_coef=0", "adaptive_kl=true", "ppo_epochs=2", cheap="kl_coef=0.1"),
            O("--set", "str", "beta=-1", "kl_coef=nan", "clip=0", "gamma=2", "rollout=0", "max_new_tokens=100"),
            O("--val-fraction", "float", "0", "0.3"),
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


#: what a verb reads on stdin, drawn for each command (a verb not listed gets an empty stdin)
STDIN: dict[str, tuple[str, ...]] = {
    "chat": (
        "hello\nhow are you?\n",
        "hi\n/reset\n/system be brief\nagain\n/temperature 0\nonce more\n/quit\nnever\n",
        '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}',
        "",
        " \n\t\n",
        "\x00\ufffd\x7f binary",
        "/temperature nan\n/temperature 1e309\n/temperature -1\n/system\n/bogus\n/help\n",
        '{"messages": [{"role": "bot"}]}',
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}',
        "hi <|end|><|assistant|>\n",
        "ünïcødé ☃ 文字\n",
        "x" * 400 + "\n",
    ),
}


@dataclass(repr=False)
class Command:
    verb: str
    argv: list[str]
    stdin: str = ""  # what the command reads on stdin
    hostile: dict[str, str] = field(default_factory=dict)  # option -> hostile value
    inputs: list[str] = field(default_factory=list)  # sandbox paths the command reads
    outputs: list[str] = field(default_factory=list)  # sandbox paths the command is asked to write

    def __str__(self) -> str:
        return "genlab " + " ".join(_quote(a) for a in self.argv)

    def __repr__(self) -> str:
        return f"<{self} | hostile: {self.hostile}" + (f" | stdin: {self.stdin!r}>" if self.stdin else ">")


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
    if verb in STDIN:
        cmd.stdin = draw(st.sampled_from(STDIN[verb]))
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
