import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.mask_sets import blobs_sample, shapes_sample
from genlab.data.masks import (
    MaskBatches,
    MaskSource,
    augment,
    center_click,
    jitter_boxes,
    load_mask_folder,
    mask_boxes,
    mask_sources,
    random_clicks,
)
from genlab.errors import GenlabError


def test_shapes_targets_are_objects_parts_and_background():
    s = shapes_sample(0, 3, size=64, max_objects=4, part_prob=1.0)
    assert s.image.shape == (64, 64, 3) and s.masks.shape[1:] == (64, 64) and s.roles[-1] == "background"
    objects = [m for m, r in zip(s.masks, s.roles, strict=True) if r == "object"]
    for i, r in enumerate(s.roles):
        if r == "part":  # a part follows its object and lies inside it: the whole/part ambiguity
            assert (s.masks[i] & ~s.masks[i - 1]).sum() == 0
    assert not (np.any(objects, axis=0) & s.masks[-1]).any()
    assert np.array_equal(shapes_sample(0, 3, size=64, part_prob=1.0).masks, s.masks)


def test_blobs_are_deterministic_distinct_and_some_have_holes():
    a, b = blobs_sample(5, 1, size=64), blobs_sample(5, 1, size=64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(blobs_sample(5, 2, size=64).image, a.image)
    holes = 0
    from scipy import ndimage

    for i in range(30):
        s = blobs_sample(0, i, size=64)
        objects = [m for m, r in zip(s.masks, s.roles, strict=True) if r == "object"]
        assert sum(m.astype(int) for m in objects).max() <= 1 if objects else True  # no overlaps
        holes += sum(int((ndimage.binary_fill_holes(m) & ~m).any()) for m in objects)
    assert holes > 0  # rings: objects with a hole


def _folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks" / "a").mkdir(parents=True)
    img = np.zeros((40, 60, 3), np.uint8)
    img[5:20, 5:25] = (200, 30, 30)
    Image.fromarray(img).save(tmp_path / "images" / "a.png")
    inst = np.zeros((40, 60), np.uint8)
    inst[5:20, 5:25] = 255
    Image.fromarray(inst).save(tmp_path / "masks" / "a" / "0.png")
    Image.fromarray(np.zeros((40, 60, 4), np.uint8) + 90).save(tmp_path / "images" / "b.png")  # RGBA
    labels = np.zeros((40, 60), np.uint8)
    labels[10:30, 10:30], labels[5:15, 40:55] = 1, 2
    Image.fromarray(labels, mode="L").save(tmp_path / "masks" / "b.png")  # a label map, grey values 1 and 2
    Image.fromarray(img[..., 0]).save(tmp_path / "images" / "c.png")  # grey, without masks: skipped


def test_folder_with_instance_pngs_and_label_maps(tmp_path):
    _folder(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        samples = load_mask_folder(tmp_path, 32)
    assert [len(s.masks) for s in samples] == [1, 2]
    assert all(s.image.shape == (32, 32, 3) for s in samples)
    with pytest.raises(GenlabError, match="c.png"):
        load_mask_folder(tmp_path, 32, strict=True)
    train, held = mask_sources(str(tmp_path), size=32, val_count=0, val_fraction=0.5)
    assert len(train) + len(held) == 2 and not train.endless


def test_folder_errors(tmp_path):
    with pytest.raises(GenlabError, match="images/ and masks/"):
        mask_sources(str(tmp_path), size=32, val_count=0, val_fraction=0.1)
    with pytest.raises(GenlabError, match="no such folder"):
        mask_sources(str(tmp_path / "nope"), size=32, val_count=0, val_fraction=0.1)


def test_augmentation_moves_masks_with_the_image():
    from genlab.data.mask_sets import MaskSample

    image = np.zeros((32, 32, 3), np.float32)
    image[4:14, 18:30] = 1.0  # a white block at the top right
    mask = np.zeros((1, 32, 32), bool)
    mask[0, 4:14, 18:30] = True
    s = MaskSample(image, mask, ("object",))
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = augment(s, rng, zoom=True)
        assert a.image.shape == s.image.shape and a.image.min() >= 0 and a.image.max() <= 1
        if len(a.masks):  # a zoomed crop may cut the block out: then its mask goes too
            m = a.masks[0]
            assert a.image[m].mean() > a.image[~m].mean() + 0.5  # the mask still covers the block


def test_batches_are_pure_functions_of_the_step():
    b = MaskBatches(MaskSource("shapes", size=32), batch_size=3, masks_per_image=2, seed=4)
    x, y = b(7), b(7)
    assert x["images"].shape == (3, 3, 32, 32) and x["masks"].shape == (3, 2, 32, 32)
    assert torch.equal(x["images"], y["images"]) and torch.equal(x["masks"], y["masks"])
    assert not torch.equal(b(8)["images"], x["images"])
    _, held = mask_sources("shapes", size=32, val_count=5, val_fraction=0.1)
    assert len(held) == 5 and not np.array_equal(held[0].image, shapes_sample(0, 0, size=32).image)


def test_boxes_and_jitter():
    m = torch.zeros(1, 10, 12)
    m[0, 2:5, 3:9] = 1
    assert mask_boxes(m).tolist() == [[3.0, 2.0, 9.0, 5.0]]
    boxes = jitter_boxes(torch.tensor([[3.0, 2.0, 9.0, 5.0]] * 100), 12, noise=0.1)
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes >= 0).all() and (boxes <= 12).all()
    assert (boxes - torch.tensor([3.0, 2.0, 9.0, 5.0])).abs().max() <= 1.2 + 1e-6  # 2 × 10% of the side


def test_training_clicks_fall_in_the_error_region_with_the_right_label():
    gt = torch.zeros(3, 8, 8, dtype=torch.bool)
    gt[:, 2:6, 2:6] = True
    pred = gt.clone()
    pred[0, 2:6, 2:4] = False  # missed part: a foreground click there
    pred[1, 0, :] = True  # spill-over: a background click there
    coords, labels = random_clicks(pred, gt, torch.Generator().manual_seed(0))
    x, y = coords[0].long().tolist()
    assert labels.tolist() == [1, 0, -1] and 2 <= x < 4 and 2 <= y < 6
    assert coords[1, 1].item() == 0.5


def test_evaluation_click_is_deepest_inside_the_error():
    gt = np.zeros((11, 11), bool)
    gt[1:10, 1:10] = True
    (x, y), label = center_click(None, gt)
    assert (x, y, label) == (5.5, 5.5, 1)
    gt[:, 5:] = False  # target: columns 1-4
    pred = gt.copy()
    pred[1:10, 5:10] = True  # spills over onto columns 5-9: a background click in the middle of that block
    (x, y), label = center_click(pred, gt)
    assert label == 0 and x == 7.5 and 3.5 <= y <= 7.5
    assert center_click(gt, gt)[1] == -1
