import numpy as np
import pytest

from genlab.data.shapes import COLORS, KINDS, make_scene, position_name


def test_deterministic_by_seed_and_index():
    a, b = make_scene(3, 17, size=32), make_scene(3, 17, size=32)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    assert not np.array_equal(a.image, make_scene(3, 18, size=32).image)
    assert not np.array_equal(a.image, make_scene(4, 17, size=32).image)


@pytest.mark.parametrize("size", [16, 32, 64, 100])
def test_any_size_and_valid_records(size):
    for i in range(20):
        s = make_scene(0, i, size=size, max_objects=3, part_prob=0.5)
        assert s.image.shape == (size, size, 3) and s.image.dtype == np.float32
        assert 0.0 <= s.image.min() and s.image.max() <= 1.0
        assert 1 <= len(s.objects) <= 3 and s.label == KINDS.index(s.objects[0].kind)
        for o in s.objects:
            assert o.mask.shape == (size, size) and o.mask.any()
            x0, y0, x1, y1 = o.box
            assert o.mask[y0:y1, x0:x1].sum() == o.mask.sum()
            assert o.phrase() in s.caption and o.kind in KINDS and o.color in COLORS
            if o.part is not None:
                assert (o.part.mask & ~o.mask).sum() == 0, "a part lies inside its object"
                assert o.part.mask.sum() < o.mask.sum()
        for a in range(len(s.objects)):
            for b in range(a + 1, len(s.objects)):
                assert not (s.objects[a].mask & s.objects[b].mask).any(), "objects do not overlap"


def test_masks_match_the_drawn_colours():
    for i in range(30):
        s = make_scene(1, i, size=64, textured_prob=0.0)
        o = s.objects[0]
        inner = o.mask.copy()
        if o.part is not None:
            inner &= ~o.part.mask
        colour = np.array(COLORS[o.color]) / 255.0
        # well inside the mask (away from anti-aliased edges) the pixels have the object's colour
        from scipy.ndimage import binary_erosion

        core = binary_erosion(inner, iterations=2)
        if core.any():
            assert np.abs(s.image[core] - colour).max() < 0.02


def test_caption_words():
    s = make_scene(0, 5, size=32, max_objects=2, part_prob=1.0, textured_prob=1.0)
    assert " and " in s.caption or len(s.objects) == 1
    assert "background" in s.caption and "inside" in s.caption
    assert position_name(0, 0) == "top left" and position_name(1, 1) == "center" and position_name(2, 1) == "bottom"
