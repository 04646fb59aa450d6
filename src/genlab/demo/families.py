"""The ``genlab demo`` section for the image families: the shipped GAN, VAE, PixelCNN and diffusion models of the
digits side by side — one row of samples per class from each — and a table measured as the page is made: network
evaluations and seconds per sample, parameters, the share of samples the digits classifier reads as the class asked
for, and the held-out likelihood with its kind where it is cheap to compute."""

from __future__ import annotations

import html
import time
from pathlib import Path

import torch

from genlab.checkpoint import load_model
from genlab.data.images import image_grid, write_image
from genlab.eval.image import at_size, reference_images

FAMILIES = (("gan", "GAN"), ("vae", "VAE"), ("pixelcnn", "PixelCNN"), ("image", "diffusion"))  # task, label
PER_CLASS = 4
FAST = {"sampler": "dpmpp", "steps": 20}  # for the families with a many-step sampler (diffusion)
CHEAP = {"iwae_samples": 64}  # the VAE's bound: cheap enough for a page (its model card gives k = 5,000)


def families_section(out_dir: Path, seed: int) -> str:
    judge = load_model(task="classifier")
    classes = torch.arange(10).repeat_interleave(PER_CLASS)
    rows, grids = [], []
    for task, label in FAMILIES:
        model = load_model(task=task)
        controls = {k: v for k, v in FAST.items() if k in model.sampling_controls}  # a family's own sampler
        asked = classes if model.conditional else None
        model.sample(2, None if asked is None else asked[:2], generator=torch.Generator().manual_seed(seed), **controls)
        start = time.perf_counter()
        images = model.sample(len(classes), asked, generator=torch.Generator().manual_seed(seed), **controls)
        per_sample = (time.perf_counter() - start) / len(classes)
        read = judge.predict(at_size(images, judge.config.image_size))[0]
        if model.conditional:
            accuracy = f"{float((read == classes).float().mean()):.0%} as asked"
        else:  # an unconditional model: how many of the classes its samples reach (mode collapse)
            accuracy = f"unconditional: {len(read.unique())} of 10 classes"
        name = f"families_{model.family}.png"
        size = model.image_size
        write_image(out_dir / name, image_grid(images.numpy(), PER_CLASS * 2, scale=max(1, 32 // size)))
        grids.append(f"<td><b>{label}</b><br><img class='px' src='{name}' alt='{label} samples'></td>")
        rows.append(_row(label, model, controls, per_sample, accuracy))
    return (
        "<h2>Image families side by side: GAN, VAE, PixelCNN, diffusion</h2>"
        "<p>Four models of the same digits, each trained by genlab (model cards in <code>src/genlab/assets/</code>); "
        "four samples of each class 0–9, two classes a row (the GAN is unconditional: 40 samples of whatever digit "
        "it draws). The GAN draws in one network evaluation, the VAE in one "
        "(its decoder), the PixelCNN in one per pixel, diffusion in one per step. Compare them yourself: "
        "<code>genlab compare image --data digits --budget 2m --seeds 3 --out report</code>.</p>"
        f"<table><tr>{''.join(grids)}</tr></table>"
        "<table><tr><th>family</th><th>size</th><th>evals / sample</th><th>ms / sample</th><th>parameters</th>"
        "<th>classes read back by the digits classifier</th><th>held-out likelihood</th></tr>"
        + "".join(rows)
        + "</table>"
        "<p>Measured now, on this machine. The likelihood is in bits per dimension on the 17 grey levels of the 8×8 "
        "digits (uniform: 4.09) where the model works at 8×8; the diffusion model works at 16×16, another pixel "
        "scale, so its bound is not put beside the others here (<code>genlab compare image</code> trains all four "
        "at one size).</p>"
    )


def _row(label: str, model: torch.nn.Module, controls: dict, per_sample: float, accuracy: str) -> str:
    cells = [label, f"{model.image_size}×{model.image_size}", str(model.network_evals(**controls)),
             f"{per_sample * 1000:.2f}", f"{model.num_params():,}", accuracy, _likelihood(model)]  # fmt: skip
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _likelihood(model: torch.nn.Module) -> str:
    """The held-out likelihood cell, from the family's own ``evaluate`` (its ``likelihood`` kind: exact, bound or
    none), for the models that work at the digits' own 8×8; "–" for another pixel scale."""
    if model.image_size != 8:
        return "–"
    for key, value in CHEAP.items():  # a family's own costly setting, lowered for a page
        if hasattr(model.config, key):
            setattr(model.config, key, value)
    figures = model.evaluate(reference_images(model, "digits", "val"))
    kind = figures.get("likelihood", "none")
    if kind == "none":
        return "none (no density)"
    detail = f" (IWAE, k = {figures['iwae_samples']})" if "iwae_samples" in figures else ""
    return f"{figures['bits_per_dim']:.3f} bits/dim, " + ("exact" if kind == "exact" else f"a bound{detail}")
