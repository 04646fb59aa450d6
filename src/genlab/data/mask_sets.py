"""The generated mask sets: images with exact instance masks, each scene a pure function of (seed, index, options).

Sets (``--data``):
    shapes   genlab's procedural scenes (:mod:`genlab.data.shapes`): up to ``max_objects`` shapes, some with a
             part inside, so a click on a part is ambiguous between the part and the whole. Targets: every whole
             object, every part, and the background. An endless stream: scene ``i`` is a pure function of (seed, i).
    blobs    a second generator that ``shapes`` training never sees: ellipses, wobbly blobs, irregular polygons
             and rings (objects with a hole), in any colour, on smooth colour fields, some with a blob inside.
    scenes   the data engine (:mod:`genlab.data.engine`): polygons, ellipses, stars, Fourier blobs, bars, strokes
             and digits with flat, gradient, noise or photo-texture fills, overlapping (masks keep what is
             visible), some with a part, on every kind of background; shadows, blur, noise, JPEG artefacts.
    scenes-heldout   the engine's held-out kinds (rings, letters, crescents): evaluation only.
    photos   objects of every kind pasted onto the held-out photos (astronaut, china, flower): evaluation only.
    A,B      a mixture of generated sets, taken in turn (``scenes,shapes``: scene 2i of the stream is scene i of
             ``scenes``, scene 2i + 1 scene i of ``shapes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

GENERATED = ("shapes", "blobs", "scenes", "scenes-heldout", "photos")
_SUPERSAMPLE = 4


@dataclass
class MaskSample:
    """One image and its target masks: ``image`` S×S×3 float32 in [0, 1], ``masks`` M×S×S bool, ``roles`` one of
    "object", "part" or "background" per mask."""

    image: np.ndarray
    masks: np.ndarray
    roles: tuple[str, ...]

    def targets(self, *, background: bool = True) -> np.ndarray:
        keep = [i for i, r in enumerate(self.roles) if background or r != "background"]
        return self.masks[keep]


def _with_background(image: np.ndarray, masks: list[np.ndarray], roles: list[str]) -> MaskSample:
    objects = [m for m, r in zip(masks, roles, strict=True) if r == "object"]
    background = ~np.any(objects, axis=0) if objects else np.ones(image.shape[:2], bool)
    return MaskSample(image.astype(np.float32), np.stack([*masks, background]), (*roles, "background"))


def shapes_sample(seed: int, index: int, *, size: int, max_objects: int = 4, part_prob: float = 0.5) -> MaskSample:
    """Scene ``index`` of the ``shapes`` stream ``seed``: objects, their parts, and the background."""
    from genlab.data.shapes import make_scene

    scene = make_scene(seed, index, size=size, max_objects=max_objects, part_prob=part_prob)
    masks, roles = [], []
    for obj in scene.objects:
        masks.append(obj.mask)
        roles.append("object")
        if obj.part is not None and obj.part.mask.any():
            masks.append(obj.part.mask)
            roles.append("part")
    return _with_background(scene.image, masks, roles)


# --- the second generator --------------------------------------------------------------------------------------


def _blob_outline(rng: np.random.Generator, cx: float, cy: float, r: float, kind: str) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    if kind == "ellipse":
        a, b, rot = r, r * rng.uniform(0.45, 1.0), rng.uniform(0, np.pi)
        x, y = a * np.cos(t), b * np.sin(t)
        x, y = x * math.cos(rot) - y * math.sin(rot), x * math.sin(rot) + y * math.cos(rot)
    elif kind == "polygon":
        n = int(rng.integers(5, 9))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * rng.uniform(0.6, 1.0, n)
        x, y = rad * np.cos(t), rad * np.sin(t)
    else:  # a wobbly blob: r(θ) = r (1 + Σ a_k cos(kθ + φ_k)), k = 2 … 4
        rad = np.ones_like(t)
        for k in (2, 3, 4):
            rad += rng.uniform(0.05, 0.18) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
        rad = r * rad / rad.max()
        x, y = rad * np.cos(t), rad * np.sin(t)
    return list(zip((cx + x).tolist(), (cy + y).tolist(), strict=True))


def _coverage(outlines: list[tuple[list[tuple[float, float]], int]], size: int) -> np.ndarray:
    """Polygons drawn in order with fill 255 (add) or 0 (cut), supersampled: the covered fraction per pixel."""
    big = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    for poly, fill in outlines:
        draw.polygon([(x * _SUPERSAMPLE, y * _SUPERSAMPLE) for x, y in poly], fill=fill)
    return np.asarray(big.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


def _colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.35, 1.0), rng.uniform(0.35, 1.0)), np.float32)


def blobs_sample(seed: int, index: int, *, size: int, max_objects: int = 4, part_prob: float = 0.4) -> MaskSample:
    """Scene ``index`` of the ``blobs`` stream: 1 … ``max_objects`` non-overlapping blobs, ellipses, polygons and
    rings (a hole shows the background) in random colours on a smooth colour field; some hold a smaller blob."""
    rng = np.random.default_rng([seed, index, 7919])
    coarse = rng.uniform(0, 1, (3, 3, 3)).astype(np.float32)
    field = np.stack(
        [np.asarray(Image.fromarray(coarse[..., c]).resize((size, size), Image.BICUBIC)) for c in range(3)]
    )
    image = np.clip(0.15 + 0.7 * field.transpose(1, 2, 0), 0, 1)
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)
    taken = np.zeros((size, size), bool)
    masks, roles = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(12):
            r = size * rng.uniform(0.1, 0.24)
            cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
            kind = str(rng.choice(["ellipse", "blob", "polygon", "ring"]))
            outer = _blob_outline(rng, cx, cy, r, "ellipse" if kind == "ring" else kind)
            shapes = [(outer, 255)]
            if kind == "ring":
                shapes.append((_blob_outline(rng, cx, cy, r * rng.uniform(0.35, 0.55), "ellipse"), 0))
            cover = _coverage(shapes, size)
            if not (cover > 0)[taken].any():
                break
        else:
            continue
        taken |= cover > 0
        colour = _colour(rng)
        image = image * (1 - cover[..., None]) + colour * cover[..., None]
        mask = cover >= 0.5
        part = None
        if kind != "ring" and rng.random() < part_prob:
            p_cover = _coverage([(_blob_outline(rng, cx, cy, 0.45 * r, "blob"), 255)], size)
            image = image * (1 - p_cover[..., None]) + _colour(rng) * p_cover[..., None]
            part = (p_cover >= 0.5) & mask
        if mask.any():
            masks.append(mask)
            roles.append("object")
            if part is not None and part.any():
                masks.append(part)
                roles.append("part")
    if not masks:  # every placement collided (very rare): an empty scene is still a scene
        return MaskSample(image.astype(np.float32), np.ones((1, size, size), bool), ("background",))
    return _with_background(image, masks, roles)


def engine_sample(name: str, seed: int, index: int, *, size: int, max_objects: int = 5,
                  part_prob: float = 0.3) -> MaskSample:  # fmt: skip
    """Scene ``index`` of one of the data engine's sets (``scenes``, ``scenes-heldout``, ``photos``)."""
    from genlab.data import engine

    options = {
        "scenes": {},
        "scenes-heldout": {"kinds": engine.HELD_OUT_KINDS},
        "photos": {"kinds": engine.TRAIN_KINDS + engine.HELD_OUT_KINDS, "photos": engine.HELD_OUT_PHOTOS,
                   "photo_background": 1.0},
    }[name]  # fmt: skip
    image, masks, roles = engine.engine_scene(seed, index, size=size, max_objects=max_objects, part_prob=part_prob,
                                              **options)  # fmt: skip
    if not masks:  # every object was too small or hidden (rare): the background alone is still a scene
        return MaskSample(image, np.ones((1, size, size), bool), ("background",))
    return _with_background(image, masks, roles)


def generated_sample(name: str, seed: int, index: int, *, size: int, **options: float) -> MaskSample:
    """Scene ``index`` of stream ``seed`` of the generated set ``name``."""
    if name == "shapes":
        return shapes_sample(seed, index, size=size, **options)
    if name == "blobs":
        return blobs_sample(seed, index, size=size, **options)
    return engine_sample(name, seed, index, size=size, **options)
