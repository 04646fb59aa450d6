"""``shapes``: a procedural dataset of coloured shapes with classes, captions and instance masks.

Every scene is a pure function of (seed, index, options): the same call draws the same image on any machine.
A scene holds up to ``max_objects`` shapes on a plain or textured background; each object has a kind (its class),
a colour, a size, a position on a 3×3 grid, an instance mask and optionally a *part* — a smaller shape of another
kind and colour drawn inside it — so a click on the part is ambiguous between the part and the whole object (the
whole/part ambiguity promptable segmentation must resolve). The caption names every object ("a small red circle at
the top left and a large blue square with a white star inside at the bottom right") and the background.

One record feeds three tasks: class-conditional generation (``label`` = the first object's kind), text-to-image
(``caption``), and segmentation (``objects[i].mask`` and ``objects[i].part.mask``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("circle", "square", "triangle", "star", "diamond", "cross")
COLORS = {
    "red": (214, 40, 40),
    "green": (46, 160, 67),
    "blue": (38, 84, 214),
    "yellow": (240, 200, 30),
    "purple": (142, 68, 173),
    "orange": (243, 128, 22),
    "white": (245, 245, 245),
}
OBJECT_COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = {"small": (0.20, 0.26), "medium": (0.32, 0.40), "large": (0.48, 0.58)}  # diameter / image side
ROWS, COLS = ("top", "middle", "bottom"), ("left", "center", "right")
BACKGROUNDS = ("plain", "striped", "checkered", "noisy", "gradient")
_BG_TONES = ((200, 200, 200), (120, 120, 120), (60, 60, 60), (225, 215, 190), (180, 200, 215))
_SUPERSAMPLE = 4


def position_name(row: int, col: int) -> str:
    """Grid cell → words: (0, 0) "top left", (1, 1) "center", (0, 1) "top", (1, 0) "left"."""
    if (row, col) == (1, 1):
        return "center"
    if row == 1:
        return COLS[col]
    if col == 1:
        return ROWS[row]
    return f"{ROWS[row]} {COLS[col]}"


#: the attributes a caption names, with their values (the heads of the attribute classifier)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "kind": KINDS,
    "color": OBJECT_COLORS,
    "size": tuple(SIZES),
    "position": tuple(position_name(r, c) for r in range(3) for c in range(3)),
}


@dataclass
class ShapeObject:
    kind: str
    color: str
    size: str
    position: str
    mask: np.ndarray  # H×W bool: the whole object, its part included
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive-exclusive pixel bounds of the mask)
    part: ShapeObject | None = None

    @property
    def label(self) -> int:
        return KINDS.index(self.kind)

    def phrase(self) -> str:
        inner = f" with {_a(self.part.color)} {self.part.kind} inside" if self.part else ""
        where = "in the center" if self.position == "center" else f"at the {self.position}"
        return f"a {self.size} {self.color} {self.kind}{inner} {where}"


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


@dataclass
class Scene:
    image: np.ndarray  # H×W×3 float32 in [0, 1]
    objects: list[ShapeObject]
    background: str
    caption: str = field(default="")

    @property
    def label(self) -> int:
        return self.objects[0].label


def _outline(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    """Polygon vertices of ``kind`` centred at (cx, cy) with circumradius r (None for a circle)."""

    def ring(n: int, radius: float, offset: float) -> list[tuple[float, float]]:
        return [
            (cx + radius * math.cos(offset + 2 * math.pi * i / n), cy + radius * math.sin(offset + 2 * math.pi * i / n))
            for i in range(n)
        ]

    if kind == "circle":
        return None
    if kind == "square":
        return ring(4, r, angle + math.pi / 4)
    if kind == "diamond":
        return ring(4, r, math.pi / 2)
    if kind == "triangle":
        return ring(3, r, -math.pi / 2 + angle)
    if kind == "star":
        outer, inner = ring(5, r, -math.pi / 2 + angle), ring(5, 0.45 * r, -math.pi / 2 + angle + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if kind == "cross":
        a = r * 0.36
        pts = [
            (a, r),
            (a, a),
            (r, a),
            (r, -a),
            (a, -a),
            (a, -r),
            (-a, -r),
            (-a, -a),
            (-r, -a),
            (-r, a),
            (-a, a),
            (-a, r),
        ]
        return [(cx + x, cy + y) for x, y in pts]
    raise ValueError(kind)


def _draw(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, fill) -> None:  # noqa: ANN001
    poly = _outline(kind, cx, cy, r, angle)
    if poly is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(poly, fill=fill)


def _background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    tone = np.array(_BG_TONES[rng.integers(len(_BG_TONES))], dtype=np.float32) / 255.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "plain":
        shade = np.zeros((size, size), np.float32)
    elif kind == "striped":
        period = rng.uniform(0.12, 0.25)
        shade = 0.12 * np.sign(np.sin(2 * math.pi * (xx + yy * rng.choice([-1, 1])) / period))
    elif kind == "checkered":
        cells = rng.integers(3, 7)
        shade = 0.1 * (((xx * cells).astype(int) + (yy * cells).astype(int)) % 2 * 2 - 1)
    elif kind == "noisy":
        coarse = rng.normal(0, 1, (6, 6)).astype(np.float32)
        up = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC))
        shade = 0.08 * up + 0.03 * rng.normal(0, 1, (size, size)).astype(np.float32)
    else:  # gradient
        theta = rng.uniform(0, 2 * math.pi)
        shade = 0.25 * ((xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta))
    return np.clip(tone[None, None, :] + shade[..., None], 0.0, 1.0)


def _mask(kind: str, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    _draw(ImageDraw.Draw(canvas), kind, cx * _SUPERSAMPLE, cy * _SUPERSAMPLE, r * _SUPERSAMPLE, angle, 255)
    small = np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    return small


def make_scene(
    seed: int,
    index: int,
    *,
    size: int = 32,
    max_objects: int = 1,
    part_prob: float = 0.0,
    textured_prob: float = 0.3,
    kinds: tuple[str, ...] = KINDS,
) -> Scene:
    """Draw scene ``index`` of the stream ``seed``: 1 … ``max_objects`` shapes in distinct grid cells."""
    rng = np.random.default_rng([seed, index])
    background = "plain" if rng.random() >= textured_prob else str(rng.choice(BACKGROUNDS[1:]))
    image = _background(background, size, rng)
    count = int(rng.integers(1, max_objects + 1))
    cells = rng.permutation(9)[:count]
    cell = size / 3
    objects: list[ShapeObject] = []
    taken = np.zeros((size, size), dtype=bool)  # what earlier objects cover (their anti-aliased edges included)
    for c in cells:
        row, col = divmod(int(c), 3)
        for _attempt in range(8):  # a shape that would touch an earlier one is redrawn, at most 8 times
            size_name = str(rng.choice(list(SIZES)[:2] if count > 1 else list(SIZES)))
            r = 0.5 * size * rng.uniform(*SIZES[size_name])
            # centre jittered inside its cell, then pulled in so the shape stays in the picture
            cx = min(max((col + 0.5 + rng.uniform(-0.25, 0.25)) * cell, r), size - r)
            cy = min(max((row + 0.5 + rng.uniform(-0.25, 0.25)) * cell, r), size - r)
            kind, color = str(rng.choice(kinds)), str(rng.choice(OBJECT_COLORS))
            angle = rng.uniform(-0.3, 0.3)
            coverage = _mask(kind, cx, cy, r, angle, size)
            if not (coverage > 0)[taken].any():
                break
        else:
            continue  # no room in this cell
        taken |= coverage > 0
        part = None
        layers = [(coverage, COLORS[color])]
        if rng.random() < part_prob:
            p_kind = str(rng.choice([k for k in kinds if k != kind]))
            p_color = str(rng.choice([k for k in COLORS if k != color]))
            p_cover = _mask(p_kind, cx, cy, 0.42 * r, 0.0, size)
            part_mask = p_cover >= 0.5
            if part_mask.any():
                part = ShapeObject(p_kind, p_color, "small", position_name(row, col), part_mask, _box(part_mask))
                layers.append((p_cover, COLORS[p_color]))
        for cover, rgb in layers:
            rgbf = np.array(rgb, dtype=np.float32) / 255.0
            image = image * (1 - cover[..., None]) + rgbf * cover[..., None]
        mask = coverage >= 0.5
        if not mask.any():  # too small to cover a pixel centre: keep the single most covered pixel
            mask = coverage >= coverage.max()
        if part is not None:
            part.mask &= mask
            part.box = _box(part.mask) if part.mask.any() else part.box
        objects.append(ShapeObject(kind, color, size_name, position_name(row, col), mask, _box(mask), part))
    scene = Scene(image.astype(np.float32), objects, background)
    scene.caption = caption(scene)
    return scene


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def caption(scene: Scene) -> str:
    """Every object's phrase joined by "and", then the background unless it is plain."""
    text = " and ".join(o.phrase() for o in scene.objects)
    if scene.background != "plain":
        text += f" on a {scene.background} background"
    return text
