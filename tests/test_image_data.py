import json

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.image_data import ImageBatches, load_image_set, split_images
from genlab.errors import GenlabError, GenlabWarning


def test_digits_bundled_and_upscaled():
    d = load_image_set("digits", 16)
    assert d.images.shape == (1797, 1, 16, 16) and d.num_classes == 10
    assert -1.0 <= d.images.min() and d.images.max() <= 1.0
    assert set(d.labels.tolist()) == set(range(10))


def test_shapes_bundled_set_has_labels_and_captions():
    from genlab.data.image_data import load_shapes

    s = load_shapes(16, count=50)
    assert s.images.shape == (50, 3, 16, 16) and len(s.captions) == 50 and s.num_classes == 6


def _write(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_folder_labels_captions_and_modes(tmp_path):
    rng = np.random.default_rng(0)
    _write(tmp_path / "cats" / "a.png", (rng.random((40, 60, 3)) * 255).astype(np.uint8))
    _write(tmp_path / "cats" / "b.png", (rng.random((30, 30)) * 255).astype(np.uint8))  # grey
    _write(tmp_path / "dogs" / "c.png", (rng.random((50, 20, 4)) * 255).astype(np.uint8))  # RGBA
    (tmp_path / "cats" / "a.txt").write_text("a noisy cat\n")
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "dogs/c.png", "caption": "a dog"}) + "\n")
    d = load_image_set(str(tmp_path), 16)
    assert d.images.shape == (3, 3, 16, 16) and d.class_names == ["cats", "dogs"]
    assert d.labels.tolist() == [0, 0, 1] and d.captions == ["a noisy cat", None, "a dog"]


def test_unreadable_files_are_skipped_with_a_count_or_refused(tmp_path):
    _write(tmp_path / "good.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"definitely not a png")
    with pytest.warns(GenlabWarning, match=r"skipped 1 unreadable file\(s\) of 2; first: .*broken.png"):
        d = load_image_set(str(tmp_path), 8)
    assert len(d) == 1
    with pytest.raises(GenlabError, match="broken.png"):
        load_image_set(str(tmp_path), 8, strict=True)


def test_bad_sources(tmp_path):
    with pytest.raises(GenlabError, match="no images"):
        load_image_set(str(tmp_path), 8)
    with pytest.raises(GenlabError, match="no such folder"):
        load_image_set(str(tmp_path / "nope"), 8)
    (tmp_path / "only_bad.png").write_bytes(b"xx")
    with pytest.raises(GenlabError, match="none of its 1 image files"), pytest.warns(GenlabWarning):
        load_image_set(str(tmp_path), 8)


def test_split_and_batches_are_deterministic():
    d = load_image_set("digits", 8)
    tr, va = split_images(d, 0.2)
    assert len(tr) + len(va) == len(d) and len(va) == 359
    tr2, va2 = split_images(d, 0.2)
    assert torch.equal(va.images, va2.images)
    b = ImageBatches(tr, batch_size=4, seed=1)
    assert torch.equal(b(3)[0], ImageBatches(tr, batch_size=4, seed=1)(3)[0])
    assert not torch.equal(b(3)[0], b(4)[0])
