"""The family registry: a family name maps to the module and class that implement it.

Adding a family is one new module in this package and one line here; ``genlab train``,
``generate`` and ``eval`` then work with it.
"""

from __future__ import annotations

import importlib

from genlab.errors import GenlabError

#: family name -> "module:Class"
FAMILIES: dict[str, str] = {
    "ngram": "genlab.models.ngram:NGramLM",
    "lstm": "genlab.models.rnn:LSTMLM",
    "gpt": "genlab.models.gpt:GPT",
    "diffusion": "genlab.models.diffusion:DiffusionModel",
    "classifier": "genlab.models.classifier:ImageClassifier",
    "features": "genlab.models.features:FeatureNet",
    "autoencoder": "genlab.models.autoencoder:Autoencoder",
    "clip": "genlab.models.clip:CLIP",
    "text2image": "genlab.models.text2image:TextToImage",
    "attributes": "genlab.models.attributes:ShapeAttributes",
    "sam": "genlab.models.sam:SamModel",
    "chat": "genlab.models.chat:ChatLM",
    "reward": "genlab.models.reward:RewardModel",
    "rlhf": "genlab.models.rlhf:RLHF",
    "pixelcnn": "genlab.models.pixelcnn:PixelCNN",
    "vae": "genlab.models.vae:VAE",
    "gan": "genlab.models.gan:GAN",
}


#: what ``genlab train KIND`` trains when no --model is given
DEFAULT_FAMILY: dict[str, str] = {"text": "gpt", "image": "diffusion", "segment": "sam"}


def family_class(name: str) -> type:
    """The class registered as ``name`` (imported on first use)."""
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def families_for(kind: str | None) -> list[str]:
    """The families ``genlab train KIND`` can train: those of that modality or trained on that kind of data (or the
    family of that name)."""
    return [f for f in FAMILIES if kind in (None, f, family_class(f).modality, family_class(f).trains_on)]


def get_family(name: str, kind: str | None = None) -> type:
    """The model class registered as ``name`` (one ``genlab train KIND`` trains, if ``kind`` is given); a clear
    error lists the valid names."""
    valid = families_for(kind)
    if name not in valid:
        what = f"{kind} family" if kind else "family"
        raise GenlabError(f"unknown {what} {name!r}; choose one of: {', '.join(valid)}")
    return family_class(name)
