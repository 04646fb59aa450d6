import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.segment.formats import decode_rle, draw_prompts, encode_rle, mask_to_polygons, overlay, rle_counts


def test_rle_counts_are_column_major_and_start_with_zeros():
    m = np.array([[0, 1], [1, 1]], bool)  # columns: (0, 1), (1, 1)
    assert rle_counts(m) == [1, 3]
    assert rle_counts(np.ones((2, 2), bool)) == [0, 4]


def test_rle_strings_match_pycocotools():
    # reference strings from pycocotools 2.0.8: mask.encode(np.asfortranarray(m))["counts"]
    m = np.array([[0, 1], [1, 1]], bool)
    assert encode_rle(m) == {"size": [2, 2], "counts": "13"}
    small = np.zeros((6, 5), bool)
    small[1:4, 2:5], small[5, 0] = True, True
    assert encode_rle(small)["counts"] == "5172L000O"
    big = np.zeros((64, 64), bool)
    big[10:30, 5:50], big[40:60, 40:44] = True, True
    assert encode_rle(big)["counts"] == BIG


BIG = "Z:d0\\1" + "0" * 69 + "nN040L040L040L040n0000000000fk0"


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip(seed):
    rng = np.random.default_rng(seed)
    m = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < rng.uniform(0.05, 0.95)
    rle = encode_rle(m)
    assert np.array_equal(decode_rle(rle), m)
    assert np.array_equal(decode_rle({"size": rle["size"], "counts": rle_counts(m)}), m)  # uncompressed form


def test_bad_rle_is_a_clear_error():
    with pytest.raises(GenlabError, match="cover"):
        decode_rle({"size": [3, 3], "counts": [1, 2]})
    with pytest.raises(GenlabError, match="size"):
        decode_rle({"counts": "13"})


def test_polygons_trace_each_region():
    m = np.zeros((20, 20), bool)
    m[2:8, 3:10] = True
    m[12:18, 12:18] = True
    polys = mask_to_polygons(m)
    assert len(polys) == 2
    xs = np.array(polys[0][0::2] + polys[1][0::2])
    ys = np.array(polys[0][1::2] + polys[1][1::2])
    assert xs.min() >= 2.5 and xs.max() <= 18.5 and ys.min() >= 1.5 and ys.max() <= 18.5
    from skimage.draw import polygon as fill

    drawn = np.zeros_like(m)
    for p in polys:  # filling the polygons (pixel centres at +0.5) gives the mask back
        rr, cc = fill(np.array(p[1::2]) - 0.5, np.array(p[0::2]) - 0.5, m.shape)
        drawn[rr, cc] = True
    assert (drawn == m).mean() > 0.95


def test_overlay_and_prompts_keep_the_image_outside_masks():
    img = np.full((10, 10, 3), 0.2, np.float32)
    m = np.zeros((10, 10), bool)
    m[2:5, 2:5] = True
    out = overlay(img, [m])
    assert np.allclose(out[~m], 0.2) and not np.allclose(out[m], 0.2)
    drawn = draw_prompts(img, points=[[7, 7]], labels=[0], boxes=[1, 1, 6, 6], scale=4)
    assert drawn.shape == (40, 40, 3)
    assert drawn[30, 30, 0] > 0.8 and drawn[30, 30, 1] < 0.3  # a red background click at (7.5, 7.5) × 4
