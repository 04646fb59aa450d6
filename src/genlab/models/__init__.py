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
}


def get_family(name: str, modality: str | tuple[str, ...] | None = None) -> type:
    """The model class registered as ``name`` (of ``modality``, if given); a clear error lists the valid names."""
    wanted = (modality,) if isinstance(modality, str) else modality
    valid = [f for f in FAMILIES if wanted is None or family_modality(f) in wanted]
    if name not in FAMILIES or name not in valid:
        what = f"{'/'.join(wanted)} family" if wanted else "family"
        raise GenlabError(f"unknown {what} {name!r}; choose one of: {', '.join(valid)}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def family_modality(name: str) -> str:
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls).modality
