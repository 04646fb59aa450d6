"""The segmentation data engine: diverse synthetic scenes with exact instance masks (SAM's "data engine" idea at
the scale of a laptop: where SAM annotated 11 M photos, genlab draws its scenes).

A scene is a background, then 1 … ``max_objects`` objects drawn one over another — later objects occlude earlier
ones, and every mask keeps only what is visible — each object one of the *kinds* below, some with a *part* inside
(a smaller object of another fill, so a click on it is ambiguous between the part and the whole). Fills and
backgrounds: flat colour, a linear gradient, a smooth noise field, or a **texture cropped from a bundled photo**
(scikit-image's and scikit-learn's sample photos) with colour jitter; a photo crop as the whole background is the
copy-paste setting (objects pasted, with their masks, onto a photo). Effects: drop shadows, blur, sensor noise and
JPEG artefacts. Every scene is a pure function of (seed, index, options).

Kinds used for training (:data:`TRAIN_KINDS`): regular and irregular polygons, ellipses, stars, Fourier-boundary
blobs, thick bars, strokes (thick polylines), handwritten digits (scikit-learn's digits, upscaled), *frames* (a
polygon, star or blob with a polygon-shaped hole), thick circular *arcs*, and *glyphs* (printed digits and symbols
such as ``#&@%`` drawn from a font; no letters).
**Held out** (:data:`HELD_OUT_KINDS`, evaluation only): rings (an object with a hole), letters drawn from a font,
and crescents (a disc with a bite out of it). Photos used for training textures (:data:`TRAIN_PHOTOS`) and the ones
held out for evaluation (:data:`HELD_OUT_PHOTOS`: the astronaut, the Chinese temple, the flower) never mix.

Sets (``--data``, through :mod:`genlab.data.masks`): ``scenes`` (training kinds on every kind of background),
``scenes-heldout`` (held-out kinds, same backgrounds), ``photos`` (objects of every kind pasted onto the held-out
photos).
"""

from __future__ import annotations

import colorsys
import functools
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

TRAIN_KINDS = ("polygon", "ellipse", "star", "blob", "bar", "stroke", "digit", "frame", "arc", "glyph")
HELD_OUT_KINDS = ("ring", "letter", "crescent")
TRAIN_PHOTOS = ("brick", "grass", "gravel", "coffee", "chelsea", "rocket", "camera", "coins", "horse", "moon")
HELD_OUT_PHOTOS = ("astronaut", "china", "flower")
FILLS = ("flat", "gradient", "noise", "texture")
SUPERSAMPLE = 4
MIN_PIXELS = 8  # a mask smaller than this (after occlusion) is dropped
MIN_VISIBLE = 0.3  # an object less than this fraction visible is dropped


@functools.cache
def _photo(name: str) -> np.ndarray:
    from genlab.data.images import bundled_image

    img = bundled_image(name)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]


@functools.cache
def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.float32) / 16.0


def _colour(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0)), np.float32)


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    planes = [np.asarray(Image.fromarray(arr[..., c]).resize((size, size), Image.BILINEAR)) for c in range(3)]
    return np.stack(planes, 2)


def _fill(kind: str, size: int, rng: np.random.Generator, photos: tuple[str, ...]) -> np.ndarray:
    """A ``size×size×3`` field in [0, 1] of the given kind."""
    if kind == "flat":
        return np.broadcast_to(_colour(rng), (size, size, 3)).copy()
    if kind == "gradient":
        a, b = _colour(rng), _colour(rng)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        theta = rng.uniform(0, 2 * math.pi)
        t = np.clip((xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta) + 0.5, 0, 1)[..., None]
        return a * (1 - t) + b * t
    if kind == "noise":
        cells = int(rng.integers(2, 7))
        coarse = rng.uniform(0, 1, (cells, cells, 3)).astype(np.float32)
        return np.clip(_resize(coarse * rng.uniform(0.4, 1.0) + rng.uniform(0, 0.4), size), 0, 1)
    photo = _photo(str(rng.choice(photos)))
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.15, 0.8))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = _resize(photo[y0 : y0 + side, x0 : x0 + side], size)
    crop = crop[..., rng.permutation(3)] if rng.random() < 0.3 else crop  # colour jitter
    return np.clip((crop - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15, 3), 0, 1).astype(np.float32)


def _ring(cx: float, cy: float, rx: float, ry: float, rot: float, n: int = 64) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return list(zip(cx + x * c - y * s, cy + x * s + y * c, strict=True))


def _shape(kind: str, rng: np.random.Generator, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """The covered fraction of each pixel (``size×size`` float) of one object of ``kind``, centre (cx, cy),
    radius about ``r``."""
    s = SUPERSAMPLE
    canvas = Image.new("L", (size * s, size * s), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = cx * s, cy * s, r * s
    rot = rng.uniform(0, 2 * math.pi)
    if kind == "polygon":
        n = int(rng.integers(3, 9))
        regular = rng.random() < 0.5
        t = rot + (np.arange(n) * 2 * math.pi / n if regular else np.sort(rng.uniform(0, 2 * math.pi, n)))
        rad = r if regular else r * rng.uniform(0.55, 1.0, n)
        draw.polygon(list(zip(cx + rad * np.cos(t), cy + rad * np.sin(t), strict=True)), fill=255)
    elif kind in ("ellipse", "ring", "crescent"):
        ry = r * rng.uniform(0.5, 1.0)
        draw.polygon(_ring(cx, cy, r, ry, rot), fill=255)
        if kind == "ring":
            k = rng.uniform(0.4, 0.65)
            draw.polygon(_ring(cx, cy, r * k, ry * k, rot), fill=0)
        elif kind == "crescent":
            off = r * rng.uniform(0.45, 0.7)
            draw.polygon(_ring(cx + off * math.cos(rot), cy + off * math.sin(rot), r * 0.85, ry * 0.85, rot), fill=0)
    elif kind == "star":
        n = int(rng.integers(4, 8))
        t = rot + np.arange(2 * n) * math.pi / n
        rad = np.where(np.arange(2 * n) % 2 == 0, r, r * rng.uniform(0.35, 0.6))
        draw.polygon(list(zip(cx + rad * np.cos(t), cy + rad * np.sin(t), strict=True)), fill=255)
    elif kind == "blob":  # r(θ) = r (1 + Σ a_k cos(kθ + φ_k)), a Fourier boundary
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        rad = np.ones_like(t)
        for k in range(2, 6):
            rad += rng.uniform(0.0, 0.25 / (k - 1)) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
        rad = r * rad / rad.max()
        draw.polygon(list(zip(cx + rad * np.cos(t), cy + rad * np.sin(t), strict=True)), fill=255)
    elif kind == "bar":
        half_w = r * rng.uniform(0.12, 0.3)
        dx, dy = math.cos(rot), math.sin(rot)
        pts = [(cx + a * r * dx - b * half_w * dy, cy + a * r * dy + b * half_w * dx) for a, b in
               ((-1, -1), (1, -1), (1, 1), (-1, 1))]  # fmt: skip
        draw.polygon(pts, fill=255)
    elif kind == "stroke":
        n = int(rng.integers(3, 6))
        pts = [(cx + r * rng.uniform(-1, 1), cy + r * rng.uniform(-1, 1)) for _ in range(n)]
        draw.line(pts, fill=255, width=max(2, int(r * rng.uniform(0.15, 0.35))), joint="curve")
    elif kind == "digit":
        glyph = _digits()[int(rng.integers(len(_digits())))]
        side = max(2, int(2 * r))
        big = np.asarray(Image.fromarray(glyph).resize((side, side), Image.BICUBIC)) > 0.35
        canvas.paste(Image.fromarray((big * 255).astype(np.uint8)), (int(cx - side / 2), int(cy - side / 2)))
    elif kind == "frame":  # an object with a hole: a polygon, star or blob outline minus a polygon
        outer = _shape(str(rng.choice(("polygon", "star", "blob"))), rng, cx, cy, r, size * s)  # at s× already
        canvas = Image.fromarray((outer * 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        n, k = int(rng.integers(3, 7)), rng.uniform(0.3, 0.55)
        t = rot + np.arange(n) * 2 * math.pi / n
        ox, oy = rng.uniform(-0.15, 0.15, 2) * r
        draw.polygon(list(zip(cx + ox + k * r * np.cos(t), cy + oy + k * r * np.sin(t), strict=True)), fill=0)
    elif kind == "arc":  # a thick circular arc, 90–300 degrees
        start = math.degrees(rot)
        box = (cx - r, cy - r, cx + r, cy + r)
        draw.arc(box, start, start + rng.uniform(90, 300), fill=255, width=max(2, int(r * rng.uniform(0.2, 0.45))))
    elif kind == "glyph":
        glyph = str(rng.choice(list("0123456789#&@%$?+*")))
        font = ImageFont.load_default(size=max(8, int(2.2 * r)))
        draw.text((cx, cy), glyph, fill=255, font=font, anchor="mm")
    elif kind == "letter":
        letter = chr(int(rng.choice([rng.integers(65, 91), rng.integers(97, 123)])))
        font = ImageFont.load_default(size=max(8, int(2.2 * r)))
        draw.text((cx, cy), letter, fill=255, font=font, anchor="mm")
    else:
        raise ValueError(kind)
    return np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


def engine_scene(
    seed: int,
    index: int,
    *,
    size: int,
    kinds: tuple[str, ...] = TRAIN_KINDS,
    photos: tuple[str, ...] = TRAIN_PHOTOS,
    photo_background: float = 0.3,
    max_objects: int = 5,
    part_prob: float = 0.3,
    effects: bool = True,
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Scene ``index`` of stream ``seed``: (image ``size×size×3`` in [0, 1], visible masks, their roles)."""
    rng = np.random.default_rng([seed, index, 60_221])
    background = "texture" if rng.random() < photo_background else str(rng.choice(FILLS[:3]))
    image = _fill(background, size, rng, photos)
    masks: list[np.ndarray] = []
    roles: list[str] = []
    areas: list[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = str(rng.choice(kinds))
        r = size * rng.uniform(0.08, 0.3)
        cx, cy = rng.uniform(0.6 * r, size - 0.6 * r), rng.uniform(0.6 * r, size - 0.6 * r)
        cover = _shape(kind, rng, cx, cy, r, size)
        if (cover >= 0.5).sum() < MIN_PIXELS:
            continue
        if effects and rng.random() < 0.25:  # a drop shadow under it
            shift = np.roll(cover, (int(rng.integers(1, 4)), int(rng.integers(1, 4))), (0, 1))
            shadow = ndimage.gaussian_filter(shift, 1.5)
            image = image * (1 - rng.uniform(0.3, 0.6) * shadow[..., None])
        layers = [(cover, "object")]
        if rng.random() < part_prob and kind not in ("stroke", "digit", "letter", "bar"):
            inner = _shape(str(rng.choice(("ellipse", "polygon", "blob", "star"))), rng, cx, cy, r * 0.45, size)
            layers.append((np.minimum(inner, cover), "part"))
        for layer, role in layers:
            fill = _fill(str(rng.choice(FILLS, p=(0.45, 0.2, 0.15, 0.2))), size, rng, photos)
            image = image * (1 - layer[..., None]) + fill * layer[..., None]
            mask = layer >= 0.5
            if role == "object":
                for m in masks:  # what this object covers is no longer visible in earlier ones
                    m &= ~mask
            masks.append(mask)
            roles.append(role)
            areas.append(int(mask.sum()))
    # what stays visible of each mask (a part whose object is mostly hidden is still a visible region of its own)
    keep = [i for i, m in enumerate(masks) if m.sum() >= max(MIN_PIXELS, MIN_VISIBLE * areas[i])]
    image = image.astype(np.float32)
    if effects:
        image = _effects(image, rng)
    return image, [masks[i] for i in keep], [roles[i] for i in keep]


def _effects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, sensor noise and JPEG artefacts, each sometimes."""
    if rng.random() < 0.2:
        pil = Image.fromarray((image * 255).round().astype(np.uint8))
        image = np.asarray(pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0))), np.float32) / 255
    if rng.random() < 0.2:
        image = np.clip(image + rng.normal(0, rng.uniform(0.01, 0.05), image.shape), 0, 1)
    if rng.random() < 0.25:
        buf = io.BytesIO()
        Image.fromarray((image * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(30, 80)))
        image = np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255
    return image.astype(np.float32)
