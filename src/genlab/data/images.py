"""Reading and writing images, and the sample photos that ship offline.

Every reader returns float32 arrays in [0, 1], ``H×W×3`` (RGB) or ``H×W`` (grey), whatever the file holds:
8- or 16-bit, grey, palette, CMYK, with or without alpha (alpha is composited over white).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from genlab.errors import GenlabError, GenlabWarning
from genlab.io import MAX_PIXELS, atomic_path, user_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

#: photos bundled with scikit-image (``skimage.data``) and scikit-learn (``load_sample_images``)
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "horse",
    "logo",
    "moon",
    "page",
    "rocket",
    "text",
)
SKLEARN_PHOTOS = ("china", "flower")


def _to_float(img: Image.Image) -> np.ndarray:
    """PIL image of any mode → float32 RGB or grey in [0, 1]."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr / top, 0, 1).astype(np.float32)
    if img.mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0, 1)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode in ("RGB", "L") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def bundled_image(name: str) -> np.ndarray:
    """A sample photo shipped by scikit-image or scikit-learn, as float32 in [0, 1]."""
    if name in SKIMAGE_PHOTOS:
        import skimage.data

        arr = getattr(skimage.data, name)()
    elif name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(f"{name}.jpg")
    else:
        raise GenlabError(f"unknown sample photo {name!r}; bundled: {', '.join(SKIMAGE_PHOTOS + SKLEARN_PHOTOS)}")
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:  # e.g. logo: RGBA
        return _to_float(Image.fromarray(arr))
    return (arr.astype(np.float32) / (65535.0 if arr.dtype == np.uint16 else 255.0)).astype(np.float32)


@contextlib.contextmanager
def _pillow_limit(src: str | Path, max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb check tied to ``max_pixels`` (it refuses above twice its limit, before reading
    the header's size into memory): its error becomes one line naming --max-pixels."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # read_image warns in its own words
            yield
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "the image"
        raise GenlabError(
            f"{src}: {size} is more than --max-pixels {max_pixels:,}; downscale it or raise --max-pixels"
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = before


def read_image(src: str | Path, *, grey: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file (or a bundled photo's name) as float32 in [0, 1]: ``H×W×3``, or ``H×W`` with ``grey``.

    ``max_pixels`` guards against huge inputs (decompression bombs included) with a clear message instead of
    running out of memory; it is checked from the header, before the pixels are decoded.
    """
    path = user_path(src)
    if not path.exists() and str(src) in SKIMAGE_PHOTOS + SKLEARN_PHOTOS:
        arr = bundled_image(str(src))
    else:
        if not path.is_file():
            raise GenlabError(f"{src}: no such image file" if not path.exists() else f"{src}: not a file")
        try:
            with _pillow_limit(src, max_pixels), Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise GenlabError(
                        f"{src}: {w}×{h} = {w * h:,} pixels is more than --max-pixels {max_pixels:,}; "
                        "downscale it or raise --max-pixels"
                    )
                if w * h > max_pixels // 2:
                    warnings.warn(
                        f"{src}: a large image ({w}×{h} = {w * h:,} pixels, over half of --max-pixels); "
                        "it may be slow and use much memory",
                        GenlabWarning,
                        stacklevel=2,
                    )
                img.load()
                arr = _to_float(img)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
            raise GenlabError(f"{src}: not a readable image ({e})") from None
    if arr.shape[0] * arr.shape[1] > max_pixels:
        h, w = arr.shape[:2]
        raise GenlabError(f"{src}: {w}×{h} pixels is more than --max-pixels {max_pixels:,}")
    if grey and arr.ndim == 3:
        return (arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)
    if not grey and arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    return arr


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_image(path: str | Path, arr: np.ndarray) -> Path:
    """Write a float image in [0, 1] (``H×W``, ``H×W×1`` or ``H×W×3``) atomically; format from the suffix."""
    path = Path(path)
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(arr)).save(tmp, format=fmt)
    return path


def image_grid(images: np.ndarray, nrow: int, pad: int = 1, scale: int = 1) -> np.ndarray:
    """``N×C×H×W`` (or ``N×H×W×C``) images in [0, 1] → one ``H'×W'×3`` grid, ``nrow`` images per row, each
    enlarged ``scale``× (nearest neighbour, so small images stay crisp)."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if scale > 1:
        arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, _ = arr.shape
    rows = -(-n // nrow)
    grid = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = arr[i]
    return grid
