"""How well a text-to-image model follows its prompts, and how good its autoencoder is.

Prompt fidelity: for held-out ``shapes`` captions (scenes the training stream never drew), generate one image per
caption and let an attribute classifier trained on real ``shapes`` images (:mod:`genlab.models.attributes`) read
back the kind, colour, size and position; report the share of images right on each attribute and on all four, for
several guidance scales. The same judge reads the autoencoder's reconstructions of the real images: a ceiling, since
the diffusion model can only draw what the decoder can. FID against the real images of the same captions with the
attribute classifier's features (and Inception-v3 where ``genlab[fid]`` is installed).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from genlab.data.image_data import ImageSet, load_shapes
from genlab.eval.fid import InceptionFeatures, fid, inception_weights
from genlab.eval.fidelity import batch_ssim, psnr

HELD_OUT_SEED = 1  # training draws shapes from seed 0; these scenes come from another stream


def held_out_shapes(size: int, n: int) -> ImageSet:
    return load_shapes(size, count=n, seed=HELD_OUT_SEED)


@torch.no_grad()
def judge_features(judge: Any, images01: torch.Tensor) -> torch.Tensor:
    return torch.cat([judge.trunk(images01[i : i + 256].to(judge.device) * 2 - 1)[0].cpu()
                      for i in range(0, images01.shape[0], 256)])  # fmt: skip


def prompt_fidelity(
    model: Any, judge: Any, *, samples: int = 200, guidance: tuple[float, ...] = (0.0, 1.0, 3.0, 5.0), seed: int = 0,
    inception: bool = False, batch_size: int = 100, **sampling: Any,
) -> dict[str, Any]:  # fmt: skip
    """Per-attribute accuracy, all-four accuracy, FID and images/s at each guidance scale."""
    real = held_out_shapes(model.image_size, samples)
    real01 = (real.images + 1) / 2
    real_feats = judge_features(judge, real01).numpy()
    incep = InceptionFeatures(model.device) if inception and inception_weights() is not None else None
    real_incep = incep(real01) if incep else None
    out: dict[str, Any] = {"samples": samples, "prompts": "held-out shapes captions (one object each)"}
    out["reconstructed"] = attribute_ceiling(model.autoencoder, judge, real)
    for w in guidance:
        g = torch.Generator(device=model.device).manual_seed(seed)
        start = time.perf_counter()
        images = torch.cat([model.sample(len(real.captions[i : i + batch_size]), real.captions[i : i + batch_size],
                                         generator=g, guidance=w, **sampling).cpu()
                            for i in range(0, samples, batch_size)])  # fmt: skip
        rate = samples / (time.perf_counter() - start)
        pred = judge.predict(images)
        right = {k: (pred[k] == real.attributes[k]).float() for k in pred}
        row = {f"{k}_accuracy": v.mean().item() for k, v in right.items()}
        row["all_accuracy"] = torch.stack(list(right.values())).prod(0).mean().item()
        row["fid_attributes"] = fid(real_feats, judge_features(judge, images).numpy())
        if incep is not None:
            row["fid_inception"] = fid(real_incep, incep(images))
        row["images_per_s"] = rate
        out[f"guidance_{w:g}"] = row
    return out


def attribute_ceiling(ae: Any, judge: Any, data: ImageSet, rec01: torch.Tensor | None = None) -> dict[str, float]:
    """The judge's reading of the autoencoder's reconstructions of ``data`` (which carries ``attributes``): the
    share right on each attribute, the most a diffusion model decoded by ``ae`` can reach."""
    rec01 = ae.reconstruct((data.images + 1) / 2) if rec01 is None else rec01
    pred = judge.predict(rec01)
    return {f"{k}_accuracy": (v == data.attributes[k]).float().mean().item() for k, v in pred.items()}


def reconstruction_quality(ae: Any, data: ImageSet, *, inception: bool = False, judge: Any = None) -> dict[str, Any]:
    """PSNR, SSIM and rFID (FID between reconstructions and originals) of an autoencoder on ``data``; with a
    ``judge`` and ``data`` that carries attributes (``shapes``), also :func:`attribute_ceiling` as ``reconstructed``."""
    x = (data.images + 1) / 2
    rec = ae.reconstruct(x)
    out: dict[str, Any] = {"images": len(data), "psnr": psnr(rec.numpy(), x.numpy()),
                           "ssim": batch_ssim(rec.numpy(), x.numpy()), "l1": (rec - x).abs().mean().item()}  # fmt: skip
    if inception and inception_weights() is not None:
        net = InceptionFeatures(ae.device)
        out["rfid_inception"] = fid(net(x), net(rec))
    if judge is not None and data.attributes is not None:
        out["reconstructed"] = attribute_ceiling(ae, judge, data, rec)
    return out
