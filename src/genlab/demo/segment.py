"""The ``genlab demo`` section for promptable segmentation: clicks, boxes, 3 masks with their predicted IoU,
refinement with a second click, and "segment everything" — on a held-out ``shapes`` scene and on a scene of the
``blobs`` generator the model never trained on."""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np

from genlab.data.images import write_image
from genlab.data.masks import MaskSample, blobs_sample, center_click, shapes_sample
from genlab.segment.formats import draw_prompts, overlay

SCALE = 4  # 64-pixel scenes are shown 4× larger (nearest neighbour)
DEMO_STREAM = 4242  # a shapes stream that training (seeds 0 and 1) never drew


def _scene_with_part(seed: int, size: int) -> tuple[MaskSample, int, int]:
    """The first scene of the demo stream with two or more objects, one holding a part → (scene, object, part)."""
    for index in range(1000):
        s = shapes_sample(DEMO_STREAM + seed, index, size=size)
        if s.roles.count("object") >= 2 and "part" in s.roles:
            part = s.roles.index("part")
            return s, part - 1, part  # a part directly follows its object
    raise RuntimeError("no scene with a part")  # pragma: no cover - the stream has many


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
    scene, obj, part = _scene_with_part(seed, size)
    start = time.perf_counter()
    predictor.set_image(scene.image)
    encoder_ms = 1000 * (time.perf_counter() - start)

    (x, y), _ = center_click(None, scene.masks[part])
    click = np.array([[x - 0.5, y - 0.5]])
    start = time.perf_counter()
    masks, scores, logits = predictor.predict(click, [1], multimask=True)
    decoder_ms = 1000 * (time.perf_counter() - start)
    three = "".join(
        f"<td>{_panel(out_dir, f'seg_click_{i}.png', scene.image, [masks[i]], points=click)}"
        f"<br>predicted IoU {scores[i]:.2f}</td>"
        for i in range(3)
    )
    # a second, foreground click on the object's body (outside its part) asks for the whole object
    body = scene.masks[obj] & ~scene.masks[part]
    (bx, by), _ = center_click(None, body)
    two = np.array([[x - 0.5, y - 0.5], [bx - 0.5, by - 0.5]])
    refined, refined_score, _ = predictor.predict(two, [1, 1], mask_input=logits[scores.argmax()], multimask=False)
    refine = _panel(out_dir, "seg_two_clicks.png", scene.image, [refined[0]], points=two, labels=[1, 1])

    others = [i for i, r in enumerate(scene.roles) if r == "object" and i != obj]
    ys, xs = np.nonzero(scene.masks[others[0]])
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    box_mask, box_score, _ = predictor.predict(box=box, multimask=False)
    boxed = _panel(out_dir, "seg_box.png", scene.image, [box_mask[0]], boxes=box)

    everything = AutomaticMaskGenerator(predictor)
    start = time.perf_counter()
    records = everything.generate(scene.image)
    auto_s = time.perf_counter() - start
    auto = _panel(out_dir, "seg_everything.png", scene.image, [r["segmentation"] for r in records])
    blobs = blobs_sample(seed, 3, size=size)
    blob_records = everything.generate(blobs.image)
    blob_auto = _panel(out_dir, "seg_everything_blobs.png", blobs.image, [r["segmentation"] for r in blob_records])
    c = predictor.model.config
    return (
        "<h2>Segmentation: Segment-Anything-style promptable masks</h2>"
        f"<p>A SAM-shaped model ({predictor.model.num_params() / 1e6:.2f} M parameters: a {c.encoder_depth}-block "
        f"hybrid ViT encoder, a two-way transformer decoder) trained from scratch by genlab on {size}×{size} drawn "
        f"shapes. The image is encoded once ({encoder_ms:.1f} ms here); each prompt then takes the decoder "
        f"{decoder_ms:.1f} ms. Shown {SCALE}× larger. Try: "
        f"<code>genlab segment photo.png --point 120,80 --multimask --out masks/</code></p>"
        "<h3>One click on a part is ambiguous: 3 masks (whole, part, subpart) with predicted IoU</h3>"
        f"<table><tr>{three}</tr></table>"
        f"<h3>Refinement and boxes</h3><table><tr><td>{refine}<br>a second foreground click on the body, "
        f"with the first answer fed back: predicted IoU {refined_score[0]:.2f}</td>"
        f"<td>{boxed}<br>a box: predicted IoU {box_score[0]:.2f}</td></tr></table>"
        f"<h3>Segment everything: a {everything.points_per_side}×{everything.points_per_side} grid of clicks, "
        f"filtered by predicted IoU and stability, NMS ({auto_s:.2f} s)</h3>"
        f"<table><tr><td>{auto}<br>{len(records)} masks (held-out shapes)</td>"
        f"<td>{blob_auto}<br>{len(blob_records)} masks ({html.escape('blobs')}: a generator never trained on)</td>"
        "</tr></table>"
    )
