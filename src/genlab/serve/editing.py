"""The Edit tab's jobs, each the library function ``genlab edit`` calls on an uploaded image:

- ``inpaint``: fill a painted hole with PatchMatch, the classic OpenCV / scikit-image fills, or the text-to-image
  model (every method returns the pixels outside the hole exactly as given);
- ``retarget``: a new width (and height) keeping the content (bidirectional similarity);
- ``reshuffle``: move a dragged box; its old place and the seams are re-synthesized;
- ``texture``: grow a larger texture from the upload (image quilting or Efros-Leung);
- ``dip``: a Deep Image Prior task (denoise, dejpeg, inpaint a painted hole, superres), its loss and a preview of
  its output every few steps.

Each checks its input here (``edit_params``: one clear line for each bad value) and reports progress as
``progress`` events; ``job.check()`` inside those callbacks makes Cancel stop the work at its next level, pass or
step. Results go to the history as kind ``edit`` with their parameters.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from genlab.errors import GenlabError
from genlab.serve.jobs import Job
from genlab.serve.store import Store, valid_id

EDITS = ("inpaint", "retarget", "reshuffle", "texture", "dip")
INPAINT_METHODS = ("patchmatch", "telea", "ns", "biharmonic", "diffusion")
TEXTURE_METHODS = ("quilting", "efros-leung")
DIP_TASKS = ("denoise", "dejpeg", "inpaint", "superres")
MAX_OUTPUT_SIDE = 1024  # pixels, for retarget, texture and superres outputs
MAX_EFROS_LEUNG_SECONDS = 120.0  # estimated; beyond it, quilting or a smaller sample is the answer
DIP_PREVIEWS = 20  # previews a DIP job sends at most
PATCH = 9  # the synthesis patch side (SynthesisConfig's default)


def decode_rle(runs: Any, width: int, height: int) -> np.ndarray:
    """A boolean ``height×width`` mask from row-major run lengths that start with a run of False."""
    try:
        counts = [int(r) for r in runs]
    except (TypeError, ValueError):
        raise GenlabError("mask: run lengths must be whole numbers") from None
    if any(c < 0 for c in counts) or sum(counts) != width * height:
        raise GenlabError(f"mask: the run lengths must add up to {width}×{height} = {width * height} pixels")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(height, width)


def _int(raw: dict, key: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise GenlabError(f"{key}: {value!r}; a whole number from {lo} to {hi}")
    return value


def _choice(raw: dict, key: str, choices: tuple[str, ...]) -> str:
    value = str(raw.get(key, choices[0]))
    if value not in choices:
        raise GenlabError(f"{key}: {value!r}; choose one of {', '.join(choices)}")
    return value


def _hole(raw: dict, w: int, h: int) -> np.ndarray:
    if not raw.get("mask"):
        raise GenlabError("paint the area to fill first")
    hole = decode_rle(raw["mask"], w, h)
    if not hole.any():
        raise GenlabError("paint the area to fill first")
    if hole.all():
        raise GenlabError("the painted area covers the whole image: leave some of it to fill from")
    return hole


def edit_params(kind: str, raw: dict, uploads: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An Edit job's checked parameters (kept in the history) and its inputs (the image, a hole)."""
    image_id = str(raw.get("image", ""))
    if not valid_id(image_id) or image_id not in uploads:
        raise GenlabError("image: upload the image first (it is kept for the last 16 uploads)")
    image = uploads[image_id][..., :3]
    h, w = image.shape[:2]
    p: dict[str, Any] = {"op": kind, "seed": _int(raw, "seed", 0, 0, 2**31 - 1), "source": f"{w}×{h}"}
    inputs: dict[str, Any] = {"image": image}
    if kind in ("inpaint", "retarget", "reshuffle") and min(h, w) < PATCH:
        raise GenlabError(f"the image is {w}×{h}; PatchMatch editing needs at least {PATCH} pixels on each side")
    if kind == "inpaint":
        p |= {"method": _choice(raw, "method", INPAINT_METHODS), "prompt": str(raw.get("prompt", ""))[:500]}
        inputs["hole"] = _hole(raw, w, h)
        p["hole_pixels"] = int(inputs["hole"].sum())
    elif kind == "retarget":
        p["width"] = _int(raw, "width", w, PATCH, min(4 * w, MAX_OUTPUT_SIDE))
        p["height"] = _int(raw, "height", h, PATCH, min(4 * h, MAX_OUTPUT_SIDE))
    elif kind == "reshuffle":
        region, to = raw.get("region"), raw.get("to")
        if not (isinstance(region, list) and len(region) == 4 and all(isinstance(v, int) for v in region)):
            raise GenlabError("region: [x0, y0, x1, y1], the box to move (drag it on the image)")
        x0, y0, x1, y1 = region
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise GenlabError(f"region: {region} must satisfy 0 ≤ x0 < x1 ≤ {w} and 0 ≤ y0 < y1 ≤ {h}")
        if not (isinstance(to, list) and len(to) == 2 and all(isinstance(v, int) for v in to)):
            raise GenlabError("to: [x, y], the box's new top-left corner")
        if not (0 <= to[0] <= w - (x1 - x0) and 0 <= to[1] <= h - (y1 - y0)):
            raise GenlabError(f"to: {to}; the {x1 - x0}×{y1 - y0} box must stay inside the {w}×{h} image")
        if list(to) == [x0, y0]:
            raise GenlabError("to: the box has not moved; drag it to its new place")
        p |= {"region": region, "to": to}
    elif kind == "texture":
        p["method"] = _choice(raw, "method", TEXTURE_METHODS)
        p["width"] = _int(raw, "width", 2 * w, 8, MAX_OUTPUT_SIDE)
        p["height"] = _int(raw, "height", 2 * h, 8, MAX_OUTPUT_SIDE)
        if p["method"] == "efros-leung":
            seconds = 4.4e-10 * p["width"] * p["height"] * h * w * 11**2  # the CLI's estimate (window 11)
            if seconds > MAX_EFROS_LEUNG_SECONDS:
                raise GenlabError(f"Efros-Leung would take about {seconds / 60:.0f} min here; choose quilting, a "
                                  "smaller output or a smaller sample")  # fmt: skip
    elif kind == "dip":
        from genlab.edit.dip import dip_defaults

        p["task"] = _choice(raw, "task", DIP_TASKS)
        p["scale"] = _int(raw, "scale", 2, 2, 4) if p["task"] == "superres" else 1
        if max(h, w) * p["scale"] > MAX_OUTPUT_SIDE:
            raise GenlabError(f"the output would be over {MAX_OUTPUT_SIDE} pixels on a side; upload a smaller image")
        default = dip_defaults(p["task"], h * w * p["scale"] ** 2)[0]
        p["iterations"] = _int(raw, "iterations", default, 1, 10_000)
        if p["task"] == "inpaint":
            inputs["hole"] = _hole(raw, w, h)
            p["hole_pixels"] = int(inputs["hole"].sum())
    else:
        raise GenlabError(f"kind: {kind!r}; the Edit tab runs {', '.join(EDITS)}")
    return p, inputs


def run_edit(models: Any, store: Store, inputs: dict[str, Any], job: Job, emit: Any) -> dict[str, Any]:
    """Run an Edit job on the inputs taken when it was queued; the result goes to the history."""
    p, image = job.params, inputs["image"]
    start = time.perf_counter()

    def progress(total: int | None, unit: str) -> Any:
        done = [0]

        def step(n: int = 1) -> None:
            job.check()
            done[0] += n
            emit("progress", done=done[0], total=total, unit=unit)

        return step

    warning = None
    if p["op"] == "inpaint":
        out, warning = _inpaint(models, image, inputs["hole"], p, job, progress)
    elif p["op"] in ("retarget", "reshuffle"):
        from genlab.edit.synthesis import SynthesisConfig, count_levels, reshuffle, retarget

        cfg = SynthesisConfig(seed=p["seed"])
        if p["op"] == "retarget":
            h0, w0 = image.shape[:2]
            bar = progress(count_levels((min(h0, p["height"]), min(w0, p["width"])), cfg), "level")
            out = retarget(image, p["height"], p["width"], cfg, progress=lambda n: bar())
        else:
            bar = progress(None, "level")
            out = reshuffle(image, tuple(p["region"]), tuple(p["to"]), cfg, progress=lambda n: bar())
    elif p["op"] == "texture":
        from genlab.edit.texture import efros_leung, quilt

        shape = (p["height"], p["width"])
        if p["method"] == "quilting":
            out = quilt(image, shape, seed=p["seed"], progress=progress(None, "block"))
        else:
            out = efros_leung(image, shape, seed=p["seed"], progress=progress(shape[0] * shape[1], "pixel"))
    else:
        out = _dip(image, inputs.get("hole"), p, store, job, emit)
    item = store.add("edit", p, image=np.clip(out, 0, 1))
    result = {"item": item, "seconds": round(time.perf_counter() - start, 3)}
    return result | ({"warning": warning} if warning else {})


def _inpaint(models: Any, image: np.ndarray, hole: np.ndarray, p: dict, job: Job, progress: Any) -> tuple:
    if p["method"] == "patchmatch":
        from genlab.edit.patchmatch import check_patch
        from genlab.edit.synthesis import SynthesisConfig, count_levels, hole_levels, inpaint

        cfg = SynthesisConfig(seed=p["seed"])
        check_patch(image.shape, cfg.patch)
        levels = min(count_levels(image.shape, cfg), hole_levels(hole, cfg.patch))
        bar = progress(levels, "level")
        return inpaint(image, hole, cfg, progress=lambda n: bar()), None
    if p["method"] == "diffusion":
        from genlab.data.domain import check_domain
        from genlab.edit.diffusion import inpaint
        from genlab.runtime import make_generator

        model = models.get("text2image")
        warning = check_domain(model, image, "the upload", alternative="choose PatchMatch", warn=False)
        out = inpaint(model, image, hole, p["prompt"], generator=make_generator(p["seed"]),
                      callback=lambda state: job.check())  # fmt: skip
        return out, warning
    from genlab.edit.baselines import inpaint_baseline

    return inpaint_baseline(image, hole, p["method"]), None


def _dip(image: np.ndarray, hole: np.ndarray | None, p: dict, store: Store, job: Job, emit: Any) -> np.ndarray:
    """Deep Image Prior: a ``progress`` event (with the loss) every step and a preview of the output a few times."""
    from genlab.edit.dip import DIPConfig, deep_image_prior, dip_defaults

    h, w = image.shape[:2]
    width = dip_defaults(p["task"], h * w * p["scale"] ** 2)[1]
    total = p["iterations"]

    def on_step(i: int, figures: dict) -> None:
        job.check()
        emit("progress", done=i, total=total, unit="step", loss=round(figures["loss"], 6))

    def on_preview(i: int, output: np.ndarray) -> None:
        emit("preview", step=i, steps=total, item=store.add_preview(output, p | {"preview_step": i}))

    cfg = DIPConfig(width=width, iterations=total, seed=p["seed"])
    result = deep_image_prior(p["task"], image, cfg, mask=hole, scale=p["scale"], on_step=on_step,
                              on_preview=on_preview, preview_every=max(1, total // DIP_PREVIEWS))  # fmt: skip
    return result.image
