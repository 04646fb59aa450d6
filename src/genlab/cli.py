"""The ``genlab`` command: parse, call the library, report.

Exit status: 0 done; 2 bad usage or bad input (one line, no traceback); 1 an internal error;
130 interrupted (training saves a checkpoint first).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from genlab import __version__
from genlab.errors import GenlabError, GenlabWarning

EXAMPLES = """\
examples:
  genlab demo                                              # every shipped model, end to end -> genlab-demo/index.html
  genlab generate text --prompt "In the beginning" --max-tokens 200 --seed 1
  genlab train text --data my.txt --model gpt --preset tiny --out runs/my-gpt
  genlab train text --data kjv --model ngram --set order=5 --out runs/5gram
  genlab eval text runs/my-gpt --data held_out.txt --json
  genlab edit inpaint --image photo.jpg --mask hole.png --out filled.png   # also texture, retarget, denoise, ...

Every verb has its own --help. Docs: docs/index.md in the source tree.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _json_out(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


# --- train -----------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from genlab.config import parse_set
    from genlab.train.text import train_text

    overrides: dict[str, Any] = parse_set(args.set)
    for key in ("steps", "seed", "time_budget"):
        value = getattr(args, key)
        if value is not None:
            overrides.setdefault(key, value)
    if args.time_budget and args.steps is None and "steps" not in overrides and not args.resume:
        overrides["steps"] = 10**9  # the time budget alone decides when to stop
    summary = train_text(
        data=args.data,
        out=args.out,
        family=args.model,
        preset=args.preset,
        overrides=overrides,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        val_fraction=args.val_fraction,
        resume=args.resume,
        device=args.device,
        quiet=args.quiet,
    )
    if summary.get("stopped") == "interrupted":
        print(
            f"genlab: interrupted at step {summary['step']}; the checkpoint in {args.out} is saved. "
            "Continue with the same command and --resume.",
            file=sys.stderr,
        )
        return 130
    if args.json:
        _json_out(summary)
    elif "held_out" in summary:
        h = summary["held_out"]
        print(
            f"saved {summary['family']} to {summary['out']} (step {summary['step']}); held out: "
            f"{h['bits_per_char']:.4f} bits/char, {h['nats_per_char']:.4f} nats/char, perplexity {h['perplexity']:.3f}"
        )
    else:
        print(f"saved {summary.get('family', 'model')} to {args.out}")
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on your data or a bundled set",
        formatter_class=_Formatter,
        description="Train a model and save a checkpoint directory (config.json, model.safetensors, tokenizer.json, "
        "metrics.jsonl, train_state.pt). Progress shows loss, speed and ETA; Ctrl-C saves a checkpoint that "
        "--resume continues exactly.",
        epilog="""examples:
  genlab train text --data kjv --model gpt --preset tiny --out runs/kjv-gpt
  genlab train text --data my.txt --model gpt --set n_layer=4 --set n_embd=128 --set block_size=64 --steps 2000 --out runs/x
  genlab train text --data my.txt --model ngram --set order=5 --tokenizer char --out runs/my-5gram
  genlab train text --data my.txt --model lstm --time-budget 300 --out runs/lstm
  genlab train text --out runs/x --resume                # continue where an interrupted run stopped
  torchrun --nproc_per_node 2 -m genlab train text ...  # data parallel on several processes/GPUs

families: gpt (decoder-only transformer), lstm (recurrent), ngram (counts with Kneser-Ney or Witten-Bell smoothing).
--set takes any model field (gpt: block_size n_layer n_head n_embd dropout bias; lstm: block_size n_layer n_embd
n_hidden dropout; ngram: order smoothing discount) or trainer field (steps batch_size accumulate lr min_lr warmup
weight_decay beta1 beta2 grad_clip ema eval_every eval_batches log_every ckpt_every time_budget precision compile seed).
""",
    )
    p.add_argument("modality", choices=["text"], help="what to model")
    p.add_argument("--data", help="a .txt file, a folder of them, a .jsonl file, or a bundled corpus: kjv")
    p.add_argument("--out", required=True, help="run directory (the checkpoint is written here)")
    p.add_argument("--model", default="gpt", help="model family: gpt, lstm or ngram")
    p.add_argument("--preset", default="tiny", help="size preset: tiny (CPU, minutes), small (CPU, ~hour), base (GPU)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    p.add_argument("--time-budget", type=float, dest="time_budget", help="stop after this many seconds")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any model or trainer field (repeatable)")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe"], help="character-level or byte-level BPE")
    p.add_argument("--vocab-size", type=int, default=1024, dest="vocab_size", help="BPE vocabulary size")
    p.add_argument(
        "--val-fraction", type=float, default=0.1, dest="val_fraction", help="last part of the text held out"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_train)


# --- generate --------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    import genlab
    from genlab.io import write_text
    from genlab.runtime import best_device, make_generator
    from genlab.sampling.text import check_controls, generate

    check_controls(args.temperature, args.top_k, args.top_p, args.max_tokens)
    device = best_device(args.device)
    model = genlab.load(args.model, task="text", device=device)
    generator = make_generator(args.seed, device)
    stream = args.stream and not args.json and args.n == 1
    if stream:
        sys.stdout.write(args.prompt)
        sys.stdout.flush()

    def emit(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    gen = generate(
        model,
        args.prompt,
        n=args.n,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        stop=args.stop or (),
        generator=generator,
        on_text=emit if stream else None,
        cache=not args.no_cache,
    )
    if args.out:
        write_text(args.out, "\n\n".join(args.prompt + t for t in gen.texts) + "\n")
    if args.json:
        _json_out(
            {
                "prompt": args.prompt,
                "samples": gen.texts,
                "new_tokens": gen.new_tokens,
                "seconds": round(gen.seconds, 4),
                "tokens_per_s": round(gen.tokens_per_s, 1),
            }
        )
    elif stream:
        sys.stdout.write("\n")
    elif not args.out:
        print("\n\n".join(args.prompt + t for t in gen.texts))
    else:
        print(f"wrote {args.n} sample(s) to {args.out}", file=sys.stderr)
    return 0


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample from a model (the shipped one by default)",
        formatter_class=_Formatter,
        description="Generate text with a trained model: temperature, top-k and top-p (nucleus) sampling, stop "
        "strings, a KV cache so each token costs one step. An empty prompt starts after a newline; a prompt longer "
        "than the model's context keeps its last tokens (with a warning).",
        epilog="""examples:
  genlab generate text --prompt "In the beginning" --max-tokens 200 --seed 1
  genlab generate text --model runs/my-gpt --prompt "..." --temperature 0.8 --top-k 50 --top-p 0.95 --stream
  genlab generate text --prompt "And" --stop "." --n 4 --json
""",
    )
    p.add_argument("modality", choices=["text"], help="what to generate")
    p.add_argument("--model", help="checkpoint directory (default: the shipped model)")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("--max-tokens", type=int, default=200, dest="max_tokens", help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy")
    p.add_argument("--top-k", type=int, default=0, dest="top_k", help="keep the k most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, dest="top_p", help="keep the smallest set with this probability")
    p.add_argument("--stop", action="append", metavar="TEXT", help="stop when this string appears (repeatable)")
    p.add_argument("--n", type=int, default=1, help="number of samples")
    p.add_argument("--seed", type=int, help="random seed: the same seed repeats the output on the same device")
    p.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    p.add_argument("--no-cache", action="store_true", dest="no_cache", help="recompute the context each step")
    p.add_argument("--out", help="write the samples to this file")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the samples and speed")
    p.set_defaults(func=cmd_generate)


# --- eval ------------------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    import genlab
    from genlab.data.text import load_text, split_text
    from genlab.eval.text import evaluate_text
    from genlab.runtime import best_device

    model = genlab.load(args.model_dir, task="text", device=best_device(args.device))
    text = load_text(args.data)
    if args.split != "all":
        train_part, val_part = split_text(text, args.val_fraction)
        text = val_part if args.split == "val" else train_part
    figures = evaluate_text(model, text)
    if args.json:
        _json_out(figures)
    else:
        for key, value in figures.items():
            print(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a model on held-out data",
        formatter_class=_Formatter,
        description="Held-out likelihood: nats per token, perplexity and bits per character (tokenizer-independent, "
        "so every family compares on the same footing). Each token is scored with all the context the model uses.",
        epilog="""examples:
  genlab eval text runs/my-gpt --data held_out.txt --json
  genlab eval text runs/5gram --data kjv --split val       # the last 10% of the bundled corpus
""",
    )
    p.add_argument("modality", choices=["text"], help="what the model generates")
    p.add_argument("model_dir", metavar="DIR", help="checkpoint directory")
    p.add_argument("--data", required=True, help="a .txt file, a folder, a .jsonl file, or a bundled corpus")
    p.add_argument("--split", default="all", choices=["all", "train", "val"], help="which part of --data")
    p.add_argument("--val-fraction", type=float, default=0.1, dest="val_fraction", help="held-out part for --split")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)


# --- export --------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from genlab.train.checkpoint import export_checkpoint

    out = export_checkpoint(args.model_dir, args.out, dtype=args.dtype)
    print(f"wrote {out}")
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="copy a checkpoint for inference (optionally in half precision)",
        formatter_class=_Formatter,
        description="Writes config.json, model.safetensors (the EMA weights where the run kept them) and the "
        "family's extras to --out, without training state; --dtype float16 halves the size.",
        epilog="example:\n  genlab export runs/gpt-kjv --out my-model --dtype float16\n",
    )
    p.add_argument("model_dir", metavar="DIR", help="checkpoint directory")
    p.add_argument("--out", required=True, help="destination directory")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="weight precision")
    p.set_defaults(func=cmd_export)


# --- demo ------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from genlab.demo import run_demo

    index = run_demo(Path(args.out), seed=args.seed)
    print(f"wrote {index}")
    return 0


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run every shipped model end to end; write an HTML report",
        formatter_class=_Formatter,
        description="Runs each shipped default model (no training, no network) and writes OUT/index.html.",
    )
    p.add_argument("--out", default="genlab-demo", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genlab",
        formatter_class=_Formatter,
        epilog=EXAMPLES,
        description="genlab: train, sample, edit and evaluate generative models on your own machine, offline.",
    )
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = parser.add_subparsers(title="verbs", metavar="VERB", required=True)
    from genlab.edit.cli import add_edit

    for add in (add_train, add_generate, add_eval, add_export, add_demo, add_edit):
        add(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"genlab: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # libraries' own deprecation chatter is not for users
            warnings.simplefilter("always", GenlabWarning)
            warnings.showwarning = _show_warning
            return args.func(args)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genlab generate ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
