"""``genlab label``: label data with a judge; ``pairs``: preference pairs from a chat policy's own answers."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from genlab.cli.common import SEED, Formatter, Num, json_out
from genlab.errors import GenlabError

#: the labeller's settings ``--set`` takes, with their defaults
LABEL_SETTINGS = {"temperature": 0.1}


def label_settings(items: list[str] | None) -> dict[str, float]:
    """``--set key=value`` of ``genlab label pairs``: known keys only, each a finite number ≥ 0."""
    from genlab.config import parse_set

    settings = dict(LABEL_SETTINGS)
    for key, text in parse_set(items).items():
        if key not in LABEL_SETTINGS:
            raise GenlabError(f"--set {key}: unknown setting; valid keys: {', '.join(LABEL_SETTINGS)}")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value >= 0):
            raise GenlabError(
                f"--set {key}={text}: must be a finite number ≥ 0 (the Bradley–Terry temperature; 0: the higher "
                "score always wins)"
            )
        settings[key] = value
    return settings


def cmd_label_pairs(args: argparse.Namespace) -> int:
    from genlab.checkpoint import load_model
    from genlab.data.chat import load_prompts
    from genlab.eval.judges import load_judge
    from genlab.eval.preferences import label_pairs
    from genlab.io import write_text
    from genlab.runtime import best_device

    if Path(args.out).is_dir():
        raise GenlabError(f"--out {args.out}: is a folder; name the .jsonl file to write")
    settings = label_settings(args.set)
    judge = load_judge(args.judge)
    prompts = load_prompts(args.prompts)[: args.limit]
    model = load_model(args.model, task="chat", device=best_device(args.device))
    labelled = label_pairs(
        model,
        prompts,
        judge,
        n=args.n,
        temperature=settings["temperature"],
        sample_temperature=args.sample_temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        progress=not args.json,
    )
    write_text(args.out, labelled.jsonl())
    summary = {"out": args.out, "judge": judge.name} | labelled.summary()
    if args.json:
        json_out(summary)
    else:
        print(
            f"wrote {summary['pairs']} pairs from {summary['prompts']} prompts to {args.out}; judge {judge.name}: "
            f"mean score {summary['mean_score']:.4f}, agreement {summary['judge_agreement']:.3f}",
        )
        if summary["ties_dropped"]:
            print(f"{summary['ties_dropped']} comparisons of equally scored answers left out", file=sys.stderr)
    return 0


def add_label(sub: argparse._SubParsersAction) -> None:
    """Register ``genlab label`` and its kinds."""
    p = sub.add_parser(
        "label",
        help="label data with a judge: preference pairs for reward models and DPO",
        formatter_class=Formatter,
        description="Label data with a judge, a program standing in for the human labellers of RLHF.",
    )
    kinds = p.add_subparsers(title="kinds", metavar="KIND", required=True)
    q = kinds.add_parser(
        "pairs",
        help="sample answers from a chat model and label every two of a prompt's answers",
        formatter_class=Formatter,
        description="For each prompt, sample --n answers from the chat model, score them with the judge and write "
        "every comparison of two distinct answers (all C(n,2) of a prompt, as InstructGPT does) as a preference "
        "pair. Which answer is chosen is drawn from the Bradley-Terry model: P(a preferred to b) = "
        "sigmoid((score_a - score_b) / T), T set by --set temperature=T (0: the higher score always wins). Two "
        "answers with exactly the same score are not compared (a fair coin would only add noise). Judges: "
        "sentiment (VADER's compound score of the answer, -1 to 1), length (the answer's length in words), or your "
        "own module:function, called as function(prompt, response) -> float with the current folder on the import "
        "path. Prints the pairs written, the judge's mean score and the judge agreement: the share of pairs whose "
        "chosen answer has the higher score, the accuracy a perfect reward model could reach on these labels.",
        epilog="""examples:
  genlab label pairs --model runs/sft --judge sentiment --n 4 --out pairs.jsonl
  genlab label pairs --model runs/sft --prompts my_prompts.txt --judge length --set temperature=0 --out pairs.jsonl
  genlab label pairs --model runs/sft --judge myjudge:score --limit 100 --out pairs.jsonl --json
""",
    )
    q.add_argument("--model", required=True, metavar="DIR", help="a chat model (genlab train chat)")
    q.add_argument("--out", required=True, help="the .jsonl of pairs to write (written whole at the end)")
    q.add_argument(
        "--prompts",
        default="prompts:train",
        help="prompts: a .txt (one per line), a .jsonl of {'prompt': ...}, or the bundled prompts:train / prompts:test",
    )
    q.add_argument("--judge", default="sentiment", help="sentiment, length, or module:function")
    q.add_argument("--n", type=Num(int, 2, 64), default=4, help="answers sampled per prompt")
    q.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="labeller setting: temperature=T, the Bradley-Terry noise on the judge's scale (default 0.1)",
    )
    q.add_argument(
        "--max-tokens", type=Num(int, 1, 100_000), default=64, dest="max_tokens", help="answer length limit in tokens"
    )
    q.add_argument(
        "--sample-temperature",
        type=Num(float, hi=100, gt=0),
        default=1.0,
        dest="sample_temperature",
        help="softmax temperature of the answers",
    )
    q.add_argument(
        "--limit",
        metavar="K",
        type=Num(int, 1, 1_000_000),
        default=None,
        help="use the first K prompts only (default: all of them)",
    )
    q.add_argument("--seed", type=SEED, default=0, help="seed of the answers and the coin")
    q.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    q.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    q.set_defaults(func=cmd_label_pairs)
