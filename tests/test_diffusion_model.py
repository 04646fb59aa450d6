import pytest
import torch

from genlab.errors import GenlabError
from genlab.models.diffusion import DiffusionConfig, DiffusionModel
from genlab.nn.unet import UNet
from genlab.sampling import diffusion as S

TINY = dict(
    image_size=8,
    channels=1,
    base_channels=16,
    channel_mult="1,2",
    attn_resolutions="4",
    num_res_blocks=1,
    dropout=0.0,
    timesteps=200,
)


def tiny(**cfg) -> DiffusionModel:
    torch.manual_seed(0)
    return DiffusionModel(DiffusionConfig(**(TINY | cfg)))


def test_unet_shapes_and_soft_class_weights():
    net = UNet(
        in_channels=3, base_channels=16, channel_mult=(1, 2, 2), attn_resolutions=(4,), image_size=16, num_classes=4
    )
    for p in net.parameters():  # zero-initialized layers would hide the class embedding
        if (p == 0).all():
            torch.nn.init.normal_(p, std=0.1)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0, 999])
    hard = net(x, t, torch.tensor([1, 3]))
    assert hard.shape == x.shape
    soft = net(x, t, torch.nn.functional.one_hot(torch.tensor([1, 3]), 5).float())
    torch.testing.assert_close(soft, hard, atol=1e-5, rtol=0)
    assert not torch.allclose(net(x, t, torch.tensor([0, 0])), hard)


@pytest.mark.slow
def test_tiny_model_overfits_one_image_and_ddpm_reproduces_it():
    model = tiny(prediction="v")  # trained on v, sampled through the ε it implies
    img = torch.zeros(1, 1, 8, 8)
    img[..., 2:6, 3:5] = 1.0  # a bar
    x0 = img * 2 - 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 500)
    for _ in range(500):
        loss = model.loss((x0.repeat(32, 1, 1, 1), None))
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    model.eval()
    out = model.sample(8, generator=torch.Generator().manual_seed(0), sampler="ddpm", steps=200)  # all 200 steps
    assert ((out - img) ** 2).mean().item() < 0.005


def test_seed_repeats_and_differs():
    model = tiny(num_classes=3).eval()
    a = model.sample(2, 1, generator=torch.Generator().manual_seed(5), steps=5)
    b = model.sample(2, 1, generator=torch.Generator().manual_seed(5), steps=5)
    c = model.sample(2, 1, generator=torch.Generator().manual_seed(6), steps=5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (2, 1, 8, 8) and 0 <= a.min() and a.max() <= 1


def test_cfg_at_zero_is_the_conditional_prediction():
    model = tiny(num_classes=3).eval()
    torch.nn.init.normal_(model.unet.head[-1].weight)
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([50, 150]), torch.tensor([0, 2])
    plain = model.denoiser(y, guidance=0.0, clip=False)(x, t)
    torch.testing.assert_close(plain, model.eps(x, t, y))
    guided = model.denoiser(y, guidance=2.0, clip=False)(x, t)
    expected = 3 * model.eps(x, t, y) - 2 * model.eps(x, t, model.null_class(2))
    torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-5)


def test_v_prediction_converts_back_to_noise():
    model = tiny(prediction="v").eval()
    x0, eps, t = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8), torch.tensor([10, 100, 190])
    a = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    model.unet.forward = lambda x, tt, y=None: v  # a perfect v-predictor
    torch.testing.assert_close(model.eps(x_t, t), eps, atol=1e-5, rtol=0)


def _wake(model: DiffusionModel) -> DiffusionModel:
    """Randomize the zero-initialized layers, so the output depends on the input, the time and the class."""
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        if (p == 0).all():
            p.data = 0.1 * torch.randn(p.shape, generator=g)
    return model


def test_interpolation_endpoints_are_the_endpoints_sampled_alone():
    model = _wake(tiny(num_classes=3)).eval()
    frames = model.interpolate(5, through="noise", classes=(0, 2), generator=torch.Generator().manual_seed(0), steps=4)
    assert frames.shape == (5, 1, 8, 8)
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # the two noises interpolate draws
    torch.testing.assert_close(frames[:1], model.sample(1, 0, noise=z[:1], steps=4), atol=1e-4, rtol=0)
    torch.testing.assert_close(frames[-1:], model.sample(1, 2, noise=z[1:], steps=4), atol=1e-4, rtol=0)
    assert not torch.allclose(frames[0], frames[-1], atol=1e-2)

    imgs = torch.rand(2, 1, 8, 8)
    strip = model.interpolate(
        4, through="diffused", images=imgs, strength=0.3, generator=torch.Generator().manual_seed(1), steps=5
    )
    # the same noise diffuses both images to the same start; each end is that image denoised alone (img2img)
    ends = model.img2img(imgs, strength=0.3, generator=torch.Generator().manual_seed(1), steps=5)
    assert strip.shape == (4, 1, 8, 8)
    torch.testing.assert_close(strip[[0, -1]], ends, atol=1e-5, rtol=0)
    with pytest.raises(GenlabError, match="frames"):
        model.interpolate(1, through="noise")


def test_sample_calls_back_once_per_step_and_inpainting_keeps_known_pixels():
    model = _wake(tiny(num_classes=3)).eval()
    seen = []
    model.sample(
        2, 1, steps=4, callback=lambda info: seen.append(info["t"]), generator=torch.Generator().manual_seed(0)
    )
    assert seen == S.timesteps(200, 4, "uniform")

    x = torch.rand(2, 1, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 3:7] = 1
    out = model.inpaint(x, mask, 1, steps=4, resample=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out * (1 - mask), x * (1 - mask)) and not torch.equal(out * mask, x * mask)
    assert torch.equal(model.img2img(x, 1, strength=0.0), x)


def test_bad_requests():
    with pytest.raises(GenlabError, match="multiple of 4"):
        DiffusionConfig(image_size=30, channel_mult="1,2,2").validate()
    uncond = tiny()
    with pytest.raises(GenlabError, match="unconditional"):
        uncond.sample(1, 3)
    with pytest.raises(GenlabError, match="not trained for classifier-free guidance"):
        uncond.sample(1, guidance=2.0)
    cond = tiny(num_classes=3)
    with pytest.raises(GenlabError, match="classes are 0 … 2"):
        cond.sample(1, 7)
    with pytest.raises(GenlabError, match="--steps 0"):
        cond.sample(1, 1, steps=0)
    with pytest.raises(GenlabError, match="--sampler"):
        cond.sample(1, 1, sampler="euler")


def test_loss_is_the_noise_regression():
    model = _wake(tiny(num_classes=3, cond_drop=0.5)).eval()
    x0, y = torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 1])
    loss = model.loss((x0, y), generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # redraw what the loss drew, in its order: t, ε, the class dropout
    t = torch.randint(0, 200, (4,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    y_seen = torch.where(torch.rand(4, generator=g) < 0.5, model.null_class(4), y)
    x_t = S.add_noise(x0, eps, t, model.alphas_cumprod)
    assert loss.item() == pytest.approx(((model.unet(x_t, t, y_seen) - eps) ** 2).mean().item(), rel=1e-6)
    assert not torch.equal(y_seen, y) and not torch.equal(y_seen, model.null_class(4))  # both kinds of rows

    # a perfect noise predictor (it knows x_0) has zero loss
    model.unet.forward = lambda x, tt, yy=None: (
        (x - model.alphas_cumprod[tt].sqrt().view(-1, 1, 1, 1) * x0)
        / (1 - model.alphas_cumprod[tt]).sqrt().view(-1, 1, 1, 1)
    )
    assert model.loss((x0, y)).item() < 1e-6
