"""``genlab train image|features|autoencoder|clip|attributes|text2image``: an image set → a model, with held-out
figures and sample grids along the way.

Each family has a recipe: what its batches carry (labels, captions or attributes), how a fresh model is built from
the data (channels, classes, a tokenizer, the frozen parts of a pipeline), what it reports on held-out images, and
what it draws every ``sample_every`` steps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genlab.data.image_data import ImageBatches, ImageSet, load_image_set, split_images
from genlab.data.images import image_grid, write_image
from genlab.errors import GenlabError
from genlab.runtime import best_device, seed_everything
from genlab.sampling.diffusion import add_noise
from genlab.train import distributed
from genlab.train.runs import plan_run
from genlab.train.trainer import Trainer

EVAL_SEED = 1234
EVAL_IMAGES = 512
#: prompts drawn every ``sample_every`` steps while a text-to-image model trains
PREVIEW_PROMPTS = (
    "a large red circle in the center",
    "a small blue square at the top left",
    "a medium green triangle at the bottom",
    "a large yellow star at the right",
    "a small purple diamond at the bottom right",
    "a medium orange cross at the top",
    "a large blue circle on a striped background",
    "",
)


# --- held-out figures -------------------------------------------------------------------------------
def diffusion_val_loss(model: Any, val: ImageSet, batches: int, batch_size: int) -> float:
    """Mean denoising loss on held-out images at fixed random (t, ε): comparable from one evaluation to the next."""
    g = torch.Generator(device=model.device).manual_seed(EVAL_SEED)
    total, n = 0.0, 0
    for i in range(0, min(len(val), batches * batch_size), batch_size):
        x = val.images[i : i + batch_size].to(model.device)
        y = val.labels[i : i + batch_size].to(model.device) if val.labels is not None else None
        total += model.loss((x, y), generator=g).item() * x.shape[0]
        n += x.shape[0]
    return total / n


def classifier_figures(model: Any, val: ImageSet) -> dict[str, float]:
    """Held-out accuracy on clean images (and, for a noisy classifier, the loss over random noise levels)."""
    preds, _ = model.predict((val.images + 1) / 2)
    out = {"val_accuracy": (preds == val.labels).float().mean().item()}
    if model.config.noisy:
        g = torch.Generator().manual_seed(EVAL_SEED)
        t = torch.randint(0, model.config.timesteps, (len(val),), generator=g)
        x_t = add_noise(val.images, torch.randn(val.images.shape, generator=g), t, model.alphas_cumprod.cpu())
        logits = torch.cat(
            [
                model.logits(x_t[i : i + 256].to(model.device), t[i : i + 256].to(model.device)).cpu()
                for i in range(0, len(val), 256)
            ]
        )
        out["val_noisy_loss"] = F.cross_entropy(logits, val.labels).item()
        out["val_noisy_accuracy"] = (logits.argmax(-1) == val.labels).float().mean().item()
    return out


def reconstruction_figures(model: Any, val: ImageSet) -> dict[str, float]:
    """PSNR and SSIM (on [0, 1] images) and L1 of held-out reconstructions through the latent mean."""
    from genlab.eval.fidelity import batch_ssim, psnr

    x = (val.images[:EVAL_IMAGES] + 1) / 2
    rec = model.reconstruct(x)
    return {
        "val_psnr": psnr(rec.numpy(), x.numpy()),
        "val_ssim": batch_ssim(rec.numpy(), x.numpy()),
        "val_l1": (rec - x).abs().mean().item(),
    }


def clip_figures(model: Any, val: ImageSet) -> dict[str, float]:
    """Held-out image→caption retrieval accuracy among 128 candidates, and zero-shot accuracy on the class names."""
    n = min(len(val), 128)
    img = model.encode_image(val.images[:n].to(model.device))
    txt = model.encode_text(val.captions[:n]).pooled
    hits = (img @ txt.T).argmax(-1).tolist()  # a duplicate caption counts as a hit
    out = {"val_retrieval_top1": sum(val.captions[h] == val.captions[i] for i, h in enumerate(hits)) / n}
    if val.labels is not None and val.class_names:
        probs = model.zero_shot((val.images[:EVAL_IMAGES] + 1) / 2, [f"a {c}" for c in val.class_names])
        out["val_zero_shot_accuracy"] = (probs.argmax(-1) == val.labels[:EVAL_IMAGES]).float().mean().item()
    return out


def attribute_figures(model: Any, val: ImageSet) -> dict[str, float]:
    pred = model.predict((val.images[:EVAL_IMAGES] + 1) / 2)
    return {f"val_{k}_accuracy": (p == val.attributes[k][:EVAL_IMAGES]).float().mean().item() for k, p in pred.items()}


def text2image_val_loss(model: Any, val: ImageSet) -> dict[str, float]:
    torch.manual_seed(EVAL_SEED)  # on a forked RNG (see Trainer): the same t, ε and dropout at every evaluation
    x = val.images[:EVAL_IMAGES].to(model.device)
    return {"val_loss": model.loss((x, None, val.captions[:EVAL_IMAGES])).item()}


# --- pictures along the way -------------------------------------------------------------------------
def sample_grid(model: Any, path: Path, *, seed: int = 0, steps: int = 50, per_class: int = 8) -> Path:
    """A grid from DDIM: one row per class (up to 10) or 8×8 unconditional samples."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    if model.conditional:
        classes = torch.arange(min(model.config.num_classes, 10)).repeat_interleave(per_class)
        images = model.sample(len(classes), classes, generator=g, steps=steps)
        nrow = per_class
    else:
        images = model.sample(64, generator=g, steps=steps)
        nrow = 8
    scale = max(1, 48 // model.config.image_size)
    return write_image(path, image_grid(images.cpu().numpy(), nrow, scale=scale))


def prompt_grid(model: Any, path: Path, *, seed: int = 0, steps: int = 50, guidance: float = 3.0) -> Path:
    """One row per preview prompt, four samples each."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    prompts = [p for p in PREVIEW_PROMPTS for _ in range(4)]
    images = model.sample(len(prompts), prompts, generator=g, steps=steps, guidance=guidance)
    return write_image(path, image_grid(images.cpu().numpy(), 4, scale=max(1, 64 // model.image_size)))


def reconstruction_grid(model: Any, path: Path, val: ImageSet) -> Path:
    """Held-out images (odd rows) above their reconstructions (even rows)."""
    x = (val.images[:32] + 1) / 2
    rec = model.reconstruct(x)
    rows = torch.cat([torch.stack([x[i : i + 8], rec[i : i + 8]]) for i in range(0, 32, 8)]).flatten(0, 1)
    return write_image(path, image_grid(rows.numpy(), 8, scale=max(1, 64 // model.config.image_size)))


# --- recipes -----------------------------------------------------------------------------------------
@dataclass
class Recipe:
    extra: str  # what batches carry beside images and labels: "", "captions" or "attributes"
    evaluate: Callable[[Any, ImageSet, Any], dict[str, Any]]
    draw: Callable[[Any, Path, ImageSet, int], Any] | None = None


RECIPES: dict[str, Recipe] = {
    "diffusion": Recipe(
        "",
        lambda m, val, t: {"val_loss": diffusion_val_loss(m, val, t.eval_batches, t.batch_size)},
        lambda m, path, val, seed: sample_grid(m, path, seed=seed),
    ),
    "classifier": Recipe("", lambda m, val, t: classifier_figures(m, val)),
    "features": Recipe("", lambda m, val, t: {"val_loss": _seeded_loss(m, val)}),
    "attributes": Recipe("attributes", lambda m, val, t: attribute_figures(m, val)),
    "autoencoder": Recipe(
        "",
        lambda m, val, t: reconstruction_figures(m, val),
        lambda m, path, val, seed: reconstruction_grid(m, path, val),
    ),
    "clip": Recipe("captions", lambda m, val, t: clip_figures(m, val)),
    "text2image": Recipe(
        "captions",
        lambda m, val, t: text2image_val_loss(m, val),
        lambda m, path, val, seed: prompt_grid(m, path, seed=seed),
    ),
}


def _seeded_loss(model: Any, val: ImageSet) -> float:
    torch.manual_seed(EVAL_SEED)
    return model.loss((val.images[:EVAL_IMAGES].to(model.device), None, None)).item()


def build_model(cls: type, mcfg: Any, data: ImageSet, parts: dict[str, str | None], explicit: set[str]) -> Any:
    """A fresh model whose data-dependent fields come from ``data`` (channels, classes, tokenizer) and, for a
    pipeline, from its frozen parts (``parts``: autoencoder, text_encoder)."""
    if hasattr(mcfg, "channels"):
        mcfg.channels = data.images.shape[1]
    if hasattr(mcfg, "num_classes") and "num_classes" not in explicit:
        mcfg.num_classes = data.num_classes if data.labels is not None else 0
    family = cls.family
    if family == "clip":
        from genlab.models.clip import caption_tokenizer

        tok = caption_tokenizer([c for c in data.captions or [] if c])
        mcfg.vocab_size = tok.vocab_size
        mcfg.validate()
        return cls(mcfg, tok)
    if family == "text2image":
        return _build_text2image(cls, mcfg, data, parts)
    mcfg.validate()
    return cls(mcfg)


def _build_text2image(cls: type, mcfg: Any, data: ImageSet, parts: dict[str, str | None]) -> Any:
    import genlab
    from genlab.config import to_dict
    from genlab.models.text2image import fingerprint

    if not parts.get("autoencoder") or not parts.get("text_encoder"):
        raise GenlabError("text2image needs --autoencoder DIR and --text-encoder DIR (train them first)")
    ae = genlab.load(parts["autoencoder"], task="autoencoder")
    clip = genlab.load(parts["text_encoder"], task="clip")
    if ae.config.image_size != data.images.shape[-1] or ae.config.channels != data.images.shape[1]:
        raise GenlabError(
            f"--autoencoder {parts['autoencoder']} works on {ae.config.image_size}×{ae.config.image_size}×"
            f"{ae.config.channels} images, the data is {data.images.shape[-1]}×{data.images.shape[-1]}×"
            f"{data.images.shape[1]} (match --size)"
        )
    with torch.no_grad():
        z = torch.cat([ae.encode(data.images[i : i + 256]) for i in range(0, min(len(data), 2048), 256)])
    mcfg.latent_scale = float(1.0 / z.std())
    mcfg.autoencoder, mcfg.text_encoder = to_dict(ae.config), to_dict(clip.config)
    mcfg.autoencoder_fingerprint, mcfg.text_encoder_fingerprint = fingerprint(ae), fingerprint(clip)
    mcfg.validate()
    model = cls(mcfg)
    model.autoencoder.load_state_dict(ae.state_dict())
    model.clip.load_state_dict(clip.state_dict())
    model.clip.tokenizer = clip.tokenizer
    return model


def train_image(
    *,
    data: str | None,
    out: str | Path,
    modality: str = "image",
    family: str | None = None,
    preset: str = "tiny",
    overrides: dict[str, Any] | None = None,
    size: int | None = None,
    parts: dict[str, str | None] | None = None,
    strict: bool = False,
    val_fraction: float = 0.2,
    resume: bool = False,
    init: str | Path | None = None,
    device: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train a model of ``family`` (default: the one named by ``modality``) on ``data`` (``digits``, ``shapes`` or
    a folder) into ``out``. ``overrides`` may set any model or trainer field; ``size`` is the training size.
    ``parts``: the frozen autoencoder / text encoder of a text-to-image model, the perceptual network of an
    autoencoder (checkpoint directories). ``init``: a checkpoint of the same family whose weights (and model
    config) the run starts from — fine-tuning; ``overrides`` may change fields that keep the weights' shapes."""
    out = Path(out)
    family = family or ("diffusion" if modality == "image" else modality)
    overrides = dict(overrides or {})
    if size is not None and family != "text2image":
        overrides.setdefault("image_size", size)
    if not resume and family not in RECIPES:
        raise GenlabError(f"unknown {modality} family {family!r}; choose one of: {', '.join(RECIPES)}")
    if init is not None and (resume or family in ("clip", "text2image")):
        raise GenlabError(
            "--init starts a new run from another checkpoint's weights: not with --resume, and not for clip or "
            "text2image (their tokenizer and frozen parts come with the data and --autoencoder/--text-encoder)"
        )
    init = Path(init) if init is not None else None
    plan = plan_run(out, modality=None, family=family, preset=preset, overrides=overrides, resume=resume, init=init)
    cls, mcfg, tcfg = plan.cls, plan.model_config, plan.train_config
    recipe = RECIPES[cls.family]
    if resume:
        data = data or plan.saved.get("data")
        val_fraction = plan.saved.get("val_fraction", val_fraction)
    if data is None:
        raise GenlabError("--data is required: a folder of images, 'digits' or 'shapes'")
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    if size is not None and _image_size(cls, mcfg, parts or {}) != size:
        raise GenlabError(f"--size {size}: this model works at {_image_size(cls, mcfg, parts or {})} pixels")
    size = _image_size(cls, mcfg, parts or {})
    dataset = load_image_set(data, size, strict=strict)
    if recipe.extra == "attributes" and dataset.attributes is None:
        raise GenlabError(
            f"--data {data}: the attribute classifier needs shapes (it names kind, colour, size, position)"
        )
    if cls.family == "classifier" and dataset.labels is None:
        raise GenlabError(f"--data {data}: a classifier needs labels (put the images in one sub-folder per class)")
    train_set, val_set = split_images(dataset, val_fraction)
    say(
        f"data: {len(dataset)} images of {size}×{size}×{dataset.images.shape[1]}, "
        f"{dataset.num_classes or 'no'} classes; {len(train_set)} train, {len(val_set)} held out"
    )
    info, dev = distributed.setup(best_device(device))
    seed_everything(tcfg.seed + info.rank)
    model = _rebuild(cls, mcfg, out) if resume else build_model(cls, mcfg, train_set, parts or {}, plan.explicit)
    if init is not None:
        _load_init(model, init)
    if cls.family == "autoencoder" and mcfg.perceptual_weight > 0:
        import genlab
        from genlab.assets import default_model

        perceptual = (parts or {}).get("perceptual") or plan.saved.get("perceptual") or default_model("features")
        model.attach_perceptual(genlab.load(perceptual, task="features"))
    say(f"model: {cls.family}, {model.num_params() / 1e6:.2f} M parameters, device {dev}")
    run_info = {"data": str(data), "val_fraction": val_fraction, "class_names": dataset.class_names}
    run_info |= {k: str(v) for k, v in (parts or {}).items() if v}
    if init is not None:
        run_info["init"] = str(init)
    trainer = Trainer(
        model,
        tcfg,
        out_dir=out,
        items_per_batch=tcfg.batch_size,
        unit="img",
        run=run_info,
        device=dev,
        dist=info,
        batches=ImageBatches(train_set, batch_size=tcfg.batch_size, seed=tcfg.seed, rank=info.rank, extra=recipe.extra),
        evaluate=(lambda m: recipe.evaluate(m, val_set, tcfg)) if len(val_set) else None,
        on_sample=(lambda m, step: recipe.draw(m, out / "samples" / f"step_{step:06d}.png", val_set, tcfg.seed))
        if recipe.draw and len(val_set)
        else None,
        quiet=quiet,
    )
    result = trainer.fit(resume=resume)
    distributed.teardown(info)
    return result.summary(out, cls.family)


def _image_size(cls: type, mcfg: Any, parts: dict[str, str | None]) -> int:
    """The training size: the model's, or, for a text-to-image model, its autoencoder's."""
    if cls.family != "text2image":
        return mcfg.image_size
    if mcfg.autoencoder:
        return mcfg.autoencoder["image_size"]
    if not parts.get("autoencoder"):
        raise GenlabError("text2image needs --autoencoder DIR and --text-encoder DIR (train them first)")
    from genlab.checkpoint import read_config

    return read_config(parts["autoencoder"])["config"]["image_size"]


def _rebuild(cls: type, mcfg: Any, out: Path) -> Any:
    """The model of a run to resume, built from its config (weights come from its training state); the families
    with a tokenizer read it from the run."""
    from genlab.data.tokenizers import load_tokenizer

    if cls.family == "clip":
        return cls(mcfg, load_tokenizer(out))
    model = cls(mcfg)
    if cls.family == "text2image":
        model.clip.tokenizer = load_tokenizer(out)
    return model


def _load_init(model: Any, init: Path) -> None:
    """Copy the weights of checkpoint ``init`` (its EMA weights where it kept them) into ``model``."""
    from genlab.checkpoint import load_model, load_state_strict

    state = {k: v.float() if v.is_floating_point() else v for k, v in load_model(init).state_dict().items()}
    load_state_strict(model, state, f"--init {init}: its weights do not fit this model (did --set change its shape?)")
