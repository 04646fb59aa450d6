"""Inputs and outputs of image generation: class names, interpolation end points, grids or files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.data.domain import check_domain
from genlab.data.image_data import load_image_set, resize_crop, split_images
from genlab.data.images import MAX_PIXELS, image_grid, read_image, write_image
from genlab.errors import GenlabError


def class_index(model: Any, value: str | int) -> int:
    """A class given as an index or as a name the run recorded (e.g. a sub-folder name)."""
    names = (model.run or {}).get("class_names") or []
    if value in names:
        return names.index(value)
    try:
        return int(value)
    except ValueError:
        shown = ", ".join(names) if names else "none recorded"
        raise GenlabError(f"--class {value!r}: not a class index or name (names: {shown})") from None


def is_class(model: Any, value: str) -> bool:
    return value.lstrip("-").isdigit() or value in ((model.run or {}).get("class_names") or [])


def interpolation_inputs(
    model: Any, ends: list[str], through: str, *, max_pixels: int = MAX_PIXELS
) -> tuple[torch.Tensor | None, tuple | None]:
    """For ``--interpolate A,B``: two images (``2×C×H×W`` in [0, 1]; files, or the first held-out example of each
    class) and/or the two classes."""
    if len(ends) != 2:
        raise GenlabError("--interpolate takes two items: A,B (image files or classes)")
    if all(is_class(model, e) for e in ends):
        classes = (class_index(model, ends[0]), class_index(model, ends[1]))
        if through == "noise":
            return None, classes
        data = (model.run or {}).get("data")
        if not data:
            raise GenlabError("--interpolate with classes needs the run's data; give two image files instead")
        held_out = split_images(load_image_set(data, model.config.image_size), model.run.get("val_fraction", 0.2))[1]
        picks = []
        for c in classes:
            found = (held_out.labels == c).nonzero()
            if not len(found):
                raise GenlabError(f"--interpolate: no held-out image of class {c}")
            picks.append(held_out.images[int(found[0])])
        return (torch.stack(picks) + 1) / 2, classes
    grey = model.config.channels == 1
    arrays = [read_image(e, grey=grey, max_pixels=max_pixels) for e in ends]
    for end, a in zip(ends, arrays, strict=True):
        check_domain(model, a, end)
    arrays = [resize_crop(a[..., None] if grey else a, model.config.image_size) for a in arrays]
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays]).float(), None


def save_images(images: torch.Tensor | np.ndarray, out: str, *, nrow: int, scale: int = 1) -> str:
    """``out`` ending in "/" (or an existing folder): one PNG per image; otherwise one grid (a single image: the
    image itself, no border). Returns what was written, for the message."""
    arrays = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    path = Path(out)
    if out.endswith(("/", "\\")) or path.is_dir():
        for i, img in enumerate(arrays):
            write_image(path / f"sample_{i:04d}.png", image_grid(img[None], 1, pad=0, scale=scale))
        return f"{len(arrays)} images in {path}/"
    write_image(path, image_grid(arrays, nrow, pad=0 if len(arrays) == 1 else 1, scale=scale))
    return str(path)
