"""Mask output formats: COCO run-length encoding, polygons, and coloured overlays.

COCO RLE (the ``segmentation`` field of COCO and of SAM's automatic masks): the mask is read column by column
(Fortran order) as alternating runs of 0s and 1s, starting with 0s; ``counts`` is the run lengths, compressed into a
string by the LEB128-like code of ``pycocotools`` (``maskApi.c``: 5 bits per character, offset by 48, each count
after the second stored as the difference to the count two before). Polygons: the contours of each connected
region at the 0.5 level (marching squares), simplified, as COCO's flat ``[x0, y0, x1, y1, …]`` lists in pixel
coordinates where the centre of pixel (i, j) is (i + 0.5, j + 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genlab.errors import GenlabError


def rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a ``H×W`` boolean mask in column-major order, starting with a run of 0s (maybe empty)."""
    flat = np.asarray(mask, bool).flatten(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return counts


def _compress(counts: list[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _decompress(text: str) -> list[int]:
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """A ``H×W`` boolean mask → COCO compressed RLE ``{"size": [H, W], "counts": str}`` (pycocotools-compatible)."""
    mask = np.asarray(mask, bool)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _compress(rle_counts(mask))}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (compressed string or uncompressed list ``counts``) → ``H×W`` boolean mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise GenlabError('an RLE is {"size": [H, W], "counts": ...}') from None
    counts = _decompress(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(counts) != h * w:
        raise GenlabError(f"RLE counts cover {sum(counts)} pixels, not {h}×{w}")
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((h, w), order="F")


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.5) -> list[list[float]]:
    """Outlines of a boolean mask as COCO polygons (flat x, y lists), simplified within ``tolerance`` pixels.

    Holes come out as polygons of their own (COCO polygons cannot express them; use RLE for exact masks).
    """
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(np.asarray(mask, np.float32), 1)
    polygons = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, tolerance) if tolerance > 0 else contour
        if len(contour) < 3:
            continue
        xy = contour[:, ::-1] - 1 + 0.5  # (row, col) in the padded frame → (x, y) with pixel centres at +0.5
        polygons.append([round(float(v), 2) for v in xy.flatten()])
    return polygons


def palette(n: int, seed: int = 0) -> np.ndarray:
    """``n×3`` distinct bright colours in [0, 1] (golden-ratio hues)."""
    import colorsys

    start = np.random.default_rng(seed).uniform()
    return np.array(
        [colorsys.hsv_to_rgb((start + i * 0.618033988749895) % 1.0, 0.75, 0.95) for i in range(n)], np.float32
    )


def overlay(
    image: np.ndarray, masks: list[np.ndarray] | np.ndarray, *, alpha: float = 0.5, outline: bool = True
) -> np.ndarray:
    """``H×W×3`` image in [0, 1] with each mask tinted in its own colour (later masks on top), edges drawn."""
    from scipy import ndimage

    out = np.array(image, np.float32, copy=True)
    colours = palette(len(masks))
    for mask, colour in zip(masks, colours, strict=True):
        m = np.asarray(mask, bool)
        out[m] = (1 - alpha) * out[m] + alpha * colour
        if outline:
            edge = m & ~ndimage.binary_erosion(m)
            out[edge] = colour
    return out


def draw_prompts(
    image: np.ndarray,
    points: np.ndarray | list | None = None,
    labels: np.ndarray | list | None = None,
    boxes: np.ndarray | list | None = None,
    *,
    scale: int = 1,
) -> np.ndarray:
    """``H×W×3`` image (enlarged ``scale``×, nearest) with clicks drawn as dots (green foreground, red background,
    white ring) and boxes as yellow rectangles; coordinates in the image's pixels."""
    from PIL import Image, ImageDraw

    from genlab.data.images import to_uint8

    arr = np.asarray(image, np.float32)
    if scale > 1:
        arr = arr.repeat(scale, axis=0).repeat(scale, axis=1)
    canvas = Image.fromarray(to_uint8(arr))
    draw = ImageDraw.Draw(canvas)
    r = max(2, round(1.5 * scale))
    for b in [] if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4):
        x0, y0, x1, y1 = (float(v) * scale for v in b)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(255, 220, 0), width=max(1, scale // 2))
    pts = [] if points is None else np.asarray(points, np.float32).reshape(-1, 2)
    labs = np.ones(len(pts), int) if labels is None else np.asarray(labels).reshape(-1)
    for (x, y), lab in zip(pts, labs, strict=True):
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        fill = (40, 200, 60) if lab == 1 else (230, 40, 40)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=(255, 255, 255))
    return np.asarray(canvas, np.float32) / 255.0
