"""Segmentation metrics: IoU, mIoU, SAM's stability score, and the interactive evaluation protocol.

Interactive protocol (RITM; SAM §7.1): for each target mask, the first click is the point deepest inside the
target; each later click is the point deepest inside the larger error region of the previous answer (a foreground
click where the target was missed, a background click where the answer spilled over); every round feeds the
previous logits back. After one click the model answers with 3 masks: ``oracle`` scores the best of them (what
SAM's papers call the oracle), ``chosen`` the one with the highest predicted IoU (what a user gets); later rounds use
the single-mask output. A box is the target's tight box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genlab.data.masks import MaskSample, center_click, mask_boxes, mask_iou


def iou(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    union = np.logical_or(pred, target).sum()
    return float(np.logical_and(pred, target).sum() / union) if union else 1.0


def stability_score(logits: torch.Tensor, threshold: float = 0.0, offset: float = 1.0) -> torch.Tensor:
    """SAM's stability score: IoU of the masks thresholded at ``threshold ± offset``; ``…×H×W`` → ``…``.

    A mask whose edge moves little when the threshold moves is a confident one.
    """
    inter = (logits > threshold + offset).flatten(-2).sum(-1).float()
    union = (logits > threshold - offset).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def _targets(samples: Sequence[MaskSample]) -> list[tuple[int, np.ndarray, str]]:
    return [
        (i, m, r) for i, s in enumerate(samples) for m, r in zip(s.masks, s.roles, strict=True) if r != "background"
    ]


@torch.no_grad()
def evaluate_prompts(
    model: Any,
    samples: Sequence[MaskSample],
    *,
    clicks: Sequence[int] = (1, 3, 5),
    boxes: bool = True,
    batch_size: int = 128,
    progress: bool = False,
    by_role: bool = False,
) -> dict[str, float]:
    """mIoU over every object and part mask of ``samples`` (images at the model's size), by the protocol above.

    Keys: ``miou_1click_oracle``, ``miou_1click`` (predicted-IoU choice), ``miou_{n}click`` for the other
    ``clicks``, ``miou_box_oracle``, ``miou_box`` (predicted-IoU choice), ``miou_box_single`` (the single-mask
    token), ``iou_corr`` (correlation of predicted and true IoU after one click), ``masks``. With ``by_role``, the
    same figures for whole objects and for parts alone (``objects/…``, ``parts/…``).
    """
    was_training = model.training
    model.eval()
    dev = model.device
    targets = _targets(samples)
    scores: dict[str, list[float]] = {}
    pred_true: list[tuple[float, float]] = []

    def add(key: str, values: np.ndarray) -> None:
        scores.setdefault(key, []).extend(values.tolist())

    for start in tqdm(range(0, len(targets), batch_size), desc="evaluating", disable=not progress, leave=False):
        chunk = targets[start : start + batch_size]
        used = sorted({i for i, _, _ in chunk})
        images = torch.from_numpy(np.stack([samples[i].image for i in used])).permute(0, 3, 1, 2).to(dev)
        index = torch.tensor([used.index(i) for i, _, _ in chunk], device=dev)
        features = model.encode(images).select(index)
        gt = np.stack([m for _, m, _ in chunk])
        gt_t = torch.from_numpy(gt).to(dev)
        rows = torch.arange(len(chunk), device=dev)

        points, labels = _clicks(None, gt)
        logits, pred_iou = model.decode(features, None, coords=points.to(dev), labels=labels.to(dev), multimask=True)
        masks = model.upsample(logits) > 0
        true = mask_iou(masks, gt_t[:, None])
        add("miou_1click_oracle", true.max(dim=1).values.cpu().numpy())
        pick = pred_iou.argmax(dim=1)
        add("miou_1click", true[rows, pick].cpu().numpy())
        pred_true.extend(zip(pred_iou.flatten().tolist(), true.flatten().tolist(), strict=True))
        previous, answer = logits[rows, pick][:, None], masks[rows, pick].cpu().numpy()
        for n in range(2, max(clicks) + 1):
            new_points, new_labels = _clicks(answer, gt)
            points, labels = torch.cat([points, new_points], 1), torch.cat([labels, new_labels], 1)
            previous, _ = model.decode(
                features,
                None,
                coords=points.to(dev),
                labels=labels.to(dev),
                mask_input=previous,
                multimask=False,
            )
            answer_t = model.upsample(previous)[:, 0] > 0
            answer = answer_t.cpu().numpy()
            if n in clicks:
                add(f"miou_{n}click", mask_iou(answer_t, gt_t).cpu().numpy())
        if boxes:
            box = mask_boxes(gt_t.float())
            logits, pred_iou = model.decode(features, None, boxes=box)
            true = mask_iou(model.upsample(logits) > 0, gt_t[:, None])
            add("miou_box_single", true[:, 0].cpu().numpy())
            add("miou_box_oracle", true[:, 1:].max(dim=1).values.cpu().numpy())
            add("miou_box", true[rows, pred_iou[:, 1:].argmax(dim=1) + 1].cpu().numpy())
    model.train(was_training)
    out = {k: float(np.mean(v)) for k, v in scores.items()}
    if by_role:
        roles = np.array([r for _, _, r in targets])
        for role, name in (("object", "objects"), ("part", "parts")):
            if (roles == role).any():
                out |= {f"{name}/{k}": float(np.mean(np.array(v)[roles == role])) for k, v in scores.items()}
    p, t = np.array(pred_true).T if pred_true else (np.zeros(2), np.zeros(2))
    out["iou_corr"] = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
    out["masks"] = float(len(targets))
    return out


def _clicks(answers: np.ndarray | None, gt: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The next evaluation click for each target → (``P×1×2`` points, ``P×1`` labels)."""
    out = [center_click(None if answers is None else answers[i], gt[i]) for i in range(len(gt))]
    points = torch.tensor([p for p, _ in out], dtype=torch.float32)[:, None]
    labels = torch.tensor([lab for _, lab in out], dtype=torch.long)[:, None]
    return points, labels
