"""Automatic mask generation, "segment everything" (SAM §7.2 and appendix A, ``SamAutomaticMaskGenerator``).

A regular grid of foreground points is prompted over the image (one image encoding, batches of points); each point
yields 3 masks. Masks are kept when the predicted IoU and the stability score (the IoU of the mask thresholded at
logit ±offset) are high; duplicates are removed by non-maximum suppression on their boxes (highest predicted IoU
first); small disconnected islands and small holes are then cleaned up, and masks the cleanup changed give way to
those it did not in a second suppression. Filtering runs at the model's resolution; the kept masks are drawn at the
image's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from genlab.errors import GenlabError
from genlab.eval.segment import stability_score
from genlab.segment.predictor import SegmentPredictor


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: ``N×4`` boxes (x0, y0, x1, y1), ``N`` scores → kept indices, best first."""
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if keep[i]:
            later = torch.arange(len(boxes)) > i
            keep &= ~(later & (iou[i] > iou_threshold))
    return order[keep]


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``N×H×W`` boolean masks → ``N×4`` boxes (x0, y0, x1, y1) with exclusive x1, y1; zeros for empty masks."""
    if len(masks) == 0:
        return torch.zeros(0, 4)
    from genlab.data.masks import mask_boxes

    boxes = mask_boxes(masks.float())
    return torch.where(masks.flatten(1).any(1)[:, None], boxes, torch.zeros_like(boxes))


def remove_small_regions(mask: np.ndarray, area: int) -> tuple[np.ndarray, bool]:
    """Fill holes and drop islands smaller than ``area`` pixels → (mask, whether it changed)."""
    out = mask.copy()
    for keep_value in (False, True):  # holes (regions of False inside), then islands (regions of True)
        region = out == keep_value
        labels, n = ndimage.label(region)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        small = np.flatnonzero(sizes < area) + 1
        if keep_value is False:  # a background region touching the border is not a hole
            border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
            small = np.setdiff1d(small, border)
        if len(small):
            out[np.isin(labels, small)] = not keep_value
    return out, bool((out != mask).any())


@dataclass
class AutomaticMaskGenerator:
    """Segment everything in an image with a :class:`SegmentPredictor`.

    ``points_per_side``² grid points; ``pred_iou_thresh`` and ``stability_score_thresh`` (with
    ``stability_score_offset`` in logits) filter; ``box_nms_thresh`` removes duplicates; ``min_mask_region_area``
    (pixels of the input image, 0 = off) cleans up small islands and holes. SAM's defaults: 32 points a side for a
    1024-pixel model, 0.88, 0.95, 1.0, 0.7. genlab's thresholds are lower (0.5, 0.8), chosen for its 64-pixel
    model on held-out scenes (docs/segment.md): at 64 pixels the ±1-logit band around a boundary is a large share
    of a small mask, so stability scores are lower, and the small IoU head ranks masks less sharply than SAM's.
    """

    predictor: SegmentPredictor
    points_per_side: int = 16
    points_per_batch: int = 128
    pred_iou_thresh: float = 0.5
    stability_score_thresh: float = 0.8
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise GenlabError("points_per_side and points_per_batch must be at least 1")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise GenlabError(f"{name} must be in [0, 1]")

    def grid(self) -> torch.Tensor:
        """The prompt points in the model frame (the resized image inside the model's square): ``n²×2``."""
        h, w = self.predictor.input_size
        n = self.points_per_side
        centres = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        yy, xx = torch.meshgrid(centres * h, centres * w, indexing="ij")
        return torch.stack([xx.flatten(), yy.flatten()], dim=1)

    @torch.no_grad()
    def generate(self, image: Any | None = None) -> list[dict[str, Any]]:
        """Masks of everything in ``image`` (or the predictor's current image), largest first. Each record:
        ``segmentation`` (H×W bool), ``area``, ``bbox`` (x, y, w, h), ``predicted_iou``, ``stability_score``,
        ``point_coords`` ([[x, y]] in image pixels)."""
        p = self.predictor
        if image is not None:
            p.set_image(image)
        H, W = p._need_image()
        h, w = p.input_size
        points = self.grid().to(p.device)
        logits, ious, stabilities, sources = [], [], [], []
        for i in range(0, len(points), self.points_per_batch):
            batch = points[i : i + self.points_per_batch]
            coords = batch[:, None]
            labels = torch.ones(len(batch), 1, dtype=torch.long, device=p.device)
            low, iou = p.decode({"coords": coords, "labels": labels}, multimask=True)
            frame = F.interpolate(low.flatten(0, 1)[:, None], size=(p.side, p.side), mode="bilinear")[:, 0, :h, :w]
            stable = stability_score(frame, 0.0, self.stability_score_offset)
            keep = (iou.flatten() >= self.pred_iou_thresh) & (stable >= self.stability_score_thresh)
            keep &= (frame > 0).flatten(1).any(1)
            logits.append(low.flatten(0, 1)[keep])
            ious.append(iou.flatten()[keep])
            stabilities.append(stable[keep])
            sources.append(batch.repeat_interleave(low.shape[1], dim=0)[keep])
        low, iou, stable, src = (torch.cat(t) for t in (logits, ious, stabilities, sources))
        if len(low) == 0:
            return []
        frame = F.interpolate(low[:, None], size=(p.side, p.side), mode="bilinear")[:, 0, :h, :w] > 0
        keep = box_nms(masks_to_boxes(frame).float(), iou, self.box_nms_thresh)
        full = p.postprocess(low[keep][:, None])[:, 0] > 0
        records = [
            {
                "segmentation": full[j].cpu().numpy(),
                "predicted_iou": float(iou[k]),
                "stability_score": float(stable[k]),
                "point_coords": [
                    [round(float(src[k, 0]) / p.scale - 0.5, 2), round(float(src[k, 1]) / p.scale - 0.5, 2)]
                ],
            }
            for j, k in enumerate(keep.tolist())
        ]
        if self.min_mask_region_area > 0:
            records = self._clean(records)
        for r in records:
            x0, y0, x1, y1 = masks_to_boxes(torch.from_numpy(r["segmentation"])[None])[0].tolist()
            r["area"] = int(r["segmentation"].sum())
            r["bbox"] = [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]
        records = [r for r in records if r["area"] > 0]
        return sorted(records, key=lambda r: -r["area"])

    def _clean(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        changed = []
        for r in records:
            r["segmentation"], was_changed = remove_small_regions(r["segmentation"], self.min_mask_region_area)
            changed.append(was_changed)
        masks = torch.from_numpy(np.stack([r["segmentation"] for r in records]))
        scores = torch.tensor([0.0 if c else 1.0 for c in changed]) + 1e-3 * torch.tensor(
            [r["predicted_iou"] for r in records]
        )
        keep = box_nms(masks_to_boxes(masks).float(), scores, self.box_nms_thresh)
        return [records[i] for i in sorted(keep.tolist())]
