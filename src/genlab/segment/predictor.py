"""``SegmentPredictor``: encode an image once, then answer any number of prompts in milliseconds (SAM §3).

    >>> import genlab
    >>> p = genlab.SegmentPredictor.load()              # the shipped model (assets/sam-scenes)
    >>> p.set_image("photo.png")                         # a path, a PIL image or an H×W[×C] array
    >>> masks, scores, logits = p.predict(points=[[120, 80]], labels=[1], multimask=True)
    >>> masks2, _, _ = p.predict(points=[[120, 80], [200, 40]], labels=[1, 0], mask_input=logits[scores.argmax()])

Coordinates are pixels of the image given to ``set_image``: x to the right, y down; a point is a pixel (its centre
is used), a box ``x0, y0, x1, y1`` spans pixel edges (x1, y1 exclusive). The image is resized so its longer side is
the model's input size and padded to a square (SAM's ``ResizeLongestSide``); masks come back at the image's size.

``predict`` returns NumPy arrays and runs without gradients; ``predict_torch`` is the same computation on tensors
with gradients (public SAM wraps its predictor in ``no_grad``, which leaves no way to fine-tune through it); with
``set_image(..., grad=True)`` the gradient reaches the image encoder as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from genlab.errors import GenlabError
from genlab.nn.sam.image_encoder import ImageFeatures
from genlab.nn.sam.prompt_encoder import NOT_A_POINT

ArrayLike = Any  # a NumPy array, a nested list, or a tensor


def as_rgb01(image: Any) -> np.ndarray:
    """A path, PIL image, array or tensor (grey, grey+alpha, RGB or RGBA; uint8, uint16, bool or float in [0, 1])
    → ``H×W×3`` float32 in [0, 1]. Alpha is composited over white, as :func:`genlab.data.images.read_image` does."""
    from genlab.data.images import _to_float, read_image

    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        image = _to_float(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] in (1, 2, 3, 4) and image.shape[-1] not in (1, 2, 3, 4):
            image = image.permute(1, 2, 0)  # C×H×W → H×W×C
        image = image.numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4):
        pass
    elif arr.ndim == 2:
        arr = arr[..., None]
    else:
        raise GenlabError(f"expected an H×W (grey), H×W×3 (RGB) or H×W×4 (RGBA) image, got shape {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise GenlabError(f"the image is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    elif arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo < -1e-3 or hi > 1 + 1e-3 or np.isnan(arr).any():
            raise GenlabError(f"a float image must hold values in [0, 1]; this one spans {lo:g} … {hi:g}")
        arr = np.clip(arr, 0, 1)
    else:
        raise GenlabError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if arr.shape[2] in (2, 4):  # with alpha: composite over white
        alpha = arr[..., -1:]
        arr = arr[..., :-1] * alpha + (1 - alpha)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr, dtype=np.float32)


MIN_SIDE = 8  # pixels: a smaller image has nothing to segment (and a 1-pixel side has no inside)


class SegmentPredictor:
    """Prompts → masks for one image at a time, with the image embedding cached between prompts."""

    def __init__(self, model: Any, *, device: str | torch.device | None = None) -> None:
        if getattr(model, "modality", None) != "segment":
            raise GenlabError(f"SegmentPredictor needs a segmentation model, got {getattr(model, 'family', model)!r}")
        self.model = model.to(device) if device is not None else model
        self.features: ImageFeatures | None = None
        self.original_size: tuple[int, int] | None = None  # (H, W) of the image given to set_image
        self.input_size: tuple[int, int] | None = None  # (h, w) of the resized image inside the model's square
        self.scale = 1.0

    @classmethod
    def load(cls, path: str | Path | None = None, *, device: str | None = None) -> SegmentPredictor:
        """The predictor of a checkpoint directory (default: the shipped ``sam-scenes`` model)."""
        from genlab.checkpoint import load_model

        return cls(load_model(path, task="segment", device=device))

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def side(self) -> int:
        return self.model.config.image_size

    # --- the image ---------------------------------------------------------------------------------------------
    def set_image(self, image: Any, *, grad: bool = False) -> None:
        """Resize, pad and encode ``image`` once; later ``predict`` calls reuse the embedding.

        ``grad=True`` keeps the encoder's graph, so a loss on ``predict_torch``'s output trains the encoder too.
        """
        rgb = as_rgb01(image)
        H, W = rgb.shape[:2]
        if min(H, W) < MIN_SIDE:
            raise GenlabError(f"the image is {W}×{H}: segmentation needs at least {MIN_SIDE} pixels on each side")
        self.scale = self.side / max(H, W)
        h, w = max(1, round(H * self.scale)), max(1, round(W * self.scale))
        resized = np.stack(
            [np.asarray(Image.fromarray(rgb[..., c]).resize((w, h), Image.BILINEAR)) for c in range(3)], axis=2
        )
        square = np.full((self.side, self.side, 3), 0.5, np.float32)  # padding: mid grey, the normalization's mean
        square[:h, :w] = np.clip(resized, 0, 1)
        x = torch.from_numpy(square).permute(2, 0, 1)[None].to(self.device)
        with torch.set_grad_enabled(grad):
            self.features = self.model.encode(x)
        self.original_size, self.input_size = (H, W), (h, w)

    def reset_image(self) -> None:
        self.features, self.original_size, self.input_size = None, None, None

    def _need_image(self) -> tuple[int, int]:
        if self.features is None or self.original_size is None:
            raise GenlabError("no image: call set_image(image) before predict")
        return self.original_size

    # --- prompts -----------------------------------------------------------------------------------------------
    def prepare_prompts(
        self, points: ArrayLike | None, labels: ArrayLike | None, box: ArrayLike | None, mask_input: ArrayLike | None
    ) -> tuple[dict[str, torch.Tensor | None], int, bool]:
        """Validate prompts in image pixels and move them to the model frame → (tensors, N prompts, batched)."""
        H, W = self._need_image()
        if points is None and box is None and mask_input is None:
            raise GenlabError("no prompt: give points (with labels), a box or a mask_input")
        batched = False
        coords = lab = boxes = masks = None
        if points is not None:
            pts = torch.as_tensor(np.asarray(points, dtype=np.float32))
            if pts.dim() == 3:
                batched = True
            elif pts.dim() == 2:
                pts = pts[None]
            else:
                raise GenlabError(f"points: expected P×2 or N×P×2 (x, y) pixels, got shape {tuple(pts.shape)}")
            if pts.shape[-1] != 2 or pts.shape[1] == 0:
                raise GenlabError(f"points: expected P×2 or N×P×2 (x, y) pixels, got shape {tuple(pts.shape)}")
            lab = torch.ones(pts.shape[:2], dtype=torch.long) if labels is None else self._labels(labels, pts)
            outside = (pts[..., 0] < 0) | (pts[..., 0] >= W) | (pts[..., 1] < 0) | (pts[..., 1] >= H)
            if outside.any():
                x, y = pts[outside][0].tolist()
                raise GenlabError(
                    f"point ({x:g}, {y:g}) is outside the {W}×{H} image (x in 0 … {W - 1}, y in 0 … {H - 1})"
                )
            coords = (pts + 0.5) * self.scale
        elif labels is not None:
            raise GenlabError("labels were given without points")
        if box is not None:
            b = torch.as_tensor(np.asarray(box, dtype=np.float32))
            if b.dim() == 1:
                b = b[None]
            else:
                batched = True
            if b.dim() != 2 or b.shape[1] != 4:
                raise GenlabError(f"box: expected x0, y0, x1, y1 (or N×4 boxes), got shape {tuple(b.shape)}")
            for x0, y0, x1, y1 in b.tolist():
                if not (x1 > x0 and y1 > y0):
                    raise GenlabError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}): needs x0 < x1 and y0 < y1")
                if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
                    raise GenlabError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) reaches outside the {W}×{H} image")
            boxes = b * self.scale
        if mask_input is not None:
            masks = self._mask_input(mask_input)
            batched = batched or masks.shape[0] > 1
        counts = {t.shape[0] for t in (coords, boxes, masks) if t is not None}
        if len(counts - {1}) > 1:
            raise GenlabError(f"points, boxes and mask inputs disagree on the number of prompts: {sorted(counts)}")
        n = max(counts)
        dev = self.device
        expand = lambda t: None if t is None else t.expand(n, *t.shape[1:]).to(dev)  # noqa: E731
        return (
            {"coords": expand(coords), "labels": expand(lab), "boxes": expand(boxes), "mask_input": expand(masks)},
            n,
            batched,
        )

    @staticmethod
    def _labels(labels: ArrayLike, pts: torch.Tensor) -> torch.Tensor:
        lab = np.asarray(labels)
        bad = lab[(lab != 0) & (lab != 1)] if lab.size else lab
        if bad.size:
            raise GenlabError(f"labels must be 1 (foreground) or 0 (background); got {bad.flatten()[0].item()!r}")
        lab_t = torch.as_tensor(lab.astype(np.int64))
        if lab_t.dim() == 1:
            lab_t = lab_t[None]
        if tuple(lab_t.shape) != tuple(pts.shape[:2]):
            raise GenlabError(f"labels: {tuple(lab_t.shape)} labels for {tuple(pts.shape[:2])} points")
        return lab_t

    def _mask_input(self, mask_input: ArrayLike) -> torch.Tensor:
        m = self.model.mask_size
        t = mask_input.detach() if isinstance(mask_input, torch.Tensor) else torch.as_tensor(np.asarray(mask_input))
        t = t.float()
        while t.dim() < 4:
            t = t[None]
        if t.dim() != 4 or tuple(t.shape[1:]) != (1, m, m):
            raise GenlabError(f"mask_input: expected the {m}×{m} low-resolution logits of a previous predict")
        return t

    # --- answers -----------------------------------------------------------------------------------------------
    def decode(self, prompts: dict[str, torch.Tensor | None], multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-frame prompts (``N`` of them) → (low-resolution logits ``N×K×m×m``, predicted IoU ``N×K``)."""
        n = next(t.shape[0] for t in prompts.values() if t is not None)
        index = torch.zeros(n, dtype=torch.long, device=self.device)
        return self.model.decode(self.features, index, multimask=multimask, **prompts)

    def postprocess(self, low_res: torch.Tensor) -> torch.Tensor:
        """``N×K×m×m`` logits → ``N×K×H×W`` logits at the image's size (upsample, crop the padding, resize)."""
        H, W = self._need_image()
        h, w = self.input_size
        up = F.interpolate(low_res, size=(self.side, self.side), mode="bilinear", align_corners=False)
        return F.interpolate(up[..., :h, :w], size=(H, W), mode="bilinear", align_corners=False)

    def predict_torch(
        self,
        points: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask_input: ArrayLike | None = None,
        *,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like :meth:`predict`, always batched and differentiable: (mask logits ``N×K×H×W``, predicted IoU
        ``N×K``, low-resolution logits ``N×K×m×m``). Not wrapped in ``no_grad``: a loss on these trains the
        decoder and prompt encoder (and the encoder after ``set_image(..., grad=True)``)."""
        prompts, _, _ = self.prepare_prompts(points, labels, box, mask_input)
        low_res, iou = self.decode(prompts, multimask)
        return self.postprocess(low_res), iou, low_res

    def predict(
        self,
        points: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask_input: ArrayLike | None = None,
        *,
        multimask: bool = True,
        return_logits: bool = False,
        refine: int = 0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for prompts on the current image.

        points ``P×2`` (x, y) with labels ``P`` (1 foreground, 0 background; default all 1); box ``4``
        (x0, y0, x1, y1); mask_input ``m×m`` logits from a previous call. Batched: points ``N×P×2`` with labels
        ``N×P``, boxes ``N×4``, mask inputs ``N×1×m×m`` — N prompts on one image in one call.
        ``multimask``: 3 masks (whole, part, subpart) for ambiguous prompts; else the single-mask output.
        ``refine``: with ``multimask=False``, feed the answer's logits back as ``mask_input`` this many more times
        with the same prompts — a round of the simulated sessions the model was trained on, without a new click
        (docs/segment.md, "Refining an answer": one round mends the box answers that come out shrunken).
        Returns (masks ``K×H×W`` bool — logits with ``return_logits`` —, predicted IoU ``K``, low-resolution logits
        ``K×m×m``), each with a leading N when batched.
        """
        if refine < 0 or (refine and multimask):
            raise GenlabError(f"refine={refine}: a count ≥ 0 of extra rounds, for the single mask (multimask=False)")
        with torch.no_grad():
            prompts, _, batched = self.prepare_prompts(points, labels, box, mask_input)
            low_res, iou = self.decode(prompts, multimask)
            for _ in range(refine):
                low_res, iou = self.decode(prompts | {"mask_input": low_res}, multimask)
            logits = self.postprocess(low_res)
        masks = logits.cpu().numpy() if return_logits else (logits > 0).cpu().numpy()
        scores, low = iou.cpu().numpy(), low_res.cpu().numpy()
        if not batched:
            return masks[0], scores[0], low[0]
        return masks, scores, low


def best_mask(masks: np.ndarray, scores: np.ndarray, points: ArrayLike | None = None, labels: ArrayLike | None = None,
              box: ArrayLike | None = None) -> tuple[np.ndarray, float, int]:  # fmt: skip
    """The answer a user gets from one prompt's ``K×H×W`` masks: the highest predicted IoU among the masks that
    agree with the prompts (positive points inside, negative ones outside, the mask inside the box;
    :func:`genlab.data.masks.choose_masks`), else the highest. (mask, score, its index)."""
    from genlab.data.masks import choose_masks

    pts = None if points is None else torch.as_tensor(np.asarray(points, np.float32).reshape(1, -1, 2))
    lab = None
    if pts is not None:
        lab = torch.as_tensor(np.ones(pts.shape[1]) if labels is None else np.asarray(labels)).reshape(1, -1).long()
    bx = None if box is None else torch.as_tensor(np.asarray(box, np.float32).reshape(1, 4))
    m = torch.as_tensor(np.asarray(masks) > 0)[None]
    i = int(choose_masks(m, torch.as_tensor(np.asarray(scores, np.float32))[None], pts, lab, bx)[0])
    return masks[i], float(scores[i]), i


__all__ = ["NOT_A_POINT", "SegmentPredictor", "as_rgb01", "best_mask"]
