"""The base class every model family subclasses.

A family provides the five parts of a deep generative model (see DESIGN.md): its formulation in
the module docstring and config dataclass, its networks built from ``genlab.nn``, the objective
``loss(batch)``, and inference through ``sample`` and, where tractable, ``log_prob``. The one
``Trainer`` does the optimization for every family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from genlab.errors import GenlabError


class GenerativeModel(nn.Module):
    """A model of p(x | y).

    Class attributes a family sets:
        family:   registry name, e.g. ``"gpt"``.
        modality: what x is: ``"text"``, ``"image"``, ...
        Config:   the config dataclass; ``Config()`` is a valid default.
        presets:  ``{"tiny" | "small" | "base": {field: value}}``; a preset may set model-config
                  fields and trainer fields (``genlab.train.TrainConfig``) alike.
        trains_by_counting: True for families fit in closed form (n-gram), not by the Trainer.
        no_samples: for a family that draws no samples (a classifier, an encoder), what it does instead.
    """

    family: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    Config: ClassVar[type] = object
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    trains_by_counting: ClassVar[bool] = False
    no_samples: ClassVar[str] = ""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.run: dict[str, Any] = {}  # config.json's "run" record once loaded from a checkpoint

    def forward(self, batch: Any) -> torch.Tensor:
        # The Trainer calls the module itself (so DDP and torch.compile wrap the objective).
        return self.loss(batch)

    def loss(self, batch: Any) -> torch.Tensor:
        """The scalar objective to minimize on ``batch``."""
        raise NotImplementedError

    def sample(self, n: int, cond: Any = None, *, generator: torch.Generator | None = None, **controls: Any) -> Any:
        """Draw ``n`` samples, conditioned on ``cond`` where the family takes a condition."""
        article = "an" if self.family[:1] in tuple("aeiou") else "a"
        raise GenlabError(f"{article} {self.family} model draws no samples: {self.no_samples or 'not implemented'}")

    def log_prob(self, x: Any, cond: Any = None) -> torch.Tensor:
        """log p(x | cond) in nats, for families with a tractable density or bound."""
        raise NotImplementedError(f"{self.family} has no tractable log-likelihood")

    # Checkpoint hooks: families with extra files (a tokenizer, ...) override these.
    def save_extras(self, directory: Path) -> None:
        """Write the family's extra files into a checkpoint directory."""

    def load_extras(self, directory: Path) -> None:
        """Read the family's extra files from a checkpoint directory."""

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load tensors read from ``model.safetensors``; strict, with a clear error on mismatch."""
        from genlab.train.checkpoint import load_state_strict

        load_state_strict(self, state)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"family={self.family}"
