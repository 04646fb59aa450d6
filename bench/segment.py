"""Benchmark: promptable segmentation with the shipped SAM-style model (or --model DIR).

    OMP_WAIT_POLICY=PASSIVE python bench/segment.py            # ~5 minutes on 2 CPU cores; one JSON object on stdout
    python bench/segment.py --scenes 60 --no-timing            # a quick look (timing targets: null, not measured)

Accuracy (mIoU over every object and part mask; genlab.eval.segment's interactive protocol): 1, 3 and 5 simulated
clicks (each click at the point deepest inside the current error; the first answer is 3 masks — ``oracle`` scores
the best of them, ``chosen`` the one with the highest predicted IoU; ``_any`` the same against the closest object or
part the click lies in, as a click in a part is also a click in its whole; later rounds the single mask, with the
previous logits fed back) and a tight box (oracle, chosen, and the single-mask output); ``click_inside``: the share of
chosen one-click answers that contain their click; ``box_inside``: the share of a box's answer inside the box.
Test sets, each from a stream that neither training nor its monitoring drew (seed 100): ``shapes``; ``blobs`` —
ellipses, wobbly blobs, irregular polygons and rings on smooth colour fields; the data engine's ``scenes`` (its
training kinds), ``scenes-heldout`` (rings, letters, crescents: kinds the engine never trains on) and ``photos``
(objects pasted onto the held-out photos: astronaut, china, flower).
Classic baselines on the same prompts, for every set (genlab.segment.baselines): OpenCV flood fill from each click
and a SLIC superpixel from each click (positive regions united, negative ones removed), their settings tuned on the
engine's *training* stream (seed 0, never a test set); GrabCut from the box.
A box around the only object of a scene (medium or large, stream 102): mean IoU and the share under 0.9, for one
decoder pass and with the answer fed back once (``predict(..., refine=1)``). A far negative click (30 lone squares,
stream 103): a click inside, then one on the farthest image corner; the answer should not change.
Automatic mode: the share of objects matched by some mask at IoU ≥ 0.8, and masks per image.
Speed: encoder ms per image and decoder ms per prompt (one prompt per call, as a click in a UI; and 64 prompts in
one batched call), medians, at the torch thread count given (default: all cores); on a GPU too where one exists.
Targets: each ``true`` (met), ``false`` (missed) or ``null`` (not measured in this run, e.g. the decoder's speed
under ``--no-timing``); a figure that was not measured never counts as met.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import genlab
from genlab.data.mask_sets import blobs_sample, engine_sample, shapes_sample
from genlab.eval.segment import evaluate_method, evaluate_prompts, iou
from genlab.segment.automatic import AutomaticMaskGenerator
from genlab.segment.baselines import Superpixels, flood_fill, grabcut

HELD_OUT_STREAM = 100  # training draws stream 0 and monitors stream 1
TUNING_SCENES = 60  # of the engine's training stream, to choose the baselines' settings


def tune_baselines(size: int) -> dict:
    """The flood fill's tolerance and mode and SLIC's segments and compactness with the best one-click mIoU on the
    engine's training stream."""
    samples = [engine_sample("scenes", 0, i, size=size) for i in range(TUNING_SCENES)]
    flood = max(((t, m) for t in (4, 8, 12, 16, 24, 32, 48) for m in ("fixed", "floating")),
                key=lambda tm: evaluate_method(samples, clicks=(1,), click=lambda i, p, lab: flood_fill(
                    samples[i].image, p, lab, tolerance=tm[0], mode=tm[1]))["miou_1click"])  # fmt: skip
    best_slic, best = None, -1.0
    for segments in (25, 50, 100, 200):
        for compactness in (5.0, 10.0, 20.0):
            cache = [Superpixels(s.image, segments=segments, compactness=compactness) for s in samples]
            pick = lambda i, p, lab, c=cache: c[i].region(p, lab)  # noqa: E731
            score = evaluate_method(samples, clicks=(1,), click=pick)["miou_1click"]
            if score > best:
                best_slic, best = (segments, compactness), score
    return {"flood_tolerance": flood[0], "flood_mode": flood[1], "slic_segments": best_slic[0],
            "slic_compactness": best_slic[1]}  # fmt: skip


def baselines(samples, settings: dict) -> dict:  # noqa: ANN001
    """Flood fill and SLIC from the clicks, GrabCut from the box, by genlab.eval.segment's protocol."""
    cache: dict = {}

    def superpixel(i: int, points: list, labels: list):  # noqa: ANN202
        if i not in cache:
            cache[i] = Superpixels(samples[i].image, segments=settings["slic_segments"],
                                   compactness=settings["slic_compactness"])  # fmt: skip
        return cache[i].region(points, labels)

    def rounded(d: dict) -> dict:
        return {k: round(v, 4) for k, v in d.items() if k != "masks"}

    return {
        "flood_fill": rounded(evaluate_method(samples, click=lambda i, p, lab: flood_fill(
            samples[i].image, p, lab, tolerance=settings["flood_tolerance"], mode=settings["flood_mode"]))),
        "slic": rounded(evaluate_method(samples, click=superpixel)),
        "grabcut": rounded(evaluate_method(samples, box=lambda i, b: grabcut(samples[i].image, b))),
    }  # fmt: skip


def accuracy(model, samples) -> dict:  # noqa: ANN001
    figures = evaluate_prompts(model, samples, clicks=(1, 3, 5), boxes=True, by_role=True)
    return {k: round(v, 4) for k, v in figures.items()}


def automatic(predictor, samples) -> dict:  # noqa: ANN001
    found = total = masks = 0
    start = time.perf_counter()
    for s in samples:
        records = AutomaticMaskGenerator(predictor).generate(s.image)
        masks += len(records)
        for m, role in zip(s.masks, s.roles, strict=True):
            if role == "object":
                total += 1
                found += max((iou(r["segmentation"], m) for r in records), default=0.0) >= 0.8
    return {
        "object_recall_at_iou_0.8": round(found / total, 4),
        "masks_per_image": round(masks / len(samples), 2),
        "seconds_per_image": round((time.perf_counter() - start) / len(samples), 3),
    }


def far_negative(predictor, size: int, count: int = 30) -> dict:  # noqa: ANN001
    """A click inside a lone square, then a negative click on the image corner farthest from it (what a user does
    who says "not this" on plain background): mean IoU of the three-mask answer at the output the first click's best
    mask came from (what the studio keeps), of the single mask, and of the single mask with the first answer fed
    back. A good answer changes nothing."""
    from genlab.data.shapes import make_scene

    kept, single, fed = [], [], []
    for index in range(count):
        s = make_scene(HELD_OUT_STREAM + 3, index, size=size, kinds=("square",), textured_prob=0.0)
        mask = s.objects[0].mask > 0.5
        ys, xs = np.nonzero(mask)
        inside = [float(xs.mean()), float(ys.mean())]
        corners = [(3, 3), (size - 4, 3), (3, size - 4), (size - 4, size - 4)]
        corner = max(corners, key=lambda c: (c[0] - inside[0]) ** 2 + (c[1] - inside[1]) ** 2)
        predictor.set_image(s.image)
        masks, _, logits = predictor.predict(points=[inside], labels=[1], multimask=True)
        best = int(np.argmax([iou(m, mask) for m in masks]))
        points, labels = [inside, list(corner)], [1, 0]
        kept.append(iou(predictor.predict(points=points, labels=labels, multimask=True)[0][best], mask))
        single.append(iou(predictor.predict(points=points, labels=labels, multimask=False)[0][0], mask))
        answer = predictor.predict(points=points, labels=labels, multimask=False, mask_input=logits[best])[0][0]
        fed.append(iou(answer, mask))
    mean = lambda v: round(float(np.mean(v)), 4)  # noqa: E731
    return {"squares": count, "miou_kept": mean(kept), "miou_single": mean(single), "miou_fed_back": mean(fed)}


def lone_objects(predictor, size: int, count: int = 300) -> dict:  # noqa: ANN001
    """A tight box around the only object of a scene (medium or large; the predictor tests' case): the single mask
    from one decoder pass, and with the answer fed back once (``refine=1``)."""
    from genlab.data.shapes import make_scene

    once, refined = [], []
    for index in range(count):
        s = make_scene(HELD_OUT_STREAM + 2, index, size=size, max_objects=1, part_prob=0.0)
        if s.objects[0].size == "small":
            continue
        mask = s.objects[0].mask
        ys, xs = np.nonzero(mask)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        predictor.set_image(s.image)
        once.append(iou(predictor.predict(box=box, multimask=False)[0][0], mask))
        refined.append(iou(predictor.predict(box=box, multimask=False, refine=1)[0][0], mask))
    return {
        "scenes": len(once),
        "miou_box_single": round(float(np.mean(once)), 4),
        "share_below_0.9": round(float(np.mean(np.array(once) < 0.9)), 4),
        "miou_box_refined": round(float(np.mean(refined)), 4),
        "share_below_0.9_refined": round(float(np.mean(np.array(refined) < 0.9)), 4),
    }


def median_ms(fn, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def speed(model, device: str, repeats: int) -> dict:  # noqa: ANN001
    model = model.to(device).eval()
    size = model.config.image_size
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    images = torch.rand(1, 3, size, size, device=device)
    with torch.no_grad():
        features = model.encode(images)

        def encode() -> None:
            model.encode(images)
            sync()

        def decode(n: int):  # noqa: ANN202
            coords = torch.rand(n, 2, 2, device=device) * size
            labels = torch.ones(n, 2, dtype=torch.long, device=device)
            mask_in = torch.zeros(n, 1, model.mask_size, model.mask_size, device=device)
            index = torch.zeros(n, dtype=torch.long, device=device)

            def run() -> None:
                logits, _ = model.decode(features, index, coords=coords, labels=labels, mask_input=mask_in)
                model.upsample(logits)
                sync()

            return run

        figures = {
            "encoder_ms_per_image": round(median_ms(encode, repeats), 3),
            "decoder_ms_per_prompt": round(median_ms(decode(1), repeats), 3),
            "decoder_ms_per_prompt_batched_64": round(median_ms(decode(64), repeats // 4 + 1) / 64, 3),
        }
        if device == "cpu":  # the two CPU targets: a decoder call on one thread, a 256×256 image encoded
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            figures["decoder_ms_per_prompt_1_thread"] = round(median_ms(decode(1), repeats), 3)
            torch.set_num_threads(threads)
            predictor = genlab.SegmentPredictor(model, device="cpu")
            photo = np.random.default_rng(0).uniform(0, 1, (256, 256, 3)).astype(np.float32)
            figures["set_image_ms_256x256"] = round(median_ms(lambda: predictor.set_image(photo), repeats // 4 + 1), 3)
        return figures


def target(value: float | None, met) -> bool | None:  # noqa: ANN001
    """Whether a figure meets its target: True, False, or None (JSON null) when it was not measured."""
    return None if value is None else bool(met(value))


def targets(result: dict) -> dict:
    """The targets, each met (true), missed (false) or not measured (null: e.g. the timings under --no-timing)."""
    held_out = result.get("shapes_held_out", {})
    kinds = result.get("scenes_heldout_kinds", {})
    sets = [v for k, v in result.items() if isinstance(v, dict) and "miou_1click" in v]
    classic = result.get("baselines", {}).get("scenes_heldout_kinds", {})
    best_click = max((v.get("miou_1click", 0.0) for v in classic.values()), default=None)
    gap = max((v["miou_1click_oracle"] - v["miou_1click"] for v in sets), default=None)
    gap_any = max((v["miou_1click_any_oracle"] - v["miou_1click_any"] for v in sets), default=None)
    return {
        # no worse on the shapes than sam-shapes, the first shipped segmenter (this benchmark on it, before it
        # retired: 1 click oracle 0.9055, box single 0.9619; docs/benchmarks.md)
        "shapes_1click_oracle_ge_0.9055": target(held_out.get("miou_1click_oracle"), lambda v: v >= 0.9055),
        "shapes_box_single_ge_0.9619": target(held_out.get("miou_box_single"), lambda v: v >= 0.9619),
        "heldout_kinds_1click_chosen_ge_0.80": target(kinds.get("miou_1click"), lambda v: v >= 0.80),
        "heldout_kinds_box_ge_0.90": target(kinds.get("miou_box"), lambda v: v >= 0.90),
        "heldout_kinds_1click_ge_best_classic": target(kinds.get("miou_1click"), lambda v: v >= (best_click or 0)),
        "heldout_kinds_box_ge_grabcut": target(kinds.get("miou_box"),
                                               lambda v: v >= classic.get("grabcut", {}).get("miou_box", 0)),
        "chosen_within_0.05_of_oracle_everywhere": target(gap, lambda v: v <= 0.05),
        # the same against any object or part the click lies in: the error of the choice alone, without the
        # part-or-whole ambiguity no single answer can resolve (genlab.eval.segment)
        "chosen_within_0.05_of_oracle_any_reading_everywhere": target(gap_any, lambda v: v <= 0.05),
        "click_inside_ge_0.99_everywhere": target(min((v["click_inside"] for v in sets), default=None),
                                                  lambda v: v >= 0.99),
        "decoder_1_thread_le_10ms": target(result.get("cpu", {}).get("decoder_ms_per_prompt_1_thread"),
                                           lambda v: v <= 10.0),
        "encoder_256_le_100ms": target(result.get("cpu", {}).get("set_image_ms_256x256"), lambda v: v <= 100.0),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint directory (default: the shipped sam-scenes)")
    parser.add_argument("--scenes", type=int, default=300, help="test images per set")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the CPU timings (0: all cores)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per speed figure")
    parser.add_argument(
        "--no-timing", action="store_true", help="skip the speed figures (their targets are reported as null)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = genlab.SegmentPredictor.load(args.model, device="cpu")
    model = predictor.model.float()
    size = model.config.image_size
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    say(f"model {args.model or 'sam-scenes (shipped)'}: {model.num_params() / 1e6:.2f} M parameters, {size}×{size}")
    shapes = [shapes_sample(HELD_OUT_STREAM, i, size=size, max_objects=4, part_prob=0.5) for i in range(args.scenes)]
    blobs = [blobs_sample(HELD_OUT_STREAM, i, size=size) for i in range(args.scenes)]
    one_object = [shapes_sample(HELD_OUT_STREAM + 1, i, size=size, max_objects=4, part_prob=0.0) for i in range(50)]
    say("accuracy on held-out shapes …")
    result: dict = {
        "model": str(args.model or "sam-scenes"),
        "parameters_M": round(model.num_params() / 1e6, 3),
        "image_size": size,
        "shapes_held_out": accuracy(model, shapes),
    }
    say("accuracy on blobs (never trained on) …")
    result["blobs_unseen"] = accuracy(model, blobs)
    engine_sets = {"scenes_held_out": "scenes", "scenes_heldout_kinds": "scenes-heldout", "photos": "photos"}
    tests = {"shapes_held_out": shapes, "blobs_unseen": blobs}
    for key, name in engine_sets.items():
        say(f"accuracy on the data engine's {name} …")
        tests[key] = [engine_sample(name, HELD_OUT_STREAM, i, size=size) for i in range(args.scenes)]
        result[key] = accuracy(model, tests[key])
    say("classic baselines (tuned on the engine's training stream) …")
    settings = tune_baselines(size)
    result["baselines"] = {"settings": settings} | {key: baselines(s, settings) for key, s in tests.items()}
    say("a box on a lone object …")
    result["lone_object_box"] = lone_objects(predictor, size)
    result["far_negative_click"] = far_negative(predictor, size)
    say("automatic masks …")
    result["automatic_shapes"] = automatic(predictor, one_object)
    result["automatic_blobs"] = automatic(predictor, blobs[:50])
    if not args.no_timing:
        say("speed …")
        result["cpu"] = speed(model, "cpu", args.repeats) | {"threads": torch.get_num_threads()}
        if torch.cuda.is_available():
            result["gpu"] = speed(model, "cuda", args.repeats) | {"name": torch.cuda.get_device_name()}
    result["targets"] = targets(result)
    result["machine"] = {
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if Path("/proc/cpuinfo").is_file():
        names = [
            ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln
        ]
        result["machine"]["cpu"] = f"{len(names)} × {names[0]}" if names else "unknown"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
