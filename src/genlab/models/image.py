"""What the image families share when they train: an image set at one size, split into training and held-out
parts, served as stateless batches of images and whatever else the family needs (labels, captions, attributes).

A family subclasses :class:`ImageModel` and sets ``needs`` (what its batches carry beside the images) and, where
its config has data-dependent fields (``channels``, ``num_classes``, ``levels``: the discrete values per channel),
inherits ``build``; it adds its own ``evaluate`` and ``preview``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from genlab.data.image_data import ImageBatches, data_levels, load_image_set, split_images
from genlab.data.images import image_grid, write_image
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel, TrainingData, TrainOptions

EVAL_SEED = 1234  # held-out figures draw from their own generator, the same at every evaluation
EVAL_IMAGES = 512  # held-out images scored per evaluation
WHAT_DATA_HAS = {
    "labels": "labels (put the images in one sub-folder per class)",
    "captions": "captions (a NAME.txt beside each image or a captions.jsonl)",
    "attributes": "shapes (its attributes name kind, colour, size, position)",
}


class ImageModel(GenerativeModel):
    """A family trained on images (``--data``: a folder, ``digits`` or ``shapes``; ``--size``)."""

    trains_on = "image"
    data_help = "a folder of images, 'digits' or 'shapes'"
    unit = "img"
    val_fraction = 0.2
    fine_tunes = True
    #: what batches carry beside images and labels ("", "captions" or "attributes"), and what the data must have
    needs: ClassVar[str] = ""

    @property
    def image_size(self) -> int:
        """The side of the images it draws (default: the config's ``image_size``)."""
        return self.config.image_size

    @classmethod
    def training_size(cls, config: Any, parts: dict[str, GenerativeModel]) -> int:
        """The side of the training images (default: the config's ``image_size``)."""
        return config.image_size

    @classmethod
    def prepare_data(
        cls, source: str, config: Any, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        size = cls.training_size(config, parts)
        if options.size is not None and options.size != size:
            raise GenlabError(f"--size {options.size}: this model works at {size} pixels")
        data = load_image_set(source, size, strict=options.strict, max_pixels=options.max_pixels)
        has = {"labels": data.labels, "captions": data.captions, "attributes": data.attributes}
        if cls.needs and has[cls.needs] is None:
            raise GenlabError(f"--data {source}: a {cls.family} model needs {WHAT_DATA_HAS[cls.needs]}")
        fraction = cls.val_fraction if options.val_fraction is None else options.val_fraction
        train, val = split_images(data, fraction)
        if options.resume_from is None:  # a resumed run keeps its config
            if hasattr(config, "channels"):
                config.channels = data.images.shape[1]
            if hasattr(config, "num_classes") and "num_classes" not in options.explicit:
                config.num_classes = data.num_classes if data.labels is not None else 0
            if hasattr(config, "levels") and "levels" not in options.explicit:  # discrete pixel values
                config.levels = data_levels(train.images)
        describe = (
            f"{len(data)} images of {size}×{size}×{data.images.shape[1]}, {data.num_classes or 'no'} classes; "
            f"{len(train)} train, {len(val)} held out"
        )
        return TrainingData(train, val, describe, {"class_names": data.class_names}, size=size)

    @property
    def conditional(self) -> bool:
        """Trained with class labels (a config with ``num_classes`` > 0)."""
        return getattr(self.config, "num_classes", 0) > 0

    def check_class(self, y: torch.Tensor | int | None) -> torch.Tensor | None:
        """Class labels as asked for (``--class``): an int or ``B`` labels in 0 … num_classes − 1; None stays None."""
        if y is None:
            return None
        if not self.conditional:
            raise GenlabError("--class: this model is unconditional (it was trained without labels)")
        y = torch.as_tensor(y, dtype=torch.long, device=self.device)
        if y.numel() and (y.min() < 0 or y.max() >= self.config.num_classes):
            raise GenlabError(f"--class {y.tolist()}: classes are 0 … {self.config.num_classes - 1}")
        return y

    def sample_classes(self, n: int, cond: Any, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The ``n`` classes to draw (``cond`` checked by :meth:`check_class`): None for an unconditional model; for a
        conditional one the asked class for every sample, or, with none asked, each sample's class drawn uniformly
        (such a model never learned to draw without a class)."""
        y = self.check_class(cond)
        if not self.conditional:
            return None
        if y is None:
            return torch.randint(self.config.num_classes, (n,), generator=generator, device=self.device)
        return y.expand(n) if y.dim() == 0 else y

    def likelihood(self, val: Any) -> dict[str, Any]:
        """Held-out likelihood figures too costly for every training-time ``evaluate`` (``bits_per_dim`` with its
        ``likelihood`` kind), measured by ``eval image`` and ``compare image``; default: none beyond ``evaluate``'s."""
        return {}

    def network_evals(self, **controls: Any) -> int:
        """Network evaluations one sample costs with these sampler ``controls`` (default: 1, one forward pass)."""
        return 1

    def sample_grid(self, path: Path, seed: int, **controls: Any) -> Path:
        """A preview of samples: one row of 8 per class (up to 10) for a conditional model, else 8×8."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        if self.conditional:
            classes = torch.arange(min(self.config.num_classes, 10), device=self.device).repeat_interleave(8)
            images = self.sample(len(classes), classes, generator=g, **controls)
        else:
            images = self.sample(64, generator=g, **controls)
        return write_grid(path, images, 8, self.image_size)

    def batches(self, data: TrainingData, *, batch_size: int, seed: int, rank: int) -> Callable[[int], Any]:
        extra = self.needs if self.needs in ("captions", "attributes") else ""
        return ImageBatches(data.train, batch_size=batch_size, seed=seed, rank=rank, extra=extra)


def write_grid(path: Path, images: torch.Tensor, nrow: int, size: int, *, fill: int = 48) -> Path:
    """Images ``N×C×H×W`` in [0, 1] as one PNG grid, enlarged (nearest) to about ``fill`` pixels a tile."""
    return write_image(path, image_grid(images.cpu().numpy(), nrow, scale=max(1, fill // size)))
