"""The ``genlab demo`` section for promptable segmentation: the whole and the part from one click with their
predicted IoU, refinement with a second click, boxes, and "segment everything" — on a held-out ``shapes`` scene
and on a scene of the ``blobs`` generator the model never trained on."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genlab.data.images import write_image
from genlab.data.mask_sets import blobs_sample, shapes_sample
from genlab.data.masks import center_click
from genlab.segment.formats import draw_prompts, overlay

if TYPE_CHECKING:
    from genlab.segment.predictor import SegmentPredictor

SCALE = 4  # 64-pixel scenes are shown 4× larger (nearest neighbour)
DEMO_STREAM = 4242  # a shapes stream that training (seeds 0 and 1) never drew


MIN_PART = 60  # pixels: a part big enough to see beside the click's marker
MIN_IOU = 0.95  # the whole and the part the panel shows must each match their ground truth at least this well


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def find_scene(predictor: SegmentPredictor, seed: int) -> dict[str, Any]:
    """The first scene of the demo stream with two or more objects, one holding a part, where one click on the part
    gets, among the three masks, the whole object and the part, each at IoU ≥ MIN_IOU against the ground truth.
    Returns the scene, the object's and part's indices, the click, the masks, their predicted IoU, their logits,
    which output is the whole, which the part, and their IoU against the ground truth."""
    size = predictor.side
    for index in range(1000):
        s = shapes_sample(DEMO_STREAM + seed, index, size=size)
        if s.roles.count("object") < 2 or "part" not in s.roles or s.masks[s.roles.index("part")].sum() < MIN_PART:
            continue
        part = s.roles.index("part")
        obj = part - 1  # a part directly follows its object
        predictor.set_image(s.image)
        (x, y), _ = center_click(None, s.masks[part])
        click = np.array([[x - 0.5, y - 0.5]])
        masks, scores, logits = predictor.predict(click, [1], multimask=True)
        fits = [[_iou(m, s.masks[t]) for m in masks] for t in (obj, part)]
        whole, piece = (int(np.argmax(f)) for f in fits)
        if whole != piece and min(fits[0][whole], fits[1][piece]) >= MIN_IOU:
            found = {"scene": s, "index": index, "object": obj, "part": part, "click": click, "masks": masks}
            found |= {"scores": scores, "logits": logits, "whole": whole, "piece": piece}
            return found | {"gt_iou": (fits[0][whole], fits[1][piece])}
    raise RuntimeError("no scene where the model finds the whole and the part")  # pragma: no cover


def _panel(out_dir: Path, name: str, image: np.ndarray, masks: list[np.ndarray], **prompts: object) -> str:
    shown = overlay(image, masks) if masks else image
    shown = draw_prompts(shown, scale=SCALE, **prompts)  # type: ignore[arg-type]
    write_image(out_dir / name, shown)
    return f"<img class='px' src='{name}' alt='{name}'>"


def segment_section(out_dir: Path, seed: int) -> str:
    from genlab.segment.automatic import AutomaticMaskGenerator
    from genlab.segment.predictor import SegmentPredictor

    predictor = SegmentPredictor.load()
    size = predictor.side
    found = find_scene(predictor, seed)  # it has run the encoder and the decoder: the timings below are warm
    scene, obj, part, click = found["scene"], found["object"], found["part"], found["click"]
    start = time.perf_counter()
    predictor.set_image(scene.image)
    encoder_ms = 1000 * (time.perf_counter() - start)
    start = time.perf_counter()
    masks, scores, logits = predictor.predict(click, [1], multimask=True)
    decoder_ms = 1000 * (time.perf_counter() - start)
    whole, piece = found["whole"], found["piece"]
    three = "".join(
        f"<td>{_panel(out_dir, f'seg_click_{name}.png', scene.image, [masks[i]], points=click)}"
        f"<br>{name}: predicted IoU {scores[i]:.2f} (IoU with the true {name}: {gt:.2f})</td>"
        for name, i, gt in (("whole", whole, found["gt_iou"][0]), ("part", piece, found["gt_iou"][1]))
    )
    (third,) = {0, 1, 2} - {whole, piece}
    failure = (
        f"<td>{_panel(out_dir, 'seg_click_third.png', scene.image, [masks[third]], points=click)}</td><td>"
        f"The third output: predicted IoU {scores[third]:.2f}. Its training scenes have two levels (objects and "
        "their parts) besides the background, so this model has no subpart to offer: its third mask token learned "
        "the background, and its low predicted IoU says it is the wrong answer to this click.</td>"
    )
    # a second, foreground click on the object's body (outside its part) asks for the whole object
    body = scene.masks[obj] & ~scene.masks[part]
    (bx, by), _ = center_click(None, body)
    two = np.array([click[0], [bx - 0.5, by - 0.5]])
    refined, refined_score, _ = predictor.predict(two, [1, 1], mask_input=logits[scores.argmax()], multimask=False)
    refine = _panel(out_dir, "seg_two_clicks.png", scene.image, [refined[0]], points=two, labels=[1, 1])

    others = [i for i, r in enumerate(scene.roles) if r == "object" and i != obj]
    ys, xs = np.nonzero(scene.masks[others[0]])
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    box_mask, box_score, _ = predictor.predict(box=box, multimask=False)
    boxed = _panel(out_dir, "seg_box.png", scene.image, [box_mask[0]], boxes=box)

    everything = AutomaticMaskGenerator(predictor)
    blobs = blobs_sample(seed, 3, size=size)
    blob_records = everything.generate(blobs.image)  # first: it warms segment-everything up for the timed run
    blob_auto = _panel(out_dir, "seg_everything_blobs.png", blobs.image, [r["segmentation"] for r in blob_records])
    start = time.perf_counter()
    records = everything.generate(scene.image)
    auto_s = time.perf_counter() - start
    auto = _panel(out_dir, "seg_everything.png", scene.image, [r["segmentation"] for r in records])
    photo = _photo_panel(out_dir, predictor, seed)
    c = predictor.model.config
    return (
        "<h2>Segmentation: Segment-Anything-style promptable masks</h2>"
        f"<p>A SAM-shaped model ({predictor.model.num_params() / 1e6:.2f} M parameters: a {c.encoder_depth}-block "
        f"hybrid ViT encoder, a two-way transformer decoder, a mask-quality head) trained from scratch by genlab on "
        f"{size}×{size} drawn shapes and the data engine's scenes (objects on flat, textured and photo backgrounds). "
        f"The image is encoded once ({encoder_ms:.1f} ms here, warm); each prompt then takes the decoder "
        f"{decoder_ms:.1f} ms (warm). Shown {SCALE}× larger. Try: "
        f"<code>genlab segment photo.png --point 120,80 --multimask --out masks/</code></p>"
        "<h3>One click on a part is ambiguous: the whole object and the part, two of its three masks</h3>"
        f"<p>Scene {found['index']} of the held-out stream {DEMO_STREAM + seed}: the first with two objects, one "
        f"holding a part of {MIN_PART} pixels or more, where both masks match the truth at IoU ≥ {MIN_IOU}.</p>"
        f"<table><tr>{three}</tr></table>"
        f"<h4>Failure case: no subpart</h4><table><tr>{failure}</tr></table>"
        f"<h3>Refinement and boxes</h3><table><tr><td>{refine}<br>a second foreground click on the body, "
        f"with the first answer fed back: predicted IoU {refined_score[0]:.2f}</td>"
        f"<td>{boxed}<br>a box: predicted IoU {box_score[0]:.2f}</td></tr></table>"
        f"<h3>Segment everything: a {everything.points_per_side}×{everything.points_per_side} grid of clicks, "
        f"filtered by predicted IoU and stability, NMS ({auto_s:.2f} s, warm)</h3>"
        f"<table><tr><td>{auto}<br>{len(records)} masks (held-out shapes)</td>"
        f"<td>{blob_auto}<br>{len(blob_records)} masks ({html.escape('blobs')}: a generator never trained on)</td>"
        "</tr></table>"
        "<h3>On photos: objects pasted onto a photo never seen in training (the data engine's held-out set)</h3>"
        "<p>The same model; one click on each object, the mask a user gets, and its IoU against the truth.</p>"
        f"{photo}"
    )


def _photo_panel(out_dir: Path, predictor: SegmentPredictor, seed: int) -> str:
    """One click on each of the first objects of a ``photos`` scene (held-out photos, pasted objects): the mask a
    user gets, with its IoU against the truth."""
    from genlab.data.mask_sets import engine_sample
    from genlab.segment.predictor import best_mask

    scene = engine_sample("photos", DEMO_STREAM + seed, 0, size=predictor.side)
    predictor.set_image(scene.image)
    cells = []
    for k in [i for i, r in enumerate(scene.roles) if r == "object"][:3]:
        (x, y), _ = center_click(None, scene.masks[k])
        click = np.array([[x - 0.5, y - 0.5]])
        masks, scores, _ = predictor.predict(click, [1], multimask=True)
        mask, score, _ = best_mask(masks, scores, click, [1])
        panel = _panel(out_dir, f"seg_photo_{k}.png", scene.image, [mask], points=click)
        cells.append(f"<td>{panel}<br>predicted IoU {score:.2f}, true IoU {_iou(mask, scene.masks[k]):.2f}</td>")
    return f"<table><tr>{''.join(cells)}</tr></table>"
