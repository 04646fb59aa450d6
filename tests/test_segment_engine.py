"""The segmentation data engine (genlab.data.engine), mixtures of generated sets, the classic baselines
(genlab.segment.baselines) and the protocol that scores any one-mask method (genlab.eval.segment.evaluate_method)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data import engine
from genlab.data.domain import data_domain
from genlab.data.mask_sets import MaskSample, engine_sample, shapes_sample
from genlab.data.masks import MaskSource, is_generated, mask_sources
from genlab.errors import GenlabError
from genlab.eval.segment import evaluate_method, iou
from genlab.segment.baselines import Superpixels, flood_fill, grabcut


@pytest.mark.parametrize("name", ["scenes", "scenes-heldout", "photos"])
def test_engine_scenes_are_deterministic_and_their_masks_exact(name):
    a, b = engine_sample(name, 3, 7, size=64), engine_sample(name, 3, 7, size=64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks) and a.roles == b.roles
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.float32 and 0 <= a.image.min() <= a.image.max() <= 1
    assert not np.array_equal(a.image, engine_sample(name, 3, 8, size=64).image)
    objects = [m for m, r in zip(a.masks, a.roles, strict=True) if r == "object"]
    assert all(m.sum() >= engine.MIN_PIXELS for m in a.masks[:-1])
    assert np.array_equal(a.masks[-1], ~np.any(objects, axis=0))  # the background is what no object covers


def test_later_objects_occlude_earlier_ones_and_parts_lie_inside_their_object():
    seen_parts = 0
    for index in range(40):
        s = engine_sample("scenes", 0, index, size=64)
        objects = [m for m, r in zip(s.masks, s.roles, strict=True) if r == "object"]
        for i, a in enumerate(objects):  # visible masks of different objects never overlap
            for b in objects[i + 1 :]:
                assert not (a & b).any()
        for k, role in enumerate(s.roles):
            if role == "part" and s.roles[k - 1] == "object":
                seen_parts += 1
                assert (s.masks[k] & ~s.masks[k - 1]).sum() == 0  # inside the object drawn just before it
    assert seen_parts >= 3


def test_held_out_kinds_and_photos_never_reach_training():
    assert not set(engine.TRAIN_KINDS) & set(engine.HELD_OUT_KINDS)
    assert not set(engine.TRAIN_PHOTOS) & set(engine.HELD_OUT_PHOTOS)
    rng = np.random.default_rng(0)
    ring = engine._shape("ring", rng, 32, 32, 20, 64) >= 0.5
    assert ring.any() and not ring[32, 32]  # a ring has a hole where its centre is
    letter = engine._shape("letter", rng, 32, 32, 20, 64) >= 0.5
    assert 20 < letter.sum() < 64 * 64 // 2


def test_a_mixture_takes_its_sets_in_turn():
    mix = MaskSource("scenes,shapes", size=32, seed=5)
    assert is_generated("scenes,shapes") and not is_generated("scenes,nope")
    assert np.array_equal(mix[0].image, engine_sample("scenes", 5, 0, size=32, max_objects=4, part_prob=0.5).image)
    assert np.array_equal(mix[3].image, shapes_sample(5, 1, size=32, max_objects=4, part_prob=0.5).image)
    train, held = mask_sources("scenes,shapes", size=32, val_count=4, val_fraction=0.1)
    assert len(held) == 4 and not np.array_equal(train[0].image, held[0].image)  # seed + 1 is held out
    assert "photo backgrounds" in data_domain("scenes,shapes", size=32)["kind"]
    with pytest.raises(GenlabError, match="no such folder"):
        mask_sources("scenes,nope", size=32, val_count=4, val_fraction=0.1)


def _square() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((32, 32, 3), 0.8, np.float32)
    image[8:20, 10:24] = (0.9, 0.1, 0.1)
    gt = np.zeros((32, 32), bool)
    gt[8:20, 10:24] = True
    return image, gt


def test_flood_fill_grabcut_and_superpixels_find_a_flat_square():
    image, gt = _square()
    assert iou(flood_fill(image, [(15.5, 12.5)], [1]), gt) == 1.0
    assert iou(grabcut(image, (8, 6, 26, 22)), gt) > 0.9
    assert grabcut(image, (0, 0, 32, 32)).shape == (32, 32)  # a whole-image box does not break GrabCut
    sp = Superpixels(image, segments=20, compactness=10.0)
    assert sp.region([(15.5, 12.5)], [1])[12, 15] and not sp.region([(15.5, 12.5)], [1])[30, 30]
    both = flood_fill(image, [(15.5, 12.5), (2.5, 2.5)], [1, 0])  # a negative click removes its region
    assert iou(both, gt) == 1.0
    with pytest.raises(GenlabError, match="outside"):
        flood_fill(image, [(40, 3)], [1])
    with pytest.raises(GenlabError, match="mode"):
        flood_fill(image, [(3, 3)], [1], mode="magic")


def test_a_click_in_a_part_reads_as_the_part_or_its_whole():
    from genlab.eval.segment import _readings

    whole = np.zeros((16, 16), bool)
    whole[2:14, 2:14] = True
    part = np.zeros_like(whole)
    part[6:10, 6:10] = True
    sample = MaskSample(np.zeros((16, 16, 3), np.float32), np.stack([whole, part, ~whole]),
                        ("object", "part", "background"))  # fmt: skip
    answers = torch.from_numpy(np.stack([part, whole, np.zeros_like(whole)]))
    inside_part = _readings(answers, sample, part, torch.tensor([7, 7]))
    assert inside_part.tolist() == [1.0, 1.0, 0.0]  # either reading is right; the empty mask is not
    outside_part = _readings(answers, sample, whole, torch.tensor([3, 3]))  # only the whole holds this click
    assert outside_part[0] == pytest.approx(16 / 144) and outside_part[1] == 1.0


def test_evaluate_method_scores_a_perfect_and_a_useless_method():
    image, gt = _square()
    samples = [MaskSample(image, np.stack([gt, ~gt]), ("object", "background"))]
    perfect = evaluate_method(samples, click=lambda i, p, lab: gt, box=lambda i, b: gt)
    assert perfect["miou_1click"] == perfect["miou_5click"] == perfect["miou_box"] == 1.0
    assert perfect["click_inside"] == perfect["box_inside"] == 1.0 and perfect["masks"] == 1
    empty = evaluate_method(samples, click=lambda i, p, lab: np.zeros_like(gt),
                            box=lambda i, b: np.ones_like(gt))  # fmt: skip
    assert empty["miou_1click"] == 0.0 and empty["click_inside"] == 0.0
    assert empty["box_inside"] == pytest.approx(gt.sum() / gt.size)  # all of the image, little of it in the box


def test_the_chosen_mask_agrees_with_the_prompts_before_it_scores_high():
    import torch

    from genlab.data.masks import choose_masks
    from genlab.segment.predictor import best_mask

    masks = np.zeros((3, 16, 16), bool)
    masks[0, 0:4, 0:4] = True  # off the click, scored highest
    masks[1, 6:12, 6:12] = True  # holds the click
    masks[2, 4:14, 4:14] = True  # holds it too, and spills out of a tight box
    scores = np.array([0.9, 0.5, 0.6], np.float32)
    assert best_mask(masks, scores)[2] == 0  # no prompt given: the highest score
    assert best_mask(masks, scores, [(8.5, 8.5)], [1])[2] == 2  # the best-scored of the two holding the click
    assert best_mask(masks, scores, [(8.5, 8.5), (4.5, 4.5)], [1, 0])[2] == 1  # and not the negative click
    assert best_mask(masks, scores, [(8.5, 8.5)], [1], box=(6, 6, 12, 12))[2] == 1  # and inside the box
    assert best_mask(masks, scores, [(15.5, 15.5)], [1])[2] == 0  # none agrees: the highest score
    batch = torch.from_numpy(np.stack([masks, masks]))
    picks = choose_masks(batch, torch.from_numpy(np.stack([scores, scores])),
                         torch.tensor([[[8.5, 8.5]], [[1.5, 1.5]]]), torch.tensor([[1], [1]]))  # fmt: skip
    assert picks.tolist() == [2, 0]


def test_the_shipped_model_beats_grabcut_from_a_box_on_unseen_photos():
    import genlab
    from genlab.eval.segment import evaluate_prompts

    samples = [engine_sample("photos", 500, i, size=64) for i in range(20)]
    model = evaluate_prompts(genlab.SegmentPredictor.load().model, samples, clicks=(1,), boxes=True)
    classic = evaluate_method(samples, clicks=(), box=lambda i, b: grabcut(samples[i].image, b))
    assert model["click_inside"] >= 0.9
    assert model["miou_box"] > classic["miou_box"] + 0.05, (model["miou_box"], classic["miou_box"])
