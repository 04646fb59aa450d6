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
from genlab.eval.manifold import K, memorisation, prdc
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
) -> dict[str, Any]:
    """FID/KID of ``samples`` against ``real`` (both ``N×C×H×W`` in [0, 1]) with every feature set given, and
    class accuracy when ``labels`` and a ``classifier`` are given (for unconditional samples, how evenly they cover
    the classifier's classes: :func:`class_coverage`). ``real_cache`` keeps real features across calls."""
    cache = real_cache if real_cache is not None else {}
    out: dict[str, Any] = {}
    if classifier is not None:
        if "classifier" not in cache:
            cache["classifier"] = classifier.predict(at_size(real, classifier.config.image_size))[1].numpy()
        preds, feats = classifier.predict(at_size(samples, classifier.config.image_size))
        out["fid_classifier"] = fid(cache["classifier"], feats.numpy())
        out["kid_classifier"] = kid(cache["classifier"], feats.numpy())
        out |= _prdc(cache["classifier"], feats.numpy(), "classifier")
        if labels is not None:
            if int(labels.max()) >= classifier.config.num_classes:
                raise GenlabError("the classifier knows fewer classes than the model draws")
            out["class_accuracy"] = (preds == labels).float().mean().item()
        else:
            out |= class_coverage(preds, classifier.config.num_classes)
    if inception is not None:
        if "inception" not in cache:
            cache["inception"] = inception(real)
        feats = inception(samples)
        out["fid_inception"] = fid(cache["inception"], feats)
        out["kid_inception"] = kid(cache["inception"], feats)
        out |= _prdc(cache["inception"], feats, "inception")
    if not out:
        raise GenlabError("no features to compare with: give a --classifier or install genlab[fid] for Inception")
    return out


def _prdc(real: Any, fake: Any, name: str) -> dict[str, float]:
    """Precision, recall, density and coverage (k = 3) on one feature set, named by it; {} for fewer than 4 images."""
    if min(len(real), len(fake)) <= K:
        return {}
    return {f"{key}_{name}": value for key, value in prdc(real, fake).items()}


def at_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images in [0, 1] resampled (bicubic) to the side a judge network was trained at; real and generated images
    go through the same resampling, so the comparison stays fair."""
    if images.shape[-1] == size:
        return images
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def class_coverage(preds: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Mode collapse, seen through a classifier: the share of unconditional samples given each class, its KL
    divergence from uniform (nats; 0 when every class is as common, log K when one class takes all) and the
    smallest share."""
    share = torch.bincount(preds.long(), minlength=num_classes).float() / max(1, preds.numel())
    kl = float((share[share > 0] * (share[share > 0] * num_classes).log()).sum())
    return {"class_shares": [round(float(v), 4) for v in share], "class_kl_to_uniform": kl,
            "min_class_share": float(share.min())}  # fmt: skip


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
    inception: bool | InceptionFeatures = False,
    train: Any = None,
    seed: int = 0,
    progress: bool = True,
    real_cache: dict[str, Any] | None = None,
    **controls: Any,
) -> dict[str, Any]:
    """The family's held-out figures on ``reference`` (an ImageSet; diffusion: the denoising loss); with
    ``fid_samples`` > 0 also FID/KID against it
    with Inception features and/or the features of ``judge`` (a clean-image classifier), and the class accuracy of
    the samples as ``judge`` sees them, precision / recall / density / coverage on each feature set, and with
    ``train`` (the training split) how near the samples lie to training images (memorisation). ``controls`` go to the
    sampler (guidance included). ``inception``: True to load Inception-v3, or a loaded one; ``real_cache`` keeps the
    reference's features across calls (the same ``reference`` every time)."""
    figures: dict[str, Any] = {"reference_images": len(reference)}
    figures |= model.evaluate(reference, batches=20, batch_size=64)
    figures |= model.likelihood(reference)
    if fid_samples <= 0:
        return figures
    samples, labels, rate = generate_for_eval(model, fid_samples, seed=seed, progress=progress, **controls)
    figures |= {
        "samples": fid_samples,
        "images_per_s": round(rate, 2),
        "seconds_per_sample": 1.0 / rate,
        "network_evals_per_sample": model.network_evals(**controls),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    figures |= {k: controls[k] for k in ("sampler", "steps", "guidance") if k in controls}
    figures |= image_metrics(
        samples,
        (reference.images + 1) / 2,
        labels=labels,
        classifier=judge,
        inception=InceptionFeatures(model.device) if inception is True else inception or None,
        real_cache=real_cache,
    )
    if train is not None and len(train):
        figures |= memorisation(samples, (reference.images + 1) / 2, (train.images + 1) / 2)
    return figures
