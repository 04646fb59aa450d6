"""``genlab compare``: several models measured side by side; ``chat``: policies on the reward/KL frontier."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.cli.common import SEED, Formatter, Num, NumList, json_out


def _names(runs: list[str]) -> list[str]:
    """Each RUN's label: its folder's name, or the path as given where two names would be the same."""
    names = [Path(r).name or r for r in runs]
    return names if len(set(names)) == len(names) else list(runs)


def cmd_compare_chat(args: argparse.Namespace) -> int:
    from genlab.checkpoint import load_model
    from genlab.data.chat import load_prompts
    from genlab.eval.chat_report import check_report_folder, write_report
    from genlab.eval.compare_chat import compare_chat
    from genlab.eval.judges import load_judge
    from genlab.runtime import best_device

    out = Path(args.out)
    check_report_folder(out)
    judge = load_judge(args.judge)
    prompts = load_prompts(args.prompts)[: args.limit]
    device = best_device(args.device)
    reference = load_model(args.reference, task="chat", device=device)
    runs = [
        (name, load_model(run, task="chat", device=device))
        for name, run in zip(_names(args.runs), args.runs, strict=True)
    ]
    reward = load_model(args.reward, task="reward", device=device)
    held_out = load_model(args.held_out_reward, task="reward", device=device)
    comparison = compare_chat(
        reference,
        runs,
        prompts,
        judge,
        reward,
        held_out,
        best_of=args.best_of,
        max_tokens=args.max_tokens,
        seed=args.seed,
        reference_name=_names([args.reference])[0],
        progress=not args.json,
    )
    comparison.settings |= {
        "reference": args.reference,
        "runs": list(args.runs),
        "reward": args.reward,
        "held_out_reward": args.held_out_reward,
        "prompts_source": args.prompts,
    }
    written = write_report(out, comparison)
    if args.json:
        json_out({"out": str(out), "files": written} | comparison.to_json())
        return 0
    print(f"{'method':>16}  {'score':>15}  {'KL nats':>8}  {'end':>5}  win rate over the reference [95% CI]")
    for m in comparison.methods:
        f = m.figures
        win = (
            f"{f['win_rate']:.3f} [{f['win_low']:.3f}, {f['win_high']:.3f}]"
            if f["wins"] + f["ties"] + f["losses"]
            else "-"
        )
        print(f"{m.name:>16}  {f['score']:>7.3f} ± {f['score_se']:.3f}  {f['kl']:>8.2f}  {f['end_rate']:>5.2f}  {win}")
    print(f"wrote {', '.join(written)} to {out} ({len(comparison.prompts)} prompts; ties count half a win)")
    return 0


def add_compare(sub: argparse._SubParsersAction) -> None:
    """Register ``genlab compare`` and its kinds."""
    p = sub.add_parser(
        "compare",
        help="measure several models side by side: chat policies on the reward/KL frontier",
        formatter_class=Formatter,
        description="Measure several models on the same held-out data and write a report.",
    )
    kinds = p.add_subparsers(title="kinds", metavar="KIND", required=True)
    q = kinds.add_parser(
        "chat",
        help="chat policies (SFT, PPO, DPO) and best-of-n of the reference: judge score against KL",
        formatter_class=Formatter,
        description="Compare chat policies on held-out prompts (one answer each, sampled at temperature 1): each "
        "RUN, the --reference policy (the SFT model, at KL 0), and best-of-n of the reference for each n of "
        "--best-of (n answers sampled from the reference, the one the --reward model scores highest kept: the DPO "
        "paper's baseline, whose KL from the reference is log n - (n-1)/n nats). For each: the judge's mean score "
        "and its standard error, the KL from the reference in nats per answer, mean length in words and tokens, "
        "distinct-2, the end rate, and the win rate over the reference's answer to the same prompt as judged by "
        "the --held-out-reward model (trained on other pairs with another seed; a tie counts one half), with a "
        "95% Wilson interval. The policy is never evaluated with the reward model it was trained against: a RUN "
        "trained against the --held-out-reward model is refused, and so is a --held-out-reward that is the "
        "--reward model. Writes frontier.png (score against KL), report.html (the figures and the answers to the "
        "first 8 prompts side by side) and results.json into --out, a new or empty folder.",
        epilog="""examples:
  genlab compare chat runs/ppo runs/dpo --reference runs/sft --reward runs/rm --held-out-reward runs/rm2 --out report
  genlab compare chat runs/ppo --reference runs/sft --reward runs/rm --held-out-reward runs/rm2 --best-of 1,4,16 --limit 50 --out report --json
  genlab compare chat runs/ppo --judge length --prompts my_prompts.txt --reference runs/sft --reward runs/rm --held-out-reward runs/rm2 --out report
""",
    )
    q.add_argument("runs", nargs="+", metavar="RUN", help="chat models to compare (genlab train chat, rlhf)")
    q.add_argument("--reference", required=True, metavar="DIR", help="the SFT chat model the runs started from")
    q.add_argument("--reward", required=True, metavar="DIR", help="the reward model best-of-n picks answers by")
    q.add_argument(
        "--held-out-reward",
        required=True,
        metavar="DIR",
        dest="held_out_reward",
        help="a reward model no RUN was trained against (other pairs, another seed): judges the win rates",
    )
    q.add_argument("--out", required=True, help="the report's folder (new or empty)")
    q.add_argument(
        "--prompts",
        default="prompts:test",
        help="prompts: a .txt (one per line), a .jsonl of {'prompt': ...}, or the bundled prompts:test / prompts:train",
    )
    q.add_argument("--judge", default="sentiment", help="sentiment (VADER, -1 to 1), length (words) or module:function")
    q.add_argument(
        "--best-of",
        type=NumList(Num(int, 1, 256)),
        default=(1, 4, 16, 64),
        dest="best_of",
        help="the n of best-of-n, comma-separated (default 1,4,16,64; the reference samples the largest n per prompt)",
    )
    q.add_argument(
        "--limit", metavar="K", type=Num(int, 1, 1_000_000), default=200, help="use the first K prompts only"
    )
    q.add_argument(
        "--max-tokens", type=Num(int, 1, 100_000), default=64, dest="max_tokens", help="answer length limit in tokens"
    )
    q.add_argument("--seed", type=SEED, default=0, help="seed of the answers (best-of-n's pool: the next one)")
    q.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    q.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    q.set_defaults(func=cmd_compare_chat)
