"""Masks and geometry from the command line: hole masks, boxes, points and sizes.

Mask convention: a grey or colour image of the photo's size; **white = hole** (to fill), black = keep. Soft or
anti-aliased masks are thresholded at 0.5 (a pixel is a hole when its grey value is above half); alpha is
composited over white like every image genlab reads.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from genlab.data.images import MAX_PIXELS, read_image
from genlab.errors import GenlabError, GenlabWarning


def read_mask(src: str | Path, shape: tuple[int, ...], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The hole mask in ``src`` as ``H×W`` bool (True = hole), checked against an image of ``shape``."""
    grey = read_image(src, grey=True, max_pixels=max_pixels)
    if grey.shape != tuple(shape[:2]):
        raise GenlabError(
            f"the mask {src} is {grey.shape[1]}×{grey.shape[0]} pixels but the image is {shape[1]}×{shape[0]}"
        )
    return grey > 0.5


def check_hole(hole: np.ndarray) -> bool:
    """False (with a warning) for an empty hole; an error when the hole is the whole image; else True."""
    if hole.all():
        raise GenlabError("the mask covers the whole image: nothing is left to fill the hole from")
    if not hole.any():
        warnings.warn("the mask is empty (no pixel above 0.5): the output is the input", GenlabWarning, stacklevel=2)
        return False
    return True


def _ints(text: str, n: int, what: str, example: str) -> tuple[int, ...]:
    parts = re.split(r"[,x×]", text.strip())
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n:
        raise GenlabError(f"{what} {text!r}: expected {n} integers, e.g. {example}")
    return values


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` → ``(H, W)``; both at least 1."""
    w, h = _ints(text, 2, "--size", "512x384")
    if w < 1 or h < 1:
        raise GenlabError(f"--size {text!r}: width and height must be positive")
    return h, w


def parse_region(text: str, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` (x1, y1 exclusive) → a box inside an image of ``shape``."""
    x0, y0, x1, y1 = _ints(text, 4, "--region", "40,60,120,140")
    h, w = shape[:2]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise GenlabError(f"--region {text}: must satisfy 0 ≤ x0 < x1 ≤ {w} and 0 ≤ y0 < y1 ≤ {h} (the image)")
    return x0, y0, x1, y1


def parse_point(text: str, box_size: tuple[int, int], shape: tuple[int, ...]) -> tuple[int, int]:
    """``"x,y"``: the new top-left corner of a ``box_size`` = ``(h, w)`` box, which must stay inside ``shape``."""
    x, y = _ints(text, 2, "--to", "200,60")
    bh, bw = box_size
    h, w = shape[:2]
    if not (0 <= x <= w - bw and 0 <= y <= h - bh):
        raise GenlabError(f"--to {text}: the {bw}×{bh} region must stay inside the {w}×{h} image")
    return x, y
