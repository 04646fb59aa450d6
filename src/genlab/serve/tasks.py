"""What the studio runs: the same library functions the CLI calls (no second implementation of any capability).

Jobs (through the queue): ``text`` (tokens streamed as they become final, tokens/s), ``chat`` (the shipped chat
model's answer to a conversation, streamed), ``image`` (the digits
diffusion model by class, or the text-to-image model by prompt and negative prompt; a preview of the predicted clean
image every few steps). Direct calls (too quick to queue): ``segment`` (the image embedding computed once per image,
then the mask decoder per click). Inputs are checked here with the limits the CLI has.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.serve.jobs import Job
from genlab.serve.store import Store

MAX_TOKENS, MAX_STEPS, MAX_IMAGES = 1000, 1000, 16
PREVIEWS = 8  # previews an image job sends at most
EMBEDDINGS = 8  # images whose segmentation embedding stays cached


class Models:
    """The shipped models, each loaded on first use and kept; one lock so two threads never load one twice."""

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, task: str) -> Any:
        with self._lock:
            if task not in self._models:
                if task == "segment":
                    from genlab.segment.predictor import SegmentPredictor

                    self._models[task] = SegmentPredictor.load(device=self.device)
                else:
                    from genlab.checkpoint import load_model

                    self._models[task] = load_model(task=task, device=self.device)
            return self._models[task]


def _number(params: dict, key: str, default: float, lo: float, hi: float, kind: type = float) -> Any:
    value = params.get(key, default)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise GenlabError(f"{key}: {value!r} is not a number") from None
    if not (lo <= value <= hi) or (kind is float and not math.isfinite(value)):
        raise GenlabError(f"{key}: {value} is out of range ({lo:g} … {hi:g})")
    return value


def text_params(raw: dict) -> dict[str, Any]:
    return {
        "prompt": str(raw.get("prompt", ""))[:4000],
        "max_tokens": _number(raw, "max_tokens", 200, 1, MAX_TOKENS, int),
        "temperature": _number(raw, "temperature", 0.8, 0, 5),
        "top_k": _number(raw, "top_k", 0, 0, 100_000, int),
        "top_p": _number(raw, "top_p", 1.0, 0, 1),
        "seed": _number(raw, "seed", 0, 0, 2**63 - 1, int),
    }


def run_text(models: Models, store: Store, job: Job, emit: Any) -> dict[str, Any]:
    from genlab.runtime import make_generator
    from genlab.sampling.text import generate

    p = job.params
    model = models.get("text")

    def on_text(piece: str) -> None:
        job.check()  # Stop: the generation ends at the next token, on the server
        emit("text", text=piece)

    out = generate(model, p["prompt"], max_tokens=p["max_tokens"], temperature=p["temperature"], top_k=p["top_k"],
                   top_p=p["top_p"], generator=make_generator(p["seed"]), on_text=on_text)  # fmt: skip
    item = store.add("text", p | {"model": "gpt-kjv"}, text=out.texts[0])
    return {"item": item, "text": out.texts[0], "tokens": out.new_tokens, "tokens_per_s": round(out.tokens_per_s, 1)}


def chat_params(raw: dict) -> dict[str, Any]:
    from genlab.data.chat import SPECIALS

    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages or len(messages) > 64:
        raise GenlabError("messages: a list of 1 to 64 {role, content} objects, the last one the user's")
    clean = []
    for m in messages:
        role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
        if role not in ("system", "user", "assistant") or not isinstance(content, str) or len(content) > 4000:
            raise GenlabError("messages: each is {role: system, user or assistant, content: text up to 4,000}")
        if any(token in content for token in SPECIALS):
            raise GenlabError(f"messages: a template token ({', '.join(SPECIALS)}) in a message; rephrase it")
        clean.append({"role": role, "content": content})
    if clean[-1]["role"] != "user":
        raise GenlabError("messages: the last one must be the user's")
    return {"messages": clean, "max_tokens": _number(raw, "max_tokens", 96, 1, MAX_TOKENS, int),
            "temperature": _number(raw, "temperature", 0.8, 0, 5), "top_p": _number(raw, "top_p", 0.95, 0, 1),
            "seed": _number(raw, "seed", 0, 0, 2**63 - 1, int)}  # fmt: skip


def run_chat(models: Models, store: Store, job: Job, emit: Any) -> dict[str, Any]:
    """The shipped chat model's answer to the conversation, streamed as ``genlab chat`` streams it."""
    from genlab.data.chat import SPECIALS, Message
    from genlab.runtime import make_generator
    from genlab.sampling.text import generate_ids

    p = job.params
    model = models.get("chat")
    ids = model.prompt_ids([Message(m["role"], m["content"]) for m in p["messages"]], reserve=p["max_tokens"])

    def on_text(piece: str) -> None:
        job.check()
        emit("text", text=piece)

    out = generate_ids(model, ids, max_tokens=p["max_tokens"], temperature=p["temperature"], top_p=p["top_p"],
                       stop=SPECIALS, generator=make_generator(p["seed"]), on_text=on_text)  # fmt: skip
    answer = out.texts[0].strip()
    item = store.add("chat", p | {"model": "chat-kjv"}, text=answer)
    return {"item": item, "answer": answer, "tokens": out.new_tokens, "tokens_per_s": round(out.tokens_per_s, 1)}


def image_params(raw: dict) -> dict[str, Any]:
    prompt = str(raw.get("prompt", "")).strip()[:500]
    p: dict[str, Any] = {
        "steps": _number(raw, "steps", 30, 1, MAX_STEPS, int),
        "sampler": str(raw.get("sampler", "ddim")),
        "guidance": _number(raw, "guidance", 1.0, 0, 30),
        "seed": _number(raw, "seed", 0, 0, 2**63 - 1, int),
        "n": _number(raw, "n", 4, 1, MAX_IMAGES, int),
    }
    if p["sampler"] not in ("ddpm", "ddim", "dpmpp"):
        raise GenlabError(f"sampler: {p['sampler']!r}; choose ddpm, ddim or dpmpp")
    if prompt:
        p |= {"prompt": prompt, "negative_prompt": str(raw.get("negative_prompt", "")).strip()[:500]}
    else:
        p["class"] = _number(raw, "class", 0, 0, 9, int)
    if raw.get("init"):  # img2img (SDEdit): the id of an upload or of a result in the history
        p |= {"init": str(raw["init"]), "strength": _number(raw, "strength", 0.6, 0, 1)}
    return p


def run_image(models: Models, store: Store, job: Job, emit: Any, init: np.ndarray | None = None) -> dict[str, Any]:
    """Draw ``n`` images by class or prompt; with ``init`` (img2img), ``n`` SDEdit variations of that image."""
    from genlab.data.images import image_grid
    from genlab.runtime import make_generator

    p = job.params
    by_prompt = "prompt" in p
    model = models.get("text2image" if by_prompt else "image")
    # SDEdit runs the sampler over the last strength·steps steps only
    steps = p["steps"] if init is None else max(1, round(p["steps"] * p["strength"]))
    every = max(1, steps // PREVIEWS)

    def callback(state: dict[str, Any]) -> None:
        job.check()
        step = state["i"] + 1
        if step % every == 0 and step < steps:
            with torch.no_grad():
                preview = model.decode(state["denoised"]).float().cpu()
            emit("preview", step=step, steps=steps, item=_preview(store, preview, p, step))

    cond: Any = p["prompt"] if by_prompt else torch.full((p["n"],), p["class"], dtype=torch.long)
    controls = dict(generator=make_generator(p["seed"]), sampler=p["sampler"], steps=p["steps"],
                    guidance=p["guidance"], callback=callback)  # fmt: skip
    if by_prompt:
        controls["negative_prompt"] = p["negative_prompt"]
    start, warning = time.perf_counter(), None
    if init is None:
        images = model.sample(p["n"], cond, **controls)
    else:
        from genlab.data.domain import check_domain
        from genlab.edit.diffusion import to_model_size

        warning = check_domain(model, init, "the init image", warn=False)  # said with the result
        x = to_model_size(init, model.image_size, getattr(model.config, "channels", 3)).repeat(p["n"], 1, 1, 1)
        images = model.img2img(x, cond, strength=p["strength"], **controls)
    seconds = time.perf_counter() - start
    nrow = min(p["n"], max(1, math.ceil(math.sqrt(p["n"]))))
    grid = image_grid(images.float().cpu().numpy(), nrow, scale=max(1, 128 // model.image_size))
    name = "text2image-shapes" if by_prompt else "diffusion-digits"
    item = store.add("image", p | {"model": name}, image=grid)
    return {"item": item, "seconds": round(seconds, 3)} | ({"warning": warning} if warning else {})


def _preview(store: Store, images: torch.Tensor, params: dict, step: int) -> str:
    from genlab.data.images import image_grid

    nrow = min(len(images), max(1, math.ceil(math.sqrt(len(images)))))
    grid = image_grid(images.numpy(), nrow, scale=max(1, 128 // images.shape[-1]))
    return store.add_preview(grid, params | {"preview_step": step})


class Segmenter:
    """Promptable segmentation for the Segment tab: an uploaded image's embedding computed once and cached (the
    last :data:`EMBEDDINGS` images), then the mask decoder for each set of clicks and box: its three masks (whole,
    part, subpart) in the decoder's order, with their predicted IoU and the index of the highest. The page shows
    that one until the user picks another output, and keeps the picked output as clicks are added: the shipped
    model's single-mask answer to several clicks is much worse than the same output of its three (docs/studio.md)."""

    def __init__(self, models: Models) -> None:
        self.models = models
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._current: str | None = None

    def add(self, image_id: str, image: np.ndarray) -> None:
        with self._lock:
            self._cache[image_id] = image
            self._cache.move_to_end(image_id)
            while len(self._cache) > EMBEDDINGS:
                self._cache.popitem(last=False)

    def _embedded(self, image_id: str) -> Any:
        """The predictor with ``image_id``'s embedding set (computed only when another image was set last); the
        caller holds the lock. LookupError for an image no longer cached."""
        predictor = self.models.get("segment")
        if image_id not in self._cache:
            raise LookupError(image_id)
        if self._current != image_id:
            predictor.set_image(self._cache[image_id])
            self._current = image_id
        return predictor

    def prepare(self, image_id: str) -> None:
        """Compute the image's embedding now (on upload), so that the first click runs only the decoder."""
        with self._lock:
            self._embedded(image_id)

    def everything(self, image_id: str) -> dict[str, Any]:
        """Every mask the automatic mask generator finds (as ``genlab segment --all``), largest first, each as run
        lengths with its area, box and predicted IoU."""
        from genlab.segment.automatic import AutomaticMaskGenerator

        with self._lock:
            predictor = self._embedded(image_id)
            start = time.perf_counter()
            records = AutomaticMaskGenerator(predictor).generate()
            ms = (time.perf_counter() - start) * 1000
            h, w = self._cache[image_id].shape[:2]
        return {"width": w, "height": h, "ms": round(ms, 1),
                "masks": [{"rle": rle(r["segmentation"]), "area": int(r["area"]), "iou": float(r["predicted_iou"]),
                           "bbox": [float(v) for v in r["bbox"]]} for r in records]}  # fmt: skip

    def predict(self, image_id: str, points: list, labels: list, box: list | None) -> dict[str, Any]:
        from genlab.segment.predictor import best_mask

        with self._lock:
            predictor = self._embedded(image_id)
            pts = np.asarray(points, dtype=np.float32).reshape(-1, 2) if points else None
            lab = np.asarray(labels, dtype=np.int64).reshape(-1) if points else None
            bx = np.asarray(box, dtype=np.float32).reshape(4) if box else None
            if pts is None and bx is None:
                raise GenlabError("give a point or a box")
            start = time.perf_counter()
            masks, iou, _ = predictor.predict(pts, lab, bx, multimask=True)
            ms = (time.perf_counter() - start) * 1000
        h, w = masks.shape[1:]
        best = best_mask(masks, iou, pts, lab, bx)[2]  # the best-scored of the masks that agree with the prompts
        return {"width": int(w), "height": int(h), "decoder_ms": round(ms, 2), "best": int(best),
                "masks": [{"iou": float(v), "rle": rle(m)} for m, v in zip(masks, iou, strict=True)]}  # fmt: skip


def rle(mask: np.ndarray) -> list[int]:
    """Row-major run lengths of a boolean mask, starting with a run of False (possibly 0)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat.size == 0 or not flat[0] else [0, *runs]
