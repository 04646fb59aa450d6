"""GAN: each loss trains only its own network, the gradient penalty is the WGAN-GP term, the projection critic reads
the class, an interrupted run resumes exactly (two optimizers), and the commands a user runs."""

from __future__ import annotations

import json

import pytest
import torch

from genlab.errors import GenlabError
from genlab.models.gan import GAN, LOSSES, GANConfig
from genlab.train.config import TrainConfig
from genlab.train.trainer import Trainer

from .test_cli import one_line_error


def _tiny(**kw) -> GAN:
    torch.manual_seed(0)
    return GAN(GANConfig(**({"image_size": 8, "latent": 8, "width": 8, "downs": 2} | kw)))


def _batch(n: int = 6, classes: bool = False) -> tuple:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (n,), generator=g) if classes else None
    return torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, labels, None


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_reaches_only_its_own_network(loss):
    model = _tiny(loss=loss, num_classes=3, critic_norm="none" if loss == "wgan-gp" else "batch")
    losses = model.losses(_batch(classes=True))
    assert set(losses) == {"model", "critic"}
    for name, owner, other in (("model", model.generator, model.critic), ("critic", model.critic, model.generator)):
        model.zero_grad(set_to_none=True)
        losses[name].backward(retain_graph=True)
        assert torch.isfinite(losses[name])
        assert all(p.grad is not None for p in owner.parameters()), name
        assert all(p.grad is None for p in other.parameters()), name


def test_wgan_gp_refuses_a_batch_normalised_critic():
    with pytest.raises(GenlabError, match="critic_norm=none"):
        GANConfig(loss="wgan-gp").validate()
    GANConfig(loss="wgan-gp", critic_norm="none").validate()
    with pytest.raises(GenlabError, match="critic_norm="):
        GANConfig(critic_norm="layer").validate()


def test_the_gradient_penalty_is_zero_for_a_unit_gradient_critic_and_positive_otherwise():
    model = _tiny(spectral_norm=False)
    real, fake = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)

    class UnitSlope(torch.nn.Module):  # D(x) = <w, x> with ‖w‖ = 1: the gradient has norm 1 everywhere
        def forward(self, x, y):  # noqa: ANN001, ANN202
            w = torch.ones(64) / 8.0
            return x.flatten(1) @ w

    model.critic = UnitSlope()
    assert float(model._penalty(real, fake, None).detach()) == pytest.approx(0.0, abs=1e-10)
    model = _tiny(spectral_norm=False)
    assert float(model._penalty(real, fake, None).detach()) > 0


def test_the_projection_critic_reads_the_class_and_sampling_takes_one():
    model = _tiny(num_classes=3).eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        a, b = model.critic(x, torch.tensor([0, 0])), model.critic(x, torch.tensor([2, 2]))
    assert not torch.allclose(a, b)
    s = model.sample(5, 1, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 8, 8) and float(s.min()) >= 0 and float(s.max()) <= 1
    with pytest.raises(GenlabError, match="classes are 0"):
        model.sample(2, 7)
    frames = model.interpolate(4, classes=(0, 2), generator=torch.Generator().manual_seed(0))
    assert frames.shape == (4, 1, 8, 8)
    with pytest.raises(GenlabError, match="no encoder"):
        model.interpolate(4, images=torch.rand(2, 1, 8, 8))


def test_an_interrupted_run_resumes_exactly(tmp_path):
    def setup(out, seed_model=0):  # noqa: ANN001, ANN202
        torch.manual_seed(seed_model)
        model = GAN(GANConfig(image_size=8, latent=8, width=8, downs=2, num_classes=3))  # BatchNorm buffers too
        cfg = TrainConfig(steps=8, batch_size=4, warmup=0, beta1=0.5, ema=0.9, eval_every=1000, ckpt_every=1000)
        images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
        labels = torch.arange(32) % 3

        def batches(i: int) -> tuple:
            idx = torch.randint(0, 32, (4,), generator=torch.Generator().manual_seed(i))
            return images[idx], labels[idx], None

        return model, cfg, batches

    model, cfg, batches = setup(tmp_path / "a")
    Trainer(model, cfg, batches=batches, out_dir=tmp_path / "a", quiet=True).fit()
    model_b, cfg_b, batches_b = setup(tmp_path / "b")
    trainer = Trainer(model_b, cfg_b, batches=None, out_dir=tmp_path / "b", quiet=True)

    def interrupting(i):  # noqa: ANN001, ANN202
        if i == 4:
            trainer._interrupted = True
        return batches_b(i)

    trainer.batches = interrupting
    assert trainer.fit().step == 5
    torch.manual_seed(999)  # a different process state: everything must come from the checkpoint
    model_c, cfg_c, batches_c = setup(tmp_path / "b", seed_model=7)
    assert Trainer(model_c, cfg_c, batches=batches_c, out_dir=tmp_path / "b", quiet=True).fit(resume=True).step == 8
    for (name, a), b in zip(model.state_dict().items(), model_c.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_train_eval_generate_on_digits(cli, tmp_path):
    out = tmp_path / "gan"
    r = cli("train", "image", "--data", "digits", "--model", "gan", "--steps", "60", "--set", "num_classes=0",
            "--out", out, "--json")  # fmt: skip
    assert r.code == 0, r
    assert json.loads(r.out)["held_out"]["likelihood"] == "none"
    r = cli("eval", "image", out, "--data", "digits", "--fid", "--samples", "200", "--features", "classifier",
            "--json")  # fmt: skip
    assert r.code == 0, r
    figures = json.loads(r.out)
    assert figures["likelihood"] == "none" and len(figures["class_shares"]) == 10
    assert 0 <= figures["class_kl_to_uniform"] <= 2.31  # log 10: every sample one class
    assert "fid_classifier" in figures
    r = cli("generate", "image", "--model", out, "--n", "16", "--seed", "0", "--out", tmp_path / "g.png")
    assert r.code == 0 and (tmp_path / "g.png").is_file(), r
    one_line_error(cli("generate", "image", "--model", out, "--class", "3", "--out", tmp_path / "c.png"), "--class")
    one_line_error(cli("generate", "image", "--model", out, "--temperature", "0.5", "--out", tmp_path / "t.png"),
                   "--temperature")  # fmt: skip
