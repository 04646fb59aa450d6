"""``genlab train image``: an image set → a diffusion model (or an image classifier), with held-out figures and
sample grids along the way."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genlab.data.image_data import ImageBatches, ImageSet, load_image_set, split_images
from genlab.data.images import image_grid, write_image
from genlab.errors import GenlabError
from genlab.runtime import best_device, seed_everything
from genlab.train import distributed
from genlab.train.runs import plan_run
from genlab.train.trainer import Trainer

EVAL_SEED = 1234


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
        from genlab.sampling.diffusion import add_noise

        x_t = add_noise(val.images, torch.randn(val.images.shape, generator=g), t, model.alphas_cumprod.cpu())
        with torch.no_grad():
            logits = torch.cat(
                [
                    model.logits(x_t[i : i + 256].to(model.device), t[i : i + 256].to(model.device)).cpu()
                    for i in range(0, len(val), 256)
                ]
            )
        out["val_noisy_loss"] = F.cross_entropy(logits, val.labels).item()
        out["val_noisy_accuracy"] = (logits.argmax(-1) == val.labels).float().mean().item()
    return out


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


def train_image(
    *,
    data: str | None,
    out: str | Path,
    family: str = "diffusion",
    preset: str = "tiny",
    overrides: dict[str, Any] | None = None,
    strict: bool = False,
    val_fraction: float = 0.2,
    resume: bool = False,
    device: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train a diffusion model or an image classifier on ``data`` (``digits``, ``shapes`` or a folder) into ``out``.

    ``overrides`` may set any model or trainer field; ``image_size`` is the training size (``--size``).
    """
    out = Path(out)
    plan = plan_run(
        out,
        modality=("image", "classifier"),
        family=family,
        preset=preset,
        overrides=dict(overrides or {}),
        resume=resume,
    )
    cls, mcfg, tcfg = plan.cls, plan.model_config, plan.train_config
    if resume:
        data = data or plan.saved.get("data")
        val_fraction = plan.saved.get("val_fraction", val_fraction)
    if data is None:
        raise GenlabError("--data is required: a folder of images, 'digits' or 'shapes'")
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    dataset = load_image_set(data, mcfg.image_size, strict=strict)
    if not resume:
        mcfg.channels = dataset.images.shape[1]
        if "num_classes" not in plan.explicit:
            mcfg.num_classes = dataset.num_classes if dataset.labels is not None else 0
        mcfg.validate()
    if cls.family == "classifier" and dataset.labels is None:
        raise GenlabError(f"--data {data}: a classifier needs labels (put the images in one sub-folder per class)")
    train_set, val_set = split_images(dataset, val_fraction)
    say(
        f"data: {len(dataset)} images of {mcfg.image_size}×{mcfg.image_size}×{mcfg.channels}, "
        f"{dataset.num_classes or 'no'} classes; {len(train_set)} train, {len(val_set)} held out"
    )
    info, dev = distributed.setup(best_device(device))
    seed_everything(tcfg.seed + info.rank)
    model = cls(mcfg)
    say(f"model: {cls.family}, {model.num_params() / 1e6:.2f} M parameters, device {dev}")

    def evaluate(m: Any) -> dict[str, Any]:
        if cls.family == "classifier":
            return classifier_figures(m, val_set)
        return {"val_loss": diffusion_val_loss(m, val_set, tcfg.eval_batches, tcfg.batch_size)}

    def on_sample(m: Any, step: int) -> None:
        sample_grid(m, out / "samples" / f"step_{step:06d}.png", seed=tcfg.seed)

    run_info = {"data": str(data), "val_fraction": val_fraction, "class_names": dataset.class_names}
    trainer = Trainer(
        model,
        tcfg,
        batches=ImageBatches(train_set, batch_size=tcfg.batch_size, seed=tcfg.seed, rank=info.rank),
        out_dir=out,
        evaluate=evaluate if len(val_set) else None,
        on_sample=on_sample if cls.family == "diffusion" else None,
        items_per_batch=tcfg.batch_size,
        unit="img",
        run=run_info,
        device=dev,
        dist=info,
        quiet=quiet,
    )
    result = trainer.fit(resume=resume)
    distributed.teardown(info)
    return {
        "out": str(out),
        "family": cls.family,
        "stopped": result.stopped,
        "step": result.step,
        "loss": result.loss,
        "held_out": result.evals,
    }
