"""Classic baselines to compare with, on the same images and masks.

* ``telea`` — OpenCV's fast marching inpainting (Telea 2004): fills from the boundary inward, each pixel a
  weighted mean of known neighbours;
* ``ns`` — OpenCV's Navier–Stokes inpainting (Bertalmío et al. 2001): propagates isophotes into the hole;
* ``biharmonic`` — scikit-image's biharmonic inpainting: the smoothest fill (solves ``Δ²u = 0`` in the hole);
* bicubic upscaling (Keys' kernel, a = -0.5, as Pillow and MATLAB implement it).
"""

from __future__ import annotations

import numpy as np

from genlab.data.images import to_uint8
from genlab.errors import GenlabError

INPAINT_BASELINES = ("telea", "ns", "biharmonic")


def inpaint_baseline(image: np.ndarray, hole: np.ndarray, method: str, *, radius: int = 3) -> np.ndarray:
    """Fill ``hole`` (``H×W`` bool) of ``image`` (``H×W×C`` float in [0, 1]) with a classic method.

    ``radius``: the neighbourhood of Telea and Navier–Stokes, in pixels. Known pixels are returned unchanged.
    """
    if method in ("telea", "ns"):
        import cv2

        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(to_uint8(image), hole.astype(np.uint8), radius, flag).astype(np.float32) / 255.0
        filled = filled.reshape(image.shape)
    elif method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        filled = inpaint_biharmonic(image, hole, channel_axis=-1 if image.ndim == 3 else None).astype(np.float32)
    else:
        raise GenlabError(f"unknown inpainting method {method!r}; choose one of {', '.join(INPAINT_BASELINES)}")
    return np.where(hole[..., None] if image.ndim == 3 else hole, filled, image).astype(np.float32)


def bicubic_upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` (``H×W×C`` float) enlarged ``scale`` times with bicubic interpolation (Pillow, per channel)."""
    from PIL import Image

    h, w = image.shape[:2]
    planes = image[..., None] if image.ndim == 2 else image
    size = (w * scale, h * scale)
    up = [
        np.asarray(Image.fromarray(planes[..., k].astype(np.float32)).resize(size, Image.BICUBIC))
        for k in range(planes.shape[2])
    ]
    return np.clip(np.stack(up, -1), 0, 1).reshape((h * scale, w * scale) + image.shape[2:]).astype(np.float32)
