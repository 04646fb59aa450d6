"""genlab: a generative-AI lab that runs on your own machine.

It trains, samples, edits and evaluates the generative models of the lecture material, from scratch and offline.
Every model learns p(x | y); see ``docs/`` for the user guide and ``genlab --help`` for the command.

    >>> import genlab
    >>> model = genlab.load()                      # the shipped default text model
    >>> model.sample(1, "In the beginning", max_tokens=50)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genlab.errors import GenlabError
from genlab.version import __version__

__all__ = ["GenlabError", "SegmentPredictor", "__version__", "load", "save"]

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from genlab.models.base import GenerativeModel
    from genlab.segment.predictor import SegmentPredictor


def __getattr__(name: str):  # noqa: ANN202 - lazy: `import genlab` stays free of torch
    if name == "SegmentPredictor":
        from genlab.segment.predictor import SegmentPredictor

        return SegmentPredictor
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")


def load(path: str | Path | None = None, *, task: str | None = None, device: str | None = None) -> GenerativeModel:
    """Load a checkpoint directory (``config.json`` + ``model.safetensors`` + extras) as a ready model.

    With no ``path``, loads the shipped default model for ``task`` (``"text"`` unless given: also ``"image"``,
    ``"classifier"``, ``"guidance"``); with a path, ``task`` checks what the checkpoint holds. Imports torch
    lazily so that ``import genlab`` stays cheap.
    """
    from genlab.checkpoint import load_model

    return load_model(path, task=task, device=device)


def save(model: GenerativeModel, path: str | Path) -> None:
    """Write ``model`` as a checkpoint directory that :func:`load` reads back."""
    from genlab.checkpoint import save_model

    save_model(model, path)
