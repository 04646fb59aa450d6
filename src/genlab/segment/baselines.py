"""Classic interactive segmentation, the tools a user would reach for instead of a promptable model:

- **flood fill** from the click (OpenCV ``floodFill``): the connected region whose colour stays within
  ``tolerance`` of the clicked pixel (``fixed``) or of each neighbour (``floating``);
- **GrabCut** from the box (OpenCV ``grabCut``; Rother et al. 2004): colour models of the box's inside and outside,
  refined by graph cuts;
- **a SLIC superpixel** region from the click (scikit-image ``slic``; Achanta et al. 2012): the superpixel under the
  click.

Several clicks combine as a user of such a tool would: the union of the regions of the positive clicks, minus the
regions of the negative ones. Every function takes an ``H×W×3`` image in [0, 1] and returns an ``H×W`` bool mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genlab.errors import GenlabError

FLOOD_MODES = ("fixed", "floating")


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.clip(image[..., :3], 0, 1) * 255).round().astype(np.uint8))


def _combine(regions: Sequence[np.ndarray], labels: Sequence[int], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for region, label in zip(regions, labels, strict=True):
        if label == 1:
            out |= region
    for region, label in zip(regions, labels, strict=True):
        if label == 0:
            out &= ~region
    return out


def _pixel(point: Sequence[float], shape: tuple[int, ...]) -> tuple[int, int]:
    x, y = int(point[0]), int(point[1])
    if not (0 <= x < shape[1] and 0 <= y < shape[0]):
        raise GenlabError(f"point ({point[0]:g}, {point[1]:g}) lies outside the {shape[1]}×{shape[0]} image")
    return x, y


def flood_fill(image: np.ndarray, points: Sequence[Sequence[float]], labels: Sequence[int], *, tolerance: int = 24,
               mode: str = "fixed") -> np.ndarray:  # fmt: skip
    """The flood-fill region of each click (8-connected), combined."""
    import cv2

    if mode not in FLOOD_MODES:
        raise GenlabError(f"flood fill mode {mode!r}; choose {' or '.join(FLOOD_MODES)}")
    img = _uint8(image)
    h, w = img.shape[:2]
    flags = 8 | cv2.FLOODFILL_MASK_ONLY | (255 << 8) | (cv2.FLOODFILL_FIXED_RANGE if mode == "fixed" else 0)
    regions = []
    for point in points:
        mask = np.zeros((h + 2, w + 2), np.uint8)
        cv2.floodFill(img, mask, _pixel(point, img.shape), (0, 0, 0), (tolerance,) * 3, (tolerance,) * 3, flags)
        regions.append(mask[1:-1, 1:-1] > 0)
    return _combine(regions, labels, (h, w))


def grabcut(image: np.ndarray, box: Sequence[float], *, iterations: int = 5) -> np.ndarray:
    """GrabCut's foreground inside ``box`` = (x0, y0, x1, y1), x1 and y1 exclusive."""
    import cv2

    img = _uint8(image)
    h, w = img.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        out = np.zeros((h, w), bool)
        out[y0:y1, x0:x1] = True
        return out
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    rect = (x0, y0, x1 - x0, y1 - y0)
    if (x0, y0, x1, y1) == (0, 0, w, h):  # a box of the whole image leaves GrabCut no background to learn from
        rect = (1, 1, w - 2, h - 2)
    cv2.grabCut(img, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


class Superpixels:
    """SLIC superpixels of one image, computed once; each click selects the superpixel under it."""

    def __init__(self, image: np.ndarray, *, segments: int = 100, compactness: float = 10.0) -> None:
        from skimage.segmentation import slic

        self.labels = slic(np.clip(image[..., :3], 0, 1), n_segments=segments, compactness=compactness,
                           start_label=0)  # fmt: skip

    def region(self, points: Sequence[Sequence[float]], labels: Sequence[int]) -> np.ndarray:
        regions = []
        for point in points:
            x, y = _pixel(point, self.labels.shape)
            regions.append(self.labels == self.labels[y, x])
        return _combine(regions, labels, self.labels.shape)
