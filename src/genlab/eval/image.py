"""Sample quality of an image model: FID and KID against held-out real images, and class accuracy.

Two feature sets: Inception-v3 (the field's standard, when ``genlab[fid]`` is installed) and the penultimate
features of a classifier genlab trained on the same data — for small images far from ImageNet (8×8 digits), the
in-domain features are the more telling. Class accuracy: the share of class-conditional samples that the
classifier assigns to the class they were drawn for.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from tqdm.auto import tqdm

from genlab.errors import GenlabError
from genlab.eval.fid import InceptionFeatures, fid, kid
from genlab.io import MAX_PIXELS


def generate_for_eval(
    model: Any, n: int, *, seed: int = 0, batch_size: int = 250, progress: bool = True, **controls: Any
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """``n`` samples in [0, 1] (classes cycling 0 … K-1 for a conditional model), their classes, and images/s."""
    conditional = model.condition == "class" and getattr(model, "conditional", False)
    labels = torch.arange(n) % model.config.num_classes if conditional else None
    g = torch.Generator(device=model.device).manual_seed(seed)
    out = []
    start = time.perf_counter()
    for i in tqdm(range(0, n, batch_size), desc="sampling", disable=not progress, leave=False):
        y = labels[i : i + batch_size].to(model.device) if labels is not None else None
        with torch.no_grad():
            out.append(model.sample(min(batch_size, n - i), y, generator=g, **controls).cpu())
    return torch.cat(out), labels, n / (time.perf_counter() - start)


def image_metrics(
    samples: torch.Tensor,
    real: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    classifier: Any = None,
    inception: InceptionFeatures | None = None,
    real_cache: dict[str, Any] | None = None,
) -> dict[str, float]:
    """FID/KID of ``samples`` against ``real`` (both ``N×C×H×W`` in [0, 1]) with every feature set given, and
    class accuracy when ``labels`` and a ``classifier`` are given. ``real_cache`` keeps real features across calls."""
    cache = real_cache if real_cache is not None else {}
    out: dict[str, float] = {}
    if classifier is not None:
        if "classifier" not in cache:
            cache["classifier"] = classifier.predict(real)[1].numpy()
        preds, feats = classifier.predict(samples)
        out["fid_classifier"] = fid(cache["classifier"], feats.numpy())
        out["kid_classifier"] = kid(cache["classifier"], feats.numpy())
        if labels is not None:
            if int(labels.max()) >= classifier.config.num_classes:
                raise GenlabError("the classifier knows fewer classes than the model draws")
            out["class_accuracy"] = (preds == labels).float().mean().item()
    if inception is not None:
        if "inception" not in cache:
            cache["inception"] = inception(real)
        feats = inception(samples)
        out["fid_inception"] = fid(cache["inception"], feats)
        out["kid_inception"] = kid(cache["inception"], feats)
    if not out:
        raise GenlabError("no features to compare with: give a --classifier or install genlab[fid] for Inception")
    return out


def reference_images(
    model: Any, src: str, split: str = "val", val_fraction: float | None = None, *, max_pixels: int = MAX_PIXELS
) -> Any:
    """The real images to compare with: ``split`` of ``src`` at the model's size (``val``: the held-out part of
    the same seeded split training used)."""
    from genlab.data.image_data import load_image_set, split_images

    data = load_image_set(src, model.config.image_size, max_pixels=max_pixels)
    if data.images.shape[1] != model.config.channels:
        raise GenlabError(f"--data has {data.images.shape[1]} channels but the model makes {model.config.channels}")
    if split == "all":
        return data
    if val_fraction is None:  # 0 is a value: everything is training data
        val_fraction = (model.run or {}).get("val_fraction", 0.2)
    train, val = split_images(data, val_fraction)
    chosen = val if split == "val" else train
    if not len(chosen):
        raise GenlabError(
            f"--split {split} with --val-fraction {val_fraction:g} leaves no images of {src} to compare with; "
            "use --split all, or a --val-fraction that holds some back"
        )
    return chosen


def evaluate_image_model(
    model: Any,
    reference: Any,
    *,
    fid_samples: int = 0,
    judge: Any = None,
    inception: bool = False,
    seed: int = 0,
    progress: bool = True,
    **controls: Any,
) -> dict[str, Any]:
    """The family's held-out figures on ``reference`` (an ImageSet; diffusion: the denoising loss); with
    ``fid_samples`` > 0 also FID/KID against it
    with Inception features and/or the features of ``judge`` (a clean-image classifier), and the class accuracy of
    the samples as ``judge`` sees them. ``controls`` go to the sampler (guidance included)."""
    figures: dict[str, Any] = {"reference_images": len(reference)}
    figures |= model.evaluate(reference, batches=20, batch_size=64)
    if fid_samples <= 0:
        return figures
    samples, labels, rate = generate_for_eval(model, fid_samples, seed=seed, progress=progress, **controls)
    figures |= {"samples": fid_samples, "images_per_s": round(rate, 2)}
    figures |= {k: controls[k] for k in ("sampler", "steps", "guidance") if k in controls}
    figures |= image_metrics(
        samples,
        (reference.images + 1) / 2,
        labels=labels,
        classifier=judge,
        inception=InceptionFeatures(model.device) if inception else None,
    )
    return figures
