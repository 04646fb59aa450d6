import numpy as np
import pytest
from PIL import Image

from genlab.data.images import SKIMAGE_PHOTOS, SKLEARN_PHOTOS, bundled_image, read_image, write_image
from genlab.errors import GenlabError


@pytest.mark.parametrize("name", SKIMAGE_PHOTOS + SKLEARN_PHOTOS)
def test_bundled_photos_load_offline(name):
    arr = bundled_image(name)
    assert arr.dtype == np.float32 and 0.0 <= arr.min() and arr.max() <= 1.0 and min(arr.shape[:2]) >= 100


def test_modes_all_become_rgb_in_unit_range(tmp_path):
    rgb = (np.random.default_rng(0).random((8, 9, 3)) * 255).astype(np.uint8)
    cases = {
        "grey.png": Image.fromarray(rgb[..., 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full((8, 9), 128, np.uint8)])),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "sixteen.png": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
        arr = read_image(tmp_path / name)
        assert arr.shape == (8, 9, 3) and arr.dtype == np.float32, name
        assert 0.0 <= arr.min() and arr.max() <= 1.0, name
    sixteen = read_image(tmp_path / "sixteen.png", grey=True)
    np.testing.assert_allclose(sixteen, rgb[..., 0] / 255.0, atol=1e-4)
    # half-transparent pixels are composited over white: never darker than the opaque colour
    assert (read_image(tmp_path / "rgba.png") >= rgb / 255.0 - 1e-6).all()


def test_write_read_round_trip(tmp_path):
    arr = np.random.default_rng(1).random((5, 7, 3)).astype(np.float32)
    back = read_image(write_image(tmp_path / "x.png", arr))
    np.testing.assert_allclose(back, arr, atol=1 / 255)


def test_bad_images_are_named(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    with pytest.raises(GenlabError, match="fake.png: not a readable image"):
        read_image(tmp_path / "fake.png")
    with pytest.raises(GenlabError, match="no such image"):
        read_image(tmp_path / "missing.png")
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(GenlabError, match="100×100 = 10,000 pixels is more than --max-pixels 5,000"):
        read_image(tmp_path / "big.png", max_pixels=5000)
    with pytest.raises(GenlabError, match="unknown sample photo"):
        bundled_image("mona-lisa")
