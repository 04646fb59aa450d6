"""Small default models that genlab trained itself; each folder has a MODEL_CARD.md saying how."""

from __future__ import annotations

from pathlib import Path

from genlab.errors import GenlabError

ROOT = Path(__file__).parent

#: task -> folder of the default model for it
DEFAULTS: dict[str, str] = {
    "text": "gpt-kjv",  # genlab generate text
    "image": "diffusion-digits",  # genlab generate image
    "gan": "gan-digits",  # genlab generate image --model gan-digits; the demo's families section
    "vae": "vae-digits",  # genlab generate image --model vae-digits
    "pixelcnn": "pixelcnn-digits",  # genlab generate image --model pixelcnn-digits
    "classifier": "classifier-digits",  # features and class accuracy for genlab eval image --data digits
    "guidance": "classifier-digits-noisy",  # classifier guidance for the default image model
    "text2image": "text2image-shapes",  # genlab generate image --prompt ...
    "clip": "clip-shapes",  # genlab classify image
    "features": "features-shapes",  # the perceptual loss of genlab train autoencoder
    "attributes": "attributes-shapes",  # the judge of genlab eval text2image
    "segment": "sam-scenes",  # genlab segment, genlab.SegmentPredictor; the demo's shapes and photos
    "chat": "chat-kjv",  # genlab chat, genlab label pairs
    "chat-rlhf": "chat-kjv-rlhf",  # genlab chat --model chat-kjv-rlhf; the demo's RLHF column
}


def default_model(task: str) -> Path:
    """The shipped checkpoint directory for ``task`` (e.g. ``"text"``)."""
    if task not in DEFAULTS:
        raise GenlabError(f"no default model for {task!r}; defaults exist for: {', '.join(DEFAULTS)}")
    path = ROOT / DEFAULTS[task]
    if not (path / "config.json").is_file():
        raise GenlabError(f"the default {task} model is not installed ({path} is missing); pass --model DIR")
    return path


def shipped_or_path(name: str | Path) -> Path:
    """A checkpoint the user named: a path, or the name of a shipped model (``gpt-kjv``) where no such path
    exists."""
    path = Path(name).expanduser()
    if not path.exists() and str(name) in DEFAULTS.values():
        return ROOT / str(name)
    return path
