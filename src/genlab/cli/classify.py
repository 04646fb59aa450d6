"""``genlab classify``: zero-shot image classification with CLIP."""

from __future__ import annotations

import argparse
from typing import Any

from genlab.cli.common import POSITIVE, Formatter, json_out
from genlab.io import MAX_PIXELS


def cmd_classify(args: argparse.Namespace) -> int:
    import torch

    from genlab.checkpoint import load_model
    from genlab.data.domain import check_domain
    from genlab.data.image_data import resize_crop
    from genlab.data.images import read_image
    from genlab.runtime import best_device

    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    model = load_model(args.model, task="clip", device=best_device(args.device))
    size, grey = model.config.image_size, model.config.channels == 1
    arrays = [read_image(p, grey=grey, max_pixels=args.max_pixels) for p in args.images]
    outside = [check_domain(model, a, p) for p, a in zip(args.images, arrays, strict=True)]
    batch = torch.stack(
        [torch.from_numpy(resize_crop(a[..., None] if grey else a, size)).permute(2, 0, 1) for a in arrays]
    )
    probs = model.zero_shot(batch.float(), labels)
    results: list[dict[str, Any]] = []
    for path, p, warning in zip(args.images, probs, outside, strict=True):
        ranked = sorted(zip(labels, p.tolist(), strict=True), key=lambda lp: -lp[1])
        results.append({"image": path, "label": ranked[0][0], "probabilities": dict(ranked)})
        if warning is not None:  # also in the object of a single image; a list of results keeps each its own
            results[-1]["warnings"] = [warning]
    if args.json:
        json_out(results if len(results) > 1 else results[0])
    else:
        for r in results:
            shown = ", ".join(f"{label} {p:.3f}" for label, p in r["probabilities"].items())
            print(f"{r['image']}: {r['label']}  ({shown})")
    return 0


def add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify",
        help="zero-shot image classification with CLIP",
        formatter_class=Formatter,
        description="Scores each image against every label with CLIP (the shipped clip-shapes by default): the "
        "label whose text embedding is most similar to the image's wins; no training on those labels.",
        epilog="""examples:
  genlab classify image in.png --labels "a circle,a square,a star"
  genlab classify image a.png b.png --labels "a red shape,a blue shape" --model runs/clip --json
""",
    )
    p.add_argument("modality", choices=["image"], help="what to classify")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (or bundled photo names)")
    p.add_argument("--labels", required=True, help="candidate labels, comma-separated")
    p.add_argument("--model", help="CLIP checkpoint directory (default: the shipped clip-shapes)")
    p.add_argument("--max-pixels", type=POSITIVE, default=MAX_PIXELS, dest="max_pixels", help="refuse larger images")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_classify)
