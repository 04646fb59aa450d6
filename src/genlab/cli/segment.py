"""``genlab segment IMAGE``: masks for clicks and boxes, or for everything in the image."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from genlab.cli.common import FRACTION, NATURAL, POSITIVE, Formatter, Num, json_out
from genlab.errors import GenlabError
from genlab.io import MAX_PIXELS

FORMATS = ("png", "coco-rle", "polygons")


def parse_point(text: str) -> tuple[float, float, int]:
    """``X,Y`` or ``X,Y,L`` → (x, y, label); L is 1 (foreground, the default) or 0 (background)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        label = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise GenlabError(f"--point {text!r}: expected X,Y or X,Y,L (pixels; L = 1 foreground, 0 background)") from None
    if label not in (0, 1):
        raise GenlabError(f"--point {text!r}: the label must be 1 (foreground) or 0 (background), not {label}")
    if not (math.isfinite(x) and math.isfinite(y)):
        raise GenlabError(f"--point {text!r}: X and Y must be finite numbers (pixels)")
    return x, y, label


def parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise GenlabError(f"--box {text!r}: expected X0,Y0,X1,Y1 (pixels, top-left and bottom-right)") from None
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        raise GenlabError(f"--box {text!r}: the corners must be finite numbers (pixels)")
    return x0, y0, x1, y1


def _is_folder(out: str) -> bool:
    return out.endswith(("/", "\\")) or Path(out).is_dir()


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def write_outputs(
    records: list[dict[str, Any]], image: np.ndarray, out: str, fmt: str, *, name: str, prompts: dict[str, Any]
) -> list[str]:
    """Write masks as PNGs (a mask file, or a folder of masks with an overlay), COCO RLE JSON or polygon JSON."""
    from genlab.data.images import write_image
    from genlab.io import write_json
    from genlab.segment.formats import draw_prompts, encode_rle, mask_to_polygons, overlay

    masks = [r["segmentation"] for r in records]
    if fmt == "png":
        shown = draw_prompts(overlay(image, masks), **prompts) if prompts else overlay(image, masks)
        if _is_folder(out):
            files = [write_image(Path(out) / f"mask_{i}.png", m.astype(np.float32)) for i, m in enumerate(masks)]
            return [str(f) for f in [*files, write_image(Path(out) / "overlay.png", shown)]]
        if prompts and len(masks) == 1:  # one answer to a prompt: the mask itself
            return [str(write_image(out, masks[0].astype(np.float32)))]
        if prompts:
            raise GenlabError(f"{len(masks)} masks: give a folder, e.g. --out masks/ (one PNG per mask + overlay.png)")
        return [str(write_image(out, shown))]  # everything: the overlay
    path = Path(out) / "masks.json" if _is_folder(out) else Path(out)
    encode = encode_rle if fmt == "coco-rle" else mask_to_polygons
    annotations = [
        {"id": i, "segmentation": encode(r["segmentation"])} | {k: v for k, v in r.items() if k != "segmentation"}
        for i, r in enumerate(records)
    ]
    h, w = image.shape[:2]
    write_json(path, {"image": name, "height": h, "width": w, "format": fmt, "annotations": annotations})
    return [str(path)]


def cmd_segment(args: argparse.Namespace) -> int:
    import torch

    from genlab.data.domain import check_domain
    from genlab.data.images import read_image
    from genlab.eval.segment import stability_score
    from genlab.segment.automatic import AutomaticMaskGenerator
    from genlab.segment.predictor import SegmentPredictor, best_mask

    points = [parse_point(p) for p in args.point or []]
    boxes = [parse_box(b) for b in args.box or []]
    if args.all and (points or boxes):
        raise GenlabError("--all segments everything; leave out --point and --box (or drop --all)")
    if not args.all and not points and not boxes:
        raise GenlabError("no prompt: give --point X,Y[,L], --box X0,Y0,X1,Y1, or --all")
    if args.refine < 0 or (args.refine and args.all):
        raise GenlabError(f"--refine {args.refine}: a count ≥ 0 of extra rounds for a prompt's mask (not with --all)")
    if len(boxes) > 1 and points:
        raise GenlabError("several --box prompts answer one mask each; combine --point with a single --box")
    if args.out is None and not args.json:
        raise GenlabError("say where the masks go: --out mask.png, --out masks/, --out masks.json (or --json)")
    image = read_image(args.image, max_pixels=args.max_pixels)
    predictor = SegmentPredictor.load(args.model, device=args.device)
    check_domain(predictor.model, image, args.image)
    start = time.perf_counter()
    predictor.set_image(image)
    encoder_ms = 1000 * (time.perf_counter() - start)
    start = time.perf_counter()
    prompts: dict[str, Any] = {}
    if args.all:
        generator = AutomaticMaskGenerator(
            predictor,
            points_per_side=args.points_per_side,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_thresh,
            min_mask_region_area=args.min_area,
        )
        records = generator.generate()
        n_prompts = args.points_per_side**2
    else:
        xy = np.array([[x, y] for x, y, _ in points], np.float32) if points else None
        labels = np.array([lab for _, _, lab in points]) if points else None
        box = np.array(boxes if len(boxes) > 1 else boxes[0], np.float32) if boxes else None
        one_click = len(points) == 1 and not boxes
        multimask = args.multimask or one_click  # one click is ambiguous: ask for 3, keep the best unless --multimask
        if args.refine and multimask:
            raise GenlabError("--refine refines the single mask: not with --multimask or one click alone")
        logits, scores, _ = predictor.predict(
            xy, labels, box, multimask=multimask, return_logits=True, refine=args.refine
        )
        logits, scores = logits.reshape(-1, *logits.shape[-2:]), scores.reshape(-1)
        stable = stability_score(torch.from_numpy(logits)).numpy()
        if args.multimask or len(boxes) > 1:
            keep = range(len(scores))
        else:  # the answer that agrees with the prompts: the clicks in (or out), the mask inside the box
            keep = [best_mask(logits, scores, xy, labels, box if boxes else None)[2]]
        records = [
            {
                "segmentation": logits[i] > 0,
                "predicted_iou": round(float(scores[i]), 4),
                "stability_score": round(float(stable[i]), 4),
            }
            for i in keep
        ]
        for r in records:
            r["area"], r["bbox"] = int(r["segmentation"].sum()), _bbox(r["segmentation"])
        prompts = {"points": xy, "labels": labels, "boxes": box}
        n_prompts = max(1, len(boxes))
    decoder_ms = 1000 * (time.perf_counter() - start)
    files = (
        write_outputs(records, image, args.out, args.format, name=str(args.image), prompts=prompts)
        if args.out is not None
        else []
    )
    if args.json:
        h, w = image.shape[:2]
        summary = {
            "image": str(args.image),
            "width": w,
            "height": h,
            "mode": "all" if args.all else "prompt",
            "masks": [{k: v for k, v in r.items() if k != "segmentation"} for r in records],
            "files": files,
            "encoder_ms": round(encoder_ms, 2),
            "decoder_ms_per_prompt": round(decoder_ms / n_prompts, 3),
        }
        json_out(summary)
    else:
        best = ", ".join(f"{r['predicted_iou']:.2f}" for r in records[:5])
        print(f"{len(records)} mask(s) (predicted IoU {best}{', …' if len(records) > 5 else ''}) → {', '.join(files)}")
    return 0


def add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment an image from clicks and boxes, or everything in it",
        formatter_class=Formatter,
        description="Promptable segmentation in the Segment-Anything style. The image is encoded once; each click "
        "or box is answered by the light mask decoder. Coordinates are pixels of IMAGE: x to the right, y down. "
        "One click is ambiguous (the whole object or a part of it?): the model proposes 3 masks with a predicted IoU "
        "each and keeps the best, or all 3 with --multimask. --all prompts a grid of points and keeps the confident, "
        "stable, distinct masks. The default model is the shipped sam-scenes (64×64 drawn scenes: shapes and "
        "objects on flat, textured and photo backgrounds; see its MODEL_CARD.md); train your own with `genlab train segment`.",
        epilog="""examples:   (scene.png: a 64×64 drawn scene, what the shipped model knows; photos need your own model)
  genlab segment scene.png --point 32,36 --out mask.png                     # one foreground click → the best mask
  genlab segment scene.png --point 32,36 --point 5,5,0 --out mask.png --json   # L: 1 foreground, 0 background
  genlab segment scene.png --box 16,16,48,52 --multimask --out masks/       # 3 masks + predicted IoU each, overlay.png
  genlab segment scene.png --box 2,2,30,30 --box 34,34,62,62 --out masks/   # one mask per box, one batched call
  genlab segment scene.png --box 16,16,48,52 --refine 1 --out mask.png      # the answer fed back once as a mask prompt
  genlab segment scene.png --all --out everything.png                       # segment everything: a coloured overlay
  genlab segment scene.png --all --format coco-rle --out everything.json    # COCO RLE records (pycocotools reads them)
  genlab segment scene.png --all --format polygons --out everything.json --points-per-side 24 --min-area 20
  genlab segment photo.png --point 120,80 --model runs/my-sam --out mask.png   # a photo, with a model you trained

outputs: --format png writes a mask PNG (white = inside) for one mask, a folder (mask_N.png + overlay.png) when --out
ends with /, or the overlay for --all; coco-rle and polygons write JSON with area, bbox (x, y, w, h), predicted_iou,
stability_score (and point_coords for --all). --json prints the same figures and the timings.
""",
    )
    p.add_argument("image", metavar="IMAGE", help="image file (png, jpg, webp, ...; grey, RGB, RGBA, palette, 16-bit)")
    p.add_argument(
        "--point",
        action="append",
        metavar="X,Y[,L]",
        help="a click; L = 1 foreground (default) or 0 background; repeatable",
    )
    p.add_argument(
        "--box", action="append", metavar="X0,Y0,X1,Y1", help="a box around the object (x1, y1 exclusive); repeatable"
    )
    p.add_argument(
        "--multimask", action="store_true", help="keep all 3 masks (whole, part, subpart) with their predicted IoU"
    )
    p.add_argument(
        "--refine",
        type=Num(int, 0, 100),
        default=0,
        metavar="N",
        help="feed the answer back N more times as a mask prompt (a box: 1 mends shrunken answers; docs/segment.md)",
    )
    p.add_argument("--all", action="store_true", help="segment everything (automatic mask generation)")
    p.add_argument("--out", help="mask.png, a folder/ (one PNG per mask + overlay.png), or a .json file")
    p.add_argument("--format", default="png", choices=FORMATS, help="png masks/overlay, COCO RLE JSON, or polygon JSON")
    p.add_argument("--model", help="checkpoint directory (default: the shipped sam-scenes)")
    p.add_argument(
        "--points-per-side", type=Num(int, 1, 256), default=16, dest="points_per_side", help="--all: grid of N×N points"
    )
    p.add_argument(
        "--pred-iou-thresh",
        type=FRACTION,
        default=0.5,
        dest="pred_iou_thresh",
        help="--all: keep masks with predicted IoU ≥ this (SAM: 0.88 at 1024 px)",
    )
    p.add_argument(
        "--stability-thresh",
        type=FRACTION,
        default=0.8,
        dest="stability_thresh",
        help="--all: keep masks with stability score ≥ this (SAM: 0.95 at 1024 px)",
    )
    p.add_argument(
        "--min-area",
        type=NATURAL,
        default=0,
        dest="min_area",
        help="--all: fill holes and drop islands under this many pixels",
    )
    p.add_argument("--max-pixels", type=POSITIVE, default=MAX_PIXELS, dest="max_pixels", help="refuse larger images")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print masks' figures and timings as one JSON object")
    p.set_defaults(func=cmd_segment)


__all__ = ["add_segment"]
