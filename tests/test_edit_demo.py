"""The editing section of ``genlab demo``: every method runs on bundled photos and its images are written."""

import re

import pytest

from genlab.data.images import read_image
from genlab.demo import SECTIONS
from genlab.demo.edit import edit_section


@pytest.mark.slow
def test_edit_section_writes_its_images(tmp_path):
    assert ("edit", edit_section) in SECTIONS
    page = edit_section(tmp_path, seed=0)
    images = re.findall(r"<img src='([^']+)' width='(\d+)'", page)
    assert len(images) == 13 and all((tmp_path / name).stat().st_size > 100 for name, _ in images)
    for name, width in images:  # small results are written enlarged: every image is shown at least 192 px wide
        assert int(width) >= 192 and read_image(tmp_path / name).shape[1] == int(width)
    methods = ("image quilting", "Efros–Leung", "PatchMatch field", "PSNR in hole", "retargeted", "Deep Image Prior")
    assert all(words in page for words in methods)
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page)
    noisy, denoised = (float(re.findall(r"([\d.]+) dB", c)[-1]) for c in captions[-2:])
    assert denoised > noisy + 3  # Deep Image Prior removed much of the σ = 25 noise
