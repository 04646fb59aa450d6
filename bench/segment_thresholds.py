"""Benchmark: automatic mask generation ("segment everything") against its two filters, to choose their defaults.

    OMP_WAIT_POLICY=PASSIVE python bench/segment_thresholds.py                   # ~7 minutes on one thread
    python bench/segment_thresholds.py --model runs/seg --scenes 40               # another checkpoint, a quick look
    python bench/segment_thresholds.py --data scenes                              # the data engine's scenes

For each pair (predicted-IoU threshold, stability-score threshold) of a grid, ``AutomaticMaskGenerator`` runs on
held-out scenes of ``--data`` (default ``shapes``: up to 4 objects, half with a part; or any generated set, e.g.
``scenes``; streams that neither training, its monitoring nor
``bench/segment.py`` draws) and is scored against the scene's object and part masks: recall = the share of them
matched by some mask at IoU ≥ 0.8; precision = the share of the masks it returns that match some true mask (object,
part or the background) at IoU ≥ 0.8; F1 of the two; masks per image. One JSON object on stdout; the row with the
best F1 is repeated as ``best``.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import genlab
from genlab.data.mask_sets import GENERATED, generated_sample
from genlab.eval.segment import iou
from genlab.segment.automatic import AutomaticMaskGenerator

STREAMS = (107, 108)  # bench/segment.py draws 100 and 101; training 0, its monitoring 1


def score(predictor, samples, pred_iou: float, stability: float) -> dict:  # noqa: ANN001
    found = wanted = right = returned = 0
    generator = AutomaticMaskGenerator(predictor, pred_iou_thresh=pred_iou, stability_score_thresh=stability)
    for s in samples:
        records = generator.generate(s.image)
        returned += len(records)
        right += sum(max(iou(r["segmentation"], m) for m in s.masks) >= 0.8 for r in records)
        for m, role in zip(s.masks, s.roles, strict=True):
            if role != "background":
                wanted += 1
                found += max((iou(r["segmentation"], m) for r in records), default=0.0) >= 0.8
    recall, precision = found / wanted, right / max(returned, 1)
    return {
        "pred_iou_thresh": pred_iou,
        "stability_thresh": stability,
        "recall": round(recall, 4),
        "precision": round(precision, 4),
        "f1": round(2 * recall * precision / max(recall + precision, 1e-9), 4),
        "masks_per_image": round(returned / len(samples), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint directory (default: the shipped sam-scenes)")
    parser.add_argument("--scenes", type=int, default=80, help="scenes, split over two held-out streams")
    parser.add_argument("--data", default="shapes", choices=GENERATED, help="the generated set to score on")
    parser.add_argument("--pred-iou", default="0.3,0.4,0.5,0.6", help="predicted-IoU thresholds to try")
    parser.add_argument("--stability", default="0.7,0.8,0.9", help="stability-score thresholds to try")
    args = parser.parse_args()
    predictor = genlab.SegmentPredictor.load(args.model, device="cpu")
    size = predictor.model.config.image_size
    options = {"max_objects": 4, "part_prob": 0.5} if args.data == "shapes" else {}
    samples = [generated_sample(args.data, STREAMS[i % 2], i // 2, size=size, **options) for i in range(args.scenes)]
    defaults = AutomaticMaskGenerator(predictor)
    rows = []
    for a in (float(v) for v in args.pred_iou.split(",")):
        for b in (float(v) for v in args.stability.split(",")):
            rows.append(score(predictor, samples, a, b))
            print(json.dumps(rows[-1]), file=sys.stderr)
    result = {
        "model": str(args.model or "sam-scenes"),
        "data": args.data,
        "scenes": args.scenes,
        "defaults": {"pred_iou_thresh": defaults.pred_iou_thresh, "stability_thresh": defaults.stability_score_thresh},
        "rows": rows,
        "best": max(rows, key=lambda r: r["f1"]),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
