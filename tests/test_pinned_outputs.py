"""Every shipped model gives the same outputs for the same seed, release after release.

Each figure below was recorded from the shipped checkpoint before a refactoring and must survive it: a change of
code layout may not change what a user's seed draws. Floats are compared to a tolerance (BLAS kernels differ a little
between CPUs), token ids and texts exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genlab
from genlab.data.image_data import load_digits, load_shapes

pytestmark = pytest.mark.slow


def _fingerprint(x: torch.Tensor) -> list[float]:
    """Four numbers that move if any output value moves: sum, weighted sum, sum of squares, first value."""
    flat = x.detach().double().flatten().cpu()
    weights = torch.linspace(-1, 1, flat.numel(), dtype=torch.float64)
    return [float(flat.sum()), float((flat * weights).sum()), float((flat**2).sum()), float(flat[0])]


def _close(got: list[float], want: list[float]) -> None:
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_gpt_kjv_sample():
    model = genlab.load(task="text")
    text = model.sample(1, "In the beginning", max_tokens=40, generator=torch.Generator().manual_seed(7))[0]
    assert text == PINNED["gpt-kjv"]
    _close([float(model.log_prob(" God created the heaven", cond="In the beginning"))], PINNED["gpt-kjv-logprob"])


def test_diffusion_digits_samplers():
    model = genlab.load(task="image")
    for sampler, steps in (("ddim", 20), ("ddpm", 20), ("dpmpp", 10)):
        g = torch.Generator().manual_seed(3)
        out = model.sample(4, torch.tensor([0, 3, 7, 9]), generator=g, sampler=sampler, steps=steps, guidance=1.0)
        _close(_fingerprint(out), PINNED[f"diffusion-digits-{sampler}"])


def test_diffusion_digits_classifier_guidance_and_interpolation():
    model = genlab.load(task="image")
    clf = genlab.load(task="guidance")
    g = torch.Generator().manual_seed(4)
    out = model.sample(2, 5, generator=g, steps=10, classifier=clf, classifier_scale=2.0)
    _close(_fingerprint(out), PINNED["diffusion-digits-classifier"])
    g = torch.Generator().manual_seed(5)
    frames = model.interpolate(4, through="noise", classes=(1, 2), generator=g, steps=10, guidance=1.0)
    _close(_fingerprint(frames), PINNED["diffusion-digits-interpolate"])


def test_classifiers_features_attributes():
    digits = (load_digits(8).images[:64] + 1) / 2
    shapes = (load_shapes(32, count=64).images + 1) / 2
    preds, feats = genlab.load(task="classifier").predict(torch.nn.functional.interpolate(digits, size=16))
    _close(_fingerprint(feats), PINNED["classifier-digits"])
    noisy = genlab.load(task="guidance")
    _close(_fingerprint(noisy.logits(digits_16(digits) * 2 - 1, torch.full((64,), 100))), PINNED["classifier-noisy"])
    feat = genlab.load(task="features")
    _close(_fingerprint(feat.perceptual_distance(shapes[:32] * 2 - 1, shapes[32:] * 2 - 1)), PINNED["features"])
    attrs = genlab.load(task="attributes").predict(shapes)
    assert {k: v.tolist()[:16] for k, v in attrs.items()} == PINNED["attributes"]


def digits_16(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=16)


def test_clip_zero_shot():
    shapes = (load_shapes(32, count=16).images + 1) / 2
    probs = genlab.load(task="clip").zero_shot(shapes, ["a circle", "a square", "a star", "a triangle"])
    _close(_fingerprint(probs), PINNED["clip"])


def test_text2image_sample_img2img_inpaint():
    model = genlab.load(task="text2image")
    prompts = ["a large red circle in the center", "a small blue square at the top left"]
    for sampler, steps in (("ddim", 10), ("dpmpp", 10)):
        g = torch.Generator().manual_seed(11)
        out = model.sample(2, prompts, generator=g, sampler=sampler, steps=steps, guidance=3.0, negative_prompt="green")
        _close(_fingerprint(out), PINNED[f"text2image-{sampler}"])
    images = (load_shapes(32, count=2).images + 1) / 2
    g = torch.Generator().manual_seed(12)
    out = model.img2img(images, "a large yellow star at the right", strength=0.6, generator=g, steps=10, guidance=3.0)
    _close(_fingerprint(out), PINNED["text2image-img2img"])
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    g = torch.Generator().manual_seed(13)
    out = model.inpaint(images, mask, "a small green triangle", generator=g, steps=8, guidance=2.0, resample=2)
    _close(_fingerprint(out), PINNED["text2image-inpaint"])
    g = torch.Generator().manual_seed(14)
    out = model.interpolate_prompts("a red circle", "a blue square", 3, generator=g, steps=8, guidance=2.0)
    _close(_fingerprint(out), PINNED["text2image-interpolate"])


def test_sam_predict():
    from genlab.segment.predictor import SegmentPredictor

    predictor = SegmentPredictor.load()
    image = ((load_shapes(64, count=1, seed=5).images[0] + 1) / 2).permute(1, 2, 0).numpy()
    predictor.set_image(image)
    masks, scores, logits = predictor.predict([[32, 32]], [1], multimask=True)
    _close(_fingerprint(torch.as_tensor(logits)), PINNED["sam-click"])
    _close(scores.tolist(), PINNED["sam-click-scores"])
    masks, scores, logits = predictor.predict(box=[8, 8, 56, 56], multimask=False, refine=1)
    _close(_fingerprint(torch.as_tensor(logits)), PINNED["sam-box"])


PINNED: dict = {
    "classifier-digits": [2355.28736002557, 2.269147134483621, 3799.9843546155817, 1.3771289587020874],
    "classifier-noisy": [-772.9937417209148, -4.709278255887625, 8163.680858995448, 8.301456451416016],
    "features": [175.10132336616516, -1.5980307594422376, 1066.50496967516, 7.765462875366211],
    "attributes": {
        "kind": [3, 4, 3, 0, 4, 3, 2, 5, 3, 0, 2, 2, 0, 4, 1, 3],
        "color": [1, 2, 3, 0, 0, 4, 0, 2, 2, 0, 0, 3, 0, 4, 4, 2],
        "size": [1, 0, 1, 2, 1, 1, 1, 0, 1, 1, 0, 0, 0, 2, 2, 0],
        "position": [4, 7, 0, 4, 3, 6, 4, 3, 8, 1, 1, 8, 2, 0, 2, 6],
    },
    "clip": [16.000000436940386, -0.05783297134837295, 15.877327299363415, 5.36166614595611e-16],
    "diffusion-digits-classifier": [158.03465616703033, -5.162339651421329, 106.52307155677427, 0.0],
    "diffusion-digits-interpolate": [328.16865488886833, 12.610958834052207, 239.08583746145243, 0.018741518259048462],
    "diffusion-digits-ddim": [329.61651173233986, -13.394336107743207, 226.26396574056471, 0.0018648505210876465],
    "diffusion-digits-ddpm": [350.7440865933895, -6.54080709308124, 234.2091159174753, 0.025235295295715332],
    "diffusion-digits-dpmpp": [328.9144526422024, -11.896185233533558, 227.56269976980806, 0.001400679349899292],
    "gpt-kjv": " of Assyria the principal of Nazarethite",
    "gpt-kjv-logprob": [-21.721073150634766],
    "sam-click": [70935.73449127004, -43965.5877568213, 1344458.589586429, 10.98351001739502],
    "sam-click-scores": [0.978809654712677, 0.9803464412689209, 0.26292502880096436],
    "sam-box": [48610.02056418359, -5119.9625881062075, 705052.5586571379, 13.728453636169434],
    "text2image-ddim": [3475.6707061827183, -299.2499857873971, 2193.3252632762596, 0.6982309818267822],
    "text2image-dpmpp": [3477.3315996825695, -297.8276350567527, 2193.415249450149, 0.699047863483429],
    "text2image-img2img": [3179.7169594466686, 734.6252018099797, 2130.6999987926165, 0.2586067318916321],
    "text2image-inpaint": [3078.141801804304, 858.7427803573471, 2000.3690763497145, 0.23529410362243652],
    "text2image-interpolate": [4277.620804905891, -5.485987265881022, 2060.6558570660804, 0.4714830219745636],
}
