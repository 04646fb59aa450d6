"""Image datasets: a folder of your images, or a bundled set (``digits``, ``shapes``), as one tensor.

Folders: png/jpg/webp/… of any size and mode, resized (shorter side) and centre-cropped to ``size``; a class label
from the first sub-folder's name when every image sits in one; a caption from a sidecar ``NAME.txt`` or from
``captions.jsonl`` (``{"file": "a/b.png", "caption": "..."}`` per line). An unreadable file is named and skipped
(an error with ``strict``); a folder with nothing usable is an error.

Bundled:
    digits   scikit-learn's 1,797 handwritten 8×8 digits with labels 0-9, upscaled (bicubic) to ``size``; grey.
    shapes   the procedural shapes of :mod:`genlab.data.shapes`, one object per image, labelled by kind.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.data.images import IMAGE_SUFFIXES, MAX_PIXELS, read_image
from genlab.errors import GenlabError, GenlabWarning
from genlab.io import user_path
from genlab.memory import check_fits

BUNDLED_IMAGES = ("digits", "shapes")
SHAPES_COUNT = 20_000  # images in the bundled shapes set (drawn on demand, deterministic)


def data_levels(images: torch.Tensor) -> int:
    """The fewest evenly spaced values per channel that hold every pixel of ``images`` (in [-1, 1]) exactly: 17 for
    the 8×8 digits (0 … 16), 256 for 8-bit photos or anything resampled between levels."""
    values = torch.unique(((images.flatten() + 1) / 2).clamp(0, 1))
    for levels in range(2, 257):
        scaled = values * (levels - 1)
        if torch.all((scaled - scaled.round()).abs() < 1e-3):
            return levels
    return 256


def quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Images in [-1, 1] → integer levels 0 … levels − 1 (the discrete scale of the likelihood families)."""
    return (((images + 1) / 2).clamp(0, 1) * (levels - 1)).round().long()


@dataclass
class ImageSet:
    images: torch.Tensor  # N×C×H×W float32 in [-1, 1]
    labels: torch.Tensor | None  # N int64, or None when unlabelled
    class_names: list[str]
    captions: list[str] | None = None
    source: str = ""
    attributes: dict[str, torch.Tensor] | None = None  # e.g. shapes: kind, color, size, position of the object

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: torch.Tensor) -> ImageSet:
        caps = [self.captions[i] for i in index.tolist()] if self.captions is not None else None
        labels = self.labels[index] if self.labels is not None else None
        attrs = {k: v[index] for k, v in self.attributes.items()} if self.attributes is not None else None
        return ImageSet(self.images[index], labels, self.class_names, caps, self.source, attrs)


def resize_crop(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` (bicubic, antialiased), then crop the centre square."""
    h, w = arr.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    chans = [np.asarray(Image.fromarray(arr[..., c]).resize((nw, nh), Image.BICUBIC)) for c in range(arr.shape[2])]
    out = np.stack(chans, axis=2)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.clip(out[top : top + size, left : left + size], 0.0, 1.0)


def load_digits(size: int = 16) -> ImageSet:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    imgs = (d.images / 16.0).astype(np.float32)  # 1797×8×8 in [0, 1]
    up = np.stack([resize_crop(im[..., None], size) for im in imgs])  # N×S×S×1
    images = torch.from_numpy(up).permute(0, 3, 1, 2).contiguous() * 2 - 1
    return ImageSet(images, torch.from_numpy(d.target.astype(np.int64)), [str(i) for i in range(10)], None, "digits")


@functools.lru_cache(maxsize=4)  # drawing 20,000 scenes takes seconds; the same set is often asked for twice
def load_shapes(size: int = 32, count: int = SHAPES_COUNT, seed: int = 0, **options) -> ImageSet:  # noqa: ANN003
    """``count`` scenes of :func:`genlab.data.shapes.make_scene` (one object each unless ``options`` say
    otherwise): images, the first object's kind as the label, captions, and the first object's attributes."""
    from genlab.data.shapes import ATTRIBUTES, KINDS, make_scene

    scenes = [make_scene(seed, i, size=size, **options) for i in range(count)]
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).contiguous() * 2 - 1
    labels = torch.tensor([s.label for s in scenes], dtype=torch.long)
    attrs = {
        name: torch.tensor([values.index(getattr(s.objects[0], name)) for s in scenes], dtype=torch.long)
        for name, values in ATTRIBUTES.items()
    }
    return ImageSet(images, labels, list(KINDS), [s.caption for s in scenes], "shapes", attrs)


def _captions_for(root: Path, files: list[Path]) -> list[str] | None:
    table: dict[str, str] = {}
    jsonl = root / "captions.jsonl"
    if jsonl.is_file():
        for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rec = json.loads(line)
                    table[str(rec["file"])] = str(rec["caption"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise GenlabError(f'{jsonl} line {n}: expected {{"file": ..., "caption": ...}}') from None
    caps = []
    for f in files:
        side = f.with_suffix(".txt")
        rel = f.relative_to(root).as_posix()
        caps.append(table.get(rel) or (side.read_text(encoding="utf-8").strip() if side.is_file() else None))
    return caps if any(c is not None for c in caps) else None


def load_folder(root: str | Path, size: int, *, strict: bool = False, max_pixels: int = MAX_PIXELS) -> ImageSet:
    root = user_path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GenlabError(f"--data {root}: the folder has no images (png, jpg, webp, ...)")
    check_set_fits(len(files), size, 3, str(root))
    arrays, kept, bad = [], [], []
    for f in files:
        try:
            arrays.append(resize_crop(read_image(f, max_pixels=max_pixels), size))
            kept.append(f)
        except GenlabError as e:
            if strict:
                raise
            bad.append(str(e))
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable file(s) of {len(files)}; first: {bad[0]}", GenlabWarning, 2)
    if not kept:
        raise GenlabError(f"--data {root}: none of its {len(files)} image files could be read")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous() * 2 - 1
    parents = [f.relative_to(root).parts for f in kept]
    labels, names = None, []
    if all(len(p) >= 2 for p in parents):
        names = sorted({p[0] for p in parents})
        labels = torch.tensor([names.index(p[0]) for p in parents], dtype=torch.long)
    return ImageSet(images, labels, names, _captions_for(root, kept), str(root))


def check_set_fits(count: int, size: int, channels: int, src: str) -> None:
    """Refuse, before loading, a set that would not fit in memory at ``size`` (float32 pixels, and about as much
    again while resizing)."""
    check_fits(2 * count * size * size * channels * 4, f"{count:,} images of {size}×{size} from {src}")


def load_image_set(src: str, size: int, *, strict: bool = False, max_pixels: int = MAX_PIXELS) -> ImageSet:
    """``digits``, ``shapes``, or a folder of images (none over ``max_pixels``), at ``size``×``size``."""
    if src in BUNDLED_IMAGES and not Path(src).exists():
        if src == "digits":
            check_set_fits(1797, size, 1, src)
            return load_digits(size)
        check_set_fits(SHAPES_COUNT, size, 3, src)
        return load_shapes(size)
    path = user_path(src)
    if not path.exists():
        raise GenlabError(f"--data {src}: no such folder (bundled image sets: {', '.join(BUNDLED_IMAGES)})")
    if not path.is_dir():
        raise GenlabError(f"--data {src}: expected a folder of images or one of {', '.join(BUNDLED_IMAGES)}")
    return load_folder(path, size, strict=strict, max_pixels=max_pixels)


def split_images(data: ImageSet, val_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A seeded random split: the held-out part never trains and is the reference for FID."""
    if not 0.0 <= val_fraction < 1.0:
        raise GenlabError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(data) * val_fraction))
    return data.subset(order[n_val:]), data.subset(order[:n_val])


class ImageBatches:
    """Random batches ``(images, labels, extra)`` of a set, where ``extra`` is the captions (``"captions"``), the
    attribute labels (``"attributes"``) or None. Batch ``i`` is a pure function of (seed, rank, i)."""

    def __init__(self, data: ImageSet, *, batch_size: int, seed: int = 0, rank: int = 0, extra: str = "") -> None:
        if extra == "captions" and data.captions is None:
            raise GenlabError("the data has no captions (sidecar .txt files or a captions.jsonl)")
        if extra == "captions" and any(c is None for c in data.captions):
            missing = sum(c is None for c in data.captions)
            raise GenlabError(f"{missing} of {len(data)} images have no caption")
        if extra == "attributes" and data.attributes is None:
            raise GenlabError("the data has no attribute labels (use the bundled shapes)")
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.extra = extra

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None, object]:
        g = torch.Generator().manual_seed(hash((self.seed, self.rank, i)) & (2**63 - 1))
        idx = torch.randint(len(self.data), (self.batch_size,), generator=g)
        labels = self.data.labels[idx] if self.data.labels is not None else None
        extra: object = None
        if self.extra == "captions":
            extra = [self.data.captions[j] for j in idx.tolist()]
        elif self.extra == "attributes":
            extra = {k: v[idx] for k, v in self.data.attributes.items()}
        return self.data.images[idx], labels, extra
