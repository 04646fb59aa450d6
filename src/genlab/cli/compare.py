"""``genlab compare``: several models measured side by side; ``chat``: policies on the reward/KL frontier;
``image``: the image families trained under one budget and measured by one evaluator."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.cli.common import SEED, Formatter, Names, Num, NumList, json_out


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


def cmd_compare_image(args: argparse.Namespace) -> int:
    import sys

    from genlab.assets import default_model
    from genlab.checkpoint import load_model
    from genlab.cli.eval import _inception_available
    from genlab.errors import GenlabError
    from genlab.eval.chat_report import check_report_folder
    from genlab.eval.fid import InceptionFeatures
    from genlab.eval.image_comparison import parse_budget
    from genlab.eval.image_report import write_image_report
    from genlab.runtime import best_device
    from genlab.train.compare_image import DEFAULT_FAMILIES, check_families, compare_image, preset_size

    out = Path(args.out)
    check_report_folder(out)
    runs = list(args.from_runs or ())
    families = check_families(args.families) if args.families is not None else []
    if not runs and not families:
        families = list(DEFAULT_FAMILIES)
    budget = parse_budget(args.budget) if families else None
    for family in families:
        preset_size(family, args.preset)  # a preset every family has, before any work
    features = args.features if args.features is not None else {"classifier", "inception"}
    device = best_device(args.device)
    classifier = None
    if "classifier" in features and (args.classifier is not None or args.data == "digits"):
        judge = args.classifier if args.classifier is not None else default_model("classifier")
        classifier = load_model(judge, task="classifier", device=device)
    inception = None
    if "inception" in features and (args.features is not None or _inception_available()):
        inception = InceptionFeatures(device)
    if classifier is None and inception is None:
        raise GenlabError("no features to measure with: --data digits (or a --classifier), or install genlab[fid]")

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    comparison = compare_image(
        args.data,
        families,
        budget=budget,
        seeds=args.seeds,
        out=out,
        preset=args.preset,
        samples=args.samples,
        classifier=classifier,
        inception=inception,
        size=args.size,
        conditional=args.conditional,
        runs=runs,
        device=str(device),
        say=say,
    )
    written = write_image_report(out, comparison)
    if args.json:
        json_out({"out": str(out), "files": written} | comparison.to_json())
        return 0
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"wrote {', '.join(written)}, grids/ and runs/ to {out}")
    return 0


def add_compare(sub: argparse._SubParsersAction) -> None:
    """Register ``genlab compare`` and its kinds."""
    p = sub.add_parser(
        "compare",
        help="measure several models side by side: image families under one budget, chat policies on the reward/KL frontier",
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

    q = kinds.add_parser(
        "image",
        help="train the image families under one budget and seeds; measure them by one evaluator; write a report",
        formatter_class=Formatter,
        description="Train each of --families (VAE, GAN, PixelCNN, diffusion) on --data from --preset under the "
        "same --budget (steps, wall-clock time, or 'preset': each family's own tuned steps) once per seed, unconditionally (--conditional: with the labels), "
        "and measure every model as genlab eval image --fid does, on the same held-out split and --samples samples: "
        "its likelihood in bits per dimension with its kind (exact: PixelCNN; a bound: the VAE's IWAE; none: the "
        "GAN and diffusion here), FID and KID, precision, recall, density and coverage (k = 3) on the digits "
        "classifier's and/or Inception's features, the smallest class share of the samples (mode collapse), "
        "near-copies of training images, network evaluations and seconds per sample, parameters, and training "
        "time. A floor row scores as many real training images against the held-out split the same way: the best "
        "each figure can be with this many images. Writes into --out (a new or empty folder): runs/FAMILY-seedS "
        "(the trained checkpoints), grids/ (samples, seed 0), report.md (mean ± sd over seeds), report.html, "
        "quality_speed.png (FID against seconds per sample) and results.json. --from RUN ... measures existing "
        "image checkpoints instead of (or beside) training.",
        epilog="""examples:
  genlab compare image --data digits --families vae,gan,pixelcnn,diffusion --budget 10m --seeds 3 --out report
  genlab compare image --data digits --families gan,pixelcnn --budget 2000 --seeds 1 --out quick
  genlab compare image --data digits --budget preset --seeds 3 --out tuned    # each family at its tuned preset
  genlab compare image --data digits --from runs/vae runs/gan --out report2
  genlab compare image --data my_images/ --families vae,diffusion --budget 1h --features inception --out mine
""",
    )
    q.add_argument(
        "--data", required=True, help="a folder of images, digits or shapes (the held-out split is the reference)"
    )
    q.add_argument(
        "--families",
        help="comma-separated image families to train (default: vae,gan,pixelcnn,diffusion; none with --from)",
    )
    q.add_argument(
        "--budget",
        default="2m",
        help="each run's training: steps (2000), wall-clock time (90s, 10m, 1h) or preset (each family's tuned steps)",
    )
    q.add_argument("--seeds", type=Num(int, 1, 100), default=3, help="runs per family, seeds 0 … N-1")
    q.add_argument("--preset", default="tiny", help="every family's preset")
    q.add_argument("--samples", type=Num(int, 4, 100_000), default=500, help="samples each model is measured on")
    q.add_argument(
        "--features",
        type=Names("classifier", "inception"),
        help="classifier, inception or both (default: what is available)",
    )
    q.add_argument("--classifier", metavar="DIR", help="the classifier whose features judge (default: digits')")
    q.add_argument(
        "--size",
        type=Num(int, 4, 1024),
        help="image side every family trains at (default: the smallest its presets use)",
    )
    q.add_argument("--conditional", action="store_true", help="train with the labels (default: unconditional)")
    q.add_argument("--from", nargs="+", dest="from_runs", metavar="RUN", help="measure these image checkpoints too")
    q.add_argument("--out", required=True, help="the report's folder (new or empty)")
    q.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    q.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    q.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    q.set_defaults(func=cmd_compare_image)
