"""The objective of genlab's SAM (``genlab.models.sam``): a simulated interactive session per target mask (SAM §3
"Losses and training", appendix A), its focal and Dice mask losses, and the IoU the IoU head learns.

The first prompt is a point or a (noisy) box; each later round adds a point sampled from the error region of the
previous answer and feeds that answer's logits back as a mask prompt; a round without a new point ends the session
(and, past 8 rounds, one more is inserted at random, as SAM's 11 rounds do); with ``distractor_prob`` some later
clicks are negative ones on background the answer already leaves out (not in SAM: users click so, and a model that
never saw it may drop the object). With ``every_round_loss`` every round
is trained, as in SAM; without it (the CPU preset) the first round and one later round drawn at random are, which
estimates the same objective at a fraction of the cost (the answers fed back are detached either way). Mask loss
20·focal + 1·dice, on the logits upsampled to the image's side (``loss_resolution``); for a one-prompt first round
only the best of the 3 masks is trained (the ambiguity-aware minimum); MSE between predicted and actual IoU.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from genlab.data.masks import jitter_boxes, mask_boxes, mask_iou, random_clicks, random_points
from genlab.nn.sam.prompt_encoder import FOREGROUND, NOT_A_POINT


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017) averaged over pixels: ``P×K×H×W`` logits, ``P×1×H×W`` target → ``P×K``."""
    ce = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
    p_t = torch.exp(-ce)  # the probability given to the right answer (exact for 0/1 targets)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * ce * (1 - p_t) ** gamma).flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − soft Dice (Milletari et al. 2016) with +1 smoothing: ``P×K×H×W``, ``P×1×H×W`` → ``P×K``."""
    p = torch.sigmoid(logits).flatten(2)
    t = target.flatten(2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def mask_losses(model: Any, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """20·focal + 1·dice of ``P×K×m×m`` logits against ``P×1×r×r`` (soft) targets → ``P×K``; at r = S the
    logits are upsampled first (``loss_resolution="full"``)."""
    c = model.config
    if target.shape[-1] != logits.shape[-1]:
        logits = model.upsample(logits)
    return c.focal_weight * focal_loss(logits, target) + c.dice_weight * dice_loss(logits, target)


def loss_iou(model: Any, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The IoU the IoU head learns: of the answer and the target, at the loss's resolution."""
    if target.shape[-1] != logits.shape[-1]:
        logits = model.upsample(logits)
    return mask_iou(logits > 0, target > 0.5)


def session_click(answer: torch.Tensor, gt: torch.Tensor, distractor_prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A later round's click for each ``P×H×W`` answer: in its error region (:func:`random_clicks`), or, with
    probability ``distractor_prob``, a negative click on background that neither the answer nor the target covers —
    what a user does who clicks "not this" far from the object, and which should change nothing."""
    new, label = random_clicks(answer, gt)
    if not distractor_prob:
        return new, label
    far, found = random_points(~gt & ~answer)
    swap = found & (torch.rand(len(gt), device=gt.device) < distractor_prob)
    return torch.where(swap[:, None], far, new), torch.where(swap, torch.zeros_like(label), label)


def session_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One simulated interactive session for each of the B×K target masks of a batch of ``model``'s (see the
    module doc).

    Losses are taken on the logits upsampled to S×S (``loss_resolution="full"``), or at the logits' resolution m
    against area-averaged targets (``"low"``); clicks are drawn at full resolution from the upsampled answer.
    """
    c = model.config
    images, masks = batch["images"], batch["masks"]
    B, K, S, _ = masks.shape
    dev = images.device
    index = torch.arange(B, device=dev).repeat_interleave(K)
    features = model.encode(images).select(index)  # one row per target, shared by every round
    full_target = masks.reshape(B * K, 1, S, S)
    target = full_target if c.loss_resolution == "full" else F.adaptive_avg_pool2d(full_target, model.mask_size)
    gt = full_target[:, 0] > 0.5
    P = len(index)
    rows = torch.arange(P, device=dev)
    use_box = torch.rand(P, device=dev) < c.box_prob
    boxes = jitter_boxes(mask_boxes(full_target[:, 0]), S, noise=c.box_noise)
    boxes = torch.where(use_box[:, None], boxes, torch.full_like(boxes, float("nan")))
    first, _ = random_points(gt)
    coords = first[:, None]
    labels = torch.where(use_box, NOT_A_POINT, FOREGROUND)[:, None]

    # Round 1: a single point or a box is one prompt, so the 3 multimask outputs answer it and only the best is
    # trained (SAM §3); the single-mask token also learns boxes, which are unambiguous here.
    logits, iou = model.decode(features, None, coords=coords, labels=labels, boxes=boxes)
    losses = mask_losses(model, logits, target)
    with torch.no_grad():
        true_iou = loss_iou(model, logits, target)
    box_w = use_box.float()
    mask_term = losses[:, 1:].min(dim=1).values + box_w * losses[:, 0]
    iou_term = ((iou[:, 1:] - true_iou[:, 1:]) ** 2).mean(dim=1) + box_w * (iou[:, 0] - true_iou[:, 0]) ** 2
    total = (mask_term + c.iou_weight * iou_term).mean()
    pick = iou[:, 1:].argmax(dim=1) + 1  # the answer a user would keep: the highest predicted IoU
    previous = logits[rows, pick].detach()[:, None]

    # Later rounds: a click in the error region (none in the "refine" rounds), the previous logits as a mask
    # prompt, the single-mask token. Answers are fed back detached (as in SAM), so no round's gradient flows
    # through another: with every_round_loss off, the rounds before one sampled round run without gradient
    # and the session stops there — an estimate of the later rounds' mean loss at the cost of one round.
    if c.rounds == 1:
        return total
    last = c.rounds - 1 if c.every_round_loss else int(torch.randint(1, c.rounds, ()).item())
    refine = {c.rounds - 1} if c.rounds > 2 else set()
    if c.rounds > 8:  # SAM's 11 rounds: 1 prompt, 8 clicks, 2 refinements (one at a random place)
        refine.add(int(torch.randint(1, c.rounds - 1, ()).item()))
    later = torch.zeros((), device=dev)
    for r in range(1, last + 1):
        if r not in refine:
            answer = model.upsample(previous)[:, 0] > 0
            new, new_label = session_click(answer, gt, c.distractor_prob)
            coords = torch.cat([coords, new[:, None]], dim=1)
            labels = torch.cat([labels, new_label[:, None]], dim=1)
        trained = c.every_round_loss or r == last
        with torch.set_grad_enabled(trained and torch.is_grad_enabled()):
            logits, iou = model.decode(
                features, None, coords=coords, labels=labels, boxes=boxes, mask_input=previous, multimask=False
            )
        if trained:
            with torch.no_grad():
                true_iou = loss_iou(model, logits, target)
            step_loss = mask_losses(model, logits, target)[:, 0] + c.iou_weight * (iou[:, 0] - true_iou[:, 0]) ** 2
            later = later + step_loss.mean()
        previous = logits.detach()
    if c.every_round_loss:
        return (total + later) / c.rounds
    return (total + later) / 2
