"""Mask data: images with instance masks, augmentation, batches, simulated clicks, and the IoU of masks.

Sources (``--data``): a generated set (:mod:`genlab.data.mask_sets`: ``shapes``, ``blobs``, the data engine's
``scenes``, ``scenes-heldout`` and ``photos``, or a mixture such as ``scenes,shapes``), or a folder
``DIR/images/NAME.png`` with, for each image, either ``DIR/masks/NAME/*.png`` (one file per instance: non-black =
inside) or ``DIR/masks/NAME.png`` (a label map: each distinct non-black value or colour is one instance). Images of
any size and mode, resized on the shorter side and centre-cropped.

Simulated clicks follow SAM's training (§A "Training algorithm"): the first point uniformly inside the target, each
further point uniformly in the error region of the previous answer (foreground where the target was missed,
background where the answer spilled over). Evaluation uses the deterministic protocol of interactive segmentation
benchmarks (RITM, SAM §7.1): the point farthest from the region's boundary.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from genlab.data.image_data import check_set_fits, resize_crop
from genlab.data.images import IMAGE_SUFFIXES, MAX_PIXELS, read_image
from genlab.data.mask_sets import GENERATED, MaskSample, generated_sample
from genlab.errors import GenlabError, GenlabWarning
from genlab.io import user_path

# --- user folders ----------------------------------------------------------------------------------------------


def _read_masks(path: Path, size: int, max_pixels: int = MAX_PIXELS) -> list[np.ndarray]:
    """A folder of instance PNGs or a label map → instance masks, resized and cropped like the image."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        planes = [read_image(f, max_pixels=max_pixels).max(axis=2) > 0.5 for f in files]
    else:
        labels = read_image(path, max_pixels=max_pixels)
        flat = labels.reshape(-1, 3)
        values = [v for v in np.unique(flat, axis=0) if v.any()]
        planes = [np.all(labels == v, axis=2) for v in values]
    out = [resize_crop(p.astype(np.float32)[..., None], size)[..., 0] >= 0.5 for p in planes]
    return [m for m in out if m.sum() >= 4]


def load_mask_folder(
    root: str | Path, size: int, *, strict: bool = False, max_pixels: int = MAX_PIXELS
) -> list[MaskSample]:
    """Every image of ``root/images`` with its masks from ``root/masks`` (see the module docstring)."""
    root = user_path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise GenlabError(f"--data {root}: expected images/ and masks/ folders (see docs/segment.md)")
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GenlabError(f"--data {root}: images/ holds no images (png, jpg, webp, ...)")
    check_set_fits(len(files), size, 8, str(root))  # the image and its masks
    samples, problems = [], []
    for f in files:
        candidates = [masks_dir / f.stem] + [masks_dir / (f.stem + s) for s in (".png", ".PNG", ".tif", ".bmp")]
        found = next((c for c in candidates if c.exists()), None)
        try:
            if found is None:
                raise GenlabError(f"{f.name}: no masks/{f.stem}/ folder or masks/{f.stem}.png label map")
            image = resize_crop(read_image(f, max_pixels=max_pixels), size)
            masks = _read_masks(found, size, max_pixels)
            if not masks:
                raise GenlabError(f"{found}: no instance covers 4 pixels or more at {size}×{size}")
        except GenlabError as e:
            if strict:
                raise
            problems.append(str(e))
            continue
        samples.append(MaskSample(image.astype(np.float32), np.stack(masks), ("object",) * len(masks)))
    if problems:
        warnings.warn(f"skipped {len(problems)} of {len(files)} image(s); first: {problems[0]}", GenlabWarning, 2)
    if not samples:
        raise GenlabError(f"--data {root}: none of its {len(files)} images has usable masks")
    return samples


class MaskSource:
    """Samples by number: an endless generator stream (``shapes``, ``blobs``) or a list loaded from a folder."""

    def __init__(self, data: str, *, size: int, seed: int = 0, max_objects: int = 4, part_prob: float = 0.5) -> None:
        self.name, self.size, self.seed = data, size, seed
        self.options = dict(max_objects=max_objects, part_prob=part_prob)
        self.samples: list[MaskSample] | None = None

    @classmethod
    def from_samples(cls, name: str, samples: list[MaskSample]) -> MaskSource:
        src = cls(name, size=samples[0].image.shape[0])
        src.samples = samples
        return src

    @property
    def endless(self) -> bool:
        return self.samples is None

    def __len__(self) -> int:
        return len(self.samples) if self.samples is not None else 2**62

    def __getitem__(self, index: int) -> MaskSample:
        if self.samples is not None:
            return self.samples[index]
        if "," in self.name:  # a mixture: its sets in turn
            names = self.name.split(",")
            part = MaskSource(names[index % len(names)], size=self.size, seed=self.seed)
            part.options = self.options
            return part[index // len(names)]
        return generated_sample(self.name, self.seed, index, size=self.size, **self.options)


def is_generated(data: str) -> bool:
    """``data`` names a generated set or a mixture of them (``scenes,shapes``), not a folder."""
    return not Path(data).exists() and all(name in GENERATED for name in data.split(","))


def mask_sources(
    data: str,
    *,
    size: int,
    val_count: int,
    val_fraction: float,
    seed: int = 0,
    strict: bool = False,
    max_pixels: int = MAX_PIXELS,
    **options: float,
) -> tuple[MaskSource, MaskSource]:
    """(train, held out). Generated data: two disjoint streams (seed and seed + 1), ``val_count`` held out.
    A folder: a seeded random ``val_fraction`` of its images is held out."""
    if is_generated(data):
        train = MaskSource(data, size=size, seed=seed, **options)
        held = MaskSource(data, size=size, seed=seed + 1, **options)
        held.samples = [held[i] for i in range(val_count)]
        return train, held
    path = user_path(data)
    if not path.is_dir():
        raise GenlabError(f"--data {data}: no such folder (generated mask sets: {', '.join(GENERATED)})")
    samples = load_mask_folder(path, size, strict=strict, max_pixels=max_pixels)
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = min(int(round(len(samples) * val_fraction)), len(samples) - 1)
    held = [samples[i] for i in order[:n_val]]
    return MaskSource.from_samples(data, [samples[i] for i in order[n_val:]]), MaskSource.from_samples(data, held)


# --- augmentation and batches ----------------------------------------------------------------------------------


def augment(sample: MaskSample, rng: np.random.Generator, *, zoom: bool = False) -> MaskSample:
    """Horizontal flip, colour jitter (channel order, brightness, contrast, per-channel gain) and, with ``zoom``,
    a random crop of 67-100% of the side resized back; masks follow every geometric change."""
    image, masks = sample.image, sample.masks
    if rng.random() < 0.5:
        image, masks = image[:, ::-1], masks[:, :, ::-1]
    if zoom and rng.random() < 0.5:
        s = image.shape[0]
        side = int(round(s * rng.uniform(0.67, 1.0)))
        y0, x0 = rng.integers(0, s - side + 1, 2)
        idx = (np.arange(s) + 0.5) * side / s - 0.5
        near = np.clip(np.round(idx).astype(int), 0, side - 1)
        crop = image[y0 : y0 + side, x0 : x0 + side]
        image = np.stack(
            [np.asarray(Image.fromarray(crop[..., c]).resize((s, s), Image.BILINEAR)) for c in range(3)], axis=2
        )
        masks = masks[:, y0 : y0 + side, x0 : x0 + side][:, near][:, :, near]
    if rng.random() < 0.5:
        image = image[..., rng.permutation(3)]
    mean = image.mean()
    image = (image - mean) * rng.uniform(0.8, 1.2) + mean + rng.uniform(-0.1, 0.1)
    image = np.clip(image * rng.uniform(0.9, 1.1, 3), 0, 1)
    keep = masks.reshape(len(masks), -1).any(axis=1)
    roles = tuple(r for r, k in zip(sample.roles, keep, strict=True) if k)
    return MaskSample(np.ascontiguousarray(image, np.float32), np.ascontiguousarray(masks[keep]), roles)


class MaskBatches:
    """Batch ``i`` (a pure function of (seed, rank, i)): ``images`` B×3×S×S in [0, 1] and ``masks`` B×K×S×S
    (0/1 floats), K target masks per image chosen at random (with repeats when an image has fewer)."""

    def __init__(
        self,
        source: MaskSource,
        *,
        batch_size: int,
        masks_per_image: int,
        seed: int = 0,
        rank: int = 0,
        augmentation: bool = True,
    ) -> None:
        self.source, self.batch_size, self.k = source, batch_size, masks_per_image
        self.seed, self.rank, self.augmentation = seed, rank, augmentation

    def __call__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, i])
        n = len(self.source)
        images, masks = [], []
        for index in rng.integers(0, n, self.batch_size):
            sample = self.source[int(index)]
            if self.augmentation:
                sample = augment(sample, rng, zoom=not self.source.endless)
            m = len(sample.masks)
            pick = rng.permutation(m)[: self.k] if m >= self.k else rng.integers(0, m, self.k)
            images.append(sample.image)
            masks.append(sample.masks[pick])
        return {
            "images": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
            "masks": torch.from_numpy(np.stack(masks)).float(),
        }


# --- prompts from masks ----------------------------------------------------------------------------------------


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``P×H×W`` masks → ``P×4`` boxes (x0, y0, x1, y1), the pixel edges around the mask (x1, y1 exclusive)."""
    P, H, W = masks.shape
    m = masks > 0.5
    cols, rows = m.any(dim=1), m.any(dim=2)
    xs = torch.arange(W, device=masks.device).expand(P, W)
    ys = torch.arange(H, device=masks.device).expand(P, H)
    x0 = torch.where(cols, xs, W).amin(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1) + 1
    y0 = torch.where(rows, ys, H).amin(dim=1)
    y1 = torch.where(rows, ys, -1).amax(dim=1) + 1
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def jitter_boxes(
    boxes: torch.Tensor, size: int, *, noise: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """SAM's box noise (std 10% of the box side, at most 20 px): each coordinate of ``P×4`` boxes moves by
    N(0, (noise × side)²), clipped to ±2 × noise × side; the box stays inside the ``size``×``size`` image."""
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    shift = torch.randn(boxes.shape, generator=generator, device=boxes.device) * noise * wh
    shift = shift.clamp(-2 * noise * wh, 2 * noise * wh)
    out = (boxes + shift).clamp(0, size)
    lo = torch.minimum(out[:, :2], out[:, 2:] - 1)
    return torch.cat([lo, torch.maximum(out[:, 2:], lo + 1)], dim=1)


def random_points(region: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniformly random pixel of each ``P×H×W`` region → (``P×2`` pixel centres (x, y), ``P`` found)."""
    P, H, W = region.shape
    flat = region.reshape(P, -1).float()
    score = torch.rand(flat.shape, generator=generator, device=region.device) * flat
    idx = score.argmax(dim=1)
    coords = torch.stack([idx % W, idx // W], dim=1).float() + 0.5
    return coords, flat.sum(dim=1) > 0


def random_clicks(
    pred: torch.Tensor, gt: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training click in the error region of ``pred`` vs ``gt`` (``P×H×W`` bool) → (``P×2``, labels ``P``): 1 where
    the target was missed, 0 where the answer spilled over, −1 (no point) where the answer is exact."""
    coords, found = random_points(pred ^ gt, generator)
    x, y = coords[:, 0].long(), coords[:, 1].long()
    label = gt[torch.arange(len(gt), device=gt.device), y, x].long()
    return coords, torch.where(found, label, torch.full_like(label, -1))


def center_click(pred: np.ndarray | None, gt: np.ndarray) -> tuple[tuple[float, float], int]:
    """The evaluation click (RITM / SAM protocol): the point deepest inside the larger error region — missed
    foreground (label 1) or spilled background (label 0) — by Euclidean distance to its border (the image edge is a
    border too). With no answer yet, the deepest point of the target itself. Label −1: the answer is exact."""
    fn = gt if pred is None else gt & ~pred
    fp = np.zeros_like(gt) if pred is None else pred & ~gt
    best, label, where = -1.0, -1, (0.0, 0.0)
    for region, lab in ((fn, 1), (fp, 0)):
        if region.any():
            dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
            y, x = np.unravel_index(int(dist.argmax()), dist.shape)
            if dist[y, x] > best:
                best, label, where = float(dist[y, x]), lab, (x + 0.5, y + 0.5)
    return where, label


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of boolean masks ``…×H×W`` (broadcast) → ``…``; two empty masks agree (IoU 1)."""
    inter = (pred & target).flatten(-2).sum(-1).float()
    union = (pred | target).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def share_in_boxes(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The share of each mask (``N×…×H×W`` bool) inside its box (``N×4``: x0, y0, x1, y1, x1 and y1 exclusive)
    → ``N×…``; an empty mask lies wholly inside."""
    h, w = masks.shape[-2:]
    ys = torch.arange(h, device=masks.device)[:, None]
    xs = torch.arange(w, device=masks.device)[None, :]
    b = boxes.reshape(len(boxes), *([1] * (masks.dim() - 1)), 4)
    in_box = (xs >= b[..., 0]) & (xs < b[..., 2]) & (ys >= b[..., 1]) & (ys < b[..., 3])
    area = masks.flatten(-2).sum(-1).float()
    inside = (masks & in_box).flatten(-2).sum(-1).float()
    return torch.where(area > 0, inside / area.clamp(min=1), torch.ones_like(area))


def choose_masks(masks: torch.Tensor, scores: torch.Tensor, points: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The answer a user gets from ``K`` candidate masks (``N×K×H×W`` bool, predicted IoU ``N×K``): the highest
    score among the masks that agree with the prompts — every positive click (label 1) inside, every negative one
    (label 0) outside, at least 90% of the mask inside the box — or, where none agrees, the highest score. Points
    ``N×P×2`` (x, y) in the masks' pixels; labels ``N×P`` (−1: padding); boxes ``N×4``. → ``N`` indices."""
    n, k, h, w = masks.shape
    agree = torch.ones(n, k, dtype=torch.bool, device=masks.device)
    rows = torch.arange(n, device=masks.device)
    if points is not None and labels is not None:
        xs = points[..., 0].long().clamp(0, w - 1)
        ys = points[..., 1].long().clamp(0, h - 1)
        for p in range(points.shape[1]):
            inside = masks[rows, :, ys[:, p], xs[:, p]]  # N×K
            lab = labels[:, p, None]
            agree &= torch.where(lab == 1, inside, torch.where(lab == 0, ~inside, torch.ones_like(inside)))
    if boxes is not None:
        agree &= share_in_boxes(masks, boxes) >= 0.9
    return torch.where(agree, scores + 2.0, scores).argmax(dim=1)  # predicted IoUs lie in [0, 1]
