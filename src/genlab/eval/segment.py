"""Segmentation metrics: IoU, mIoU, SAM's stability score, and the interactive evaluation protocol.

Interactive protocol (RITM; SAM §7.1): for each target mask, the first click is the point deepest inside the
target; each later click is the point deepest inside the larger error region of the previous answer (a foreground
click where the target was missed, a background click where the answer spilled over); every round feeds the
previous logits back. After one click the model answers with 3 masks: ``oracle`` scores the best of them (what
SAM's papers call the oracle), ``chosen`` the one a user gets (:func:`genlab.data.masks.choose_masks`: the highest
predicted IoU among the masks that agree with the prompts); later rounds use
the single-mask output. A box is the target's tight box.

A click on a part is also a click on its whole (the first click of a whole often lands in a part), so one click
cannot say which of the two the target is, and no choice of mask scores both: ``miou_1click`` is bounded by that
ambiguity, not by the choice alone. ``miou_1click_any`` and ``miou_1click_any_oracle`` score the chosen and the best
mask against the closest of the masks the click lies in (any valid reading of the click; SAM §7.1's ambiguity); the
gap between those two is the error of the mask choice itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genlab.data.mask_sets import MaskSample
from genlab.data.masks import center_click, choose_masks, mask_boxes, mask_iou, share_in_boxes


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

    Keys: ``miou_1click_oracle``, ``miou_1click`` (the chosen mask), ``miou_1click_any_oracle`` and
    ``miou_1click_any`` (against any mask the click lies in), ``miou_{n}click`` for the other ``clicks``,
    ``miou_box_oracle``, ``miou_box`` (the chosen mask), ``miou_box_single`` (the single-mask token), ``iou_corr``
    (correlation of predicted and true IoU after one click), ``masks``. With ``by_role``, the same figures for whole
    objects and for parts alone (``objects/…``, ``parts/…``).
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
        pick = choose_masks(masks, pred_iou, points.to(dev), labels.to(dev))
        add("miou_1click", true[rows, pick].cpu().numpy())
        xy = points[:, 0].long().to(dev)  # the first click: a pixel centre inside the target
        add("click_inside", masks[rows, pick, xy[:, 1], xy[:, 0]].float().cpu().numpy())
        readings = torch.stack([_readings(masks[r], samples[i], gt[r], xy[r]) for r, (i, _, _) in enumerate(chunk)])
        add("miou_1click_any_oracle", readings.max(dim=1).values.cpu().numpy())
        add("miou_1click_any", readings[rows, pick].cpu().numpy())
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
            answers = model.upsample(logits) > 0
            true = mask_iou(answers, gt_t[:, None])
            add("miou_box_single", true[:, 0].cpu().numpy())
            add("miou_box_oracle", true[:, 1:].max(dim=1).values.cpu().numpy())
            chosen = choose_masks(answers[:, 1:], pred_iou[:, 1:], boxes=box) + 1
            add("miou_box", true[rows, chosen].cpu().numpy())
            add("box_inside", share_in_boxes(answers[rows, chosen], box).cpu().numpy())
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


def _readings(masks: torch.Tensor, sample: MaskSample, target: np.ndarray, xy: torch.Tensor) -> torch.Tensor:
    """The IoU of each of ``masks`` (``K×H×W``) with the closest object or part of ``sample`` that holds the click
    ``xy`` (the ``target`` the click was made for among them) → ``K``."""
    x, y = int(xy[0]), int(xy[1])
    valid = [m for m, r in zip(sample.masks, sample.roles, strict=True) if r != "background" and m[y, x]]
    gt = torch.from_numpy(np.stack([target, *valid])).to(masks.device)
    return mask_iou(masks[:, None], gt[None]).max(dim=1).values


def _clicks(answers: np.ndarray | None, gt: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The next evaluation click for each target → (``P×1×2`` points, ``P×1`` labels)."""
    out = [center_click(None if answers is None else answers[i], gt[i]) for i in range(len(gt))]
    points = torch.tensor([p for p, _ in out], dtype=torch.float32)[:, None]
    labels = torch.tensor([lab for _, lab in out], dtype=torch.long)[:, None]
    return points, labels


def evaluate_method(
    samples: Sequence[MaskSample],
    *,
    click: Callable[[int, list, list], np.ndarray] | None = None,
    box: Callable[[int, tuple[int, int, int, int]], np.ndarray] | None = None,
    clicks: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """The same protocol for any method that answers with one mask: ``click(i, points, labels)`` for image ``i`` of
    ``samples`` (points as (x, y) pixel centres, labels 1/0), ``box(i, (x0, y0, x1, y1))`` (x1, y1 exclusive).

    Keys: ``miou_{n}click`` for ``clicks``, ``miou_box``; ``click_inside`` (the share of first answers that contain
    their positive click) and ``box_inside`` (the share of the box's mask that lies inside the box).
    """
    scores: dict[str, list[float]] = {}
    for i, gt, _ in _targets(samples):
        if click is not None:
            points: list = []
            labels: list = []
            answer = None
            for n in range(1, max(clicks) + 1):
                point, label = center_click(answer, gt)
                if label < 0:  # the answer is exact: later clicks change nothing
                    if n in clicks:
                        scores.setdefault(f"miou_{n}click", []).append(1.0)
                    continue
                points.append(point)
                labels.append(label)
                answer = np.asarray(click(i, points, labels), bool)
                if n == 1:
                    x, y = int(point[0]), int(point[1])
                    scores.setdefault("click_inside", []).append(float(answer[y, x]))
                if n in clicks:
                    scores.setdefault(f"miou_{n}click", []).append(iou(answer, gt))
        if box is not None:
            ys, xs = np.nonzero(gt)
            b = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            answer = np.asarray(box(i, b), bool)
            scores.setdefault("miou_box", []).append(iou(answer, gt))
            inside = answer[b[1] : b[3], b[0] : b[2]].sum()
            scores.setdefault("box_inside", []).append(float(inside / answer.sum()) if answer.any() else 1.0)
    out = {k: float(np.mean(v)) for k, v in scores.items()}
    return out | {"masks": float(len(_targets(samples)))}
