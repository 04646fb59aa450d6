"""Deep Image Prior (Ulyanov, Vedaldi & Lempitsky 2018): an untrained ConvNet as the prior of a restoration.

Formulation: the restored image is ``x* = f_θ*(z)`` with ``θ* = argmin_θ E(f_θ(z); x0)`` (paper eq. 2): a
randomly initialized network ``f_θ`` (:class:`genlab.nn.skipnet.SkipEncoderDecoder`) maps a *fixed* noise input
``z`` (``C_z×H×W``, uniform in [0, 0.1]) to an image, and is fitted to the degraded image ``x0`` alone. The
network fits natural structure long before it fits noise, so stopping early gives the restoration. Per task the
data term ``E`` is:

* ``denoise`` and ``dejpeg`` — ``‖f(z) - x0‖²`` (eq. 3);
* ``inpaint`` — ``‖(f(z) - x0) ⊙ m‖²``, ``m`` = 1 on known pixels (eq. 6);
* ``superres`` — ``‖d(f(z)) - x0‖²``, ``d`` the ×s downsampler (anti-aliased bicubic) inside the loss (eq. 5).

Optimization: Adam (lr 0.01); each step perturbs ``z`` with regularizing noise ``N(0, reg_noise²)`` (paper: 1/30);
the result is the exponential average (0.99) of the outputs, as in the authors' code, but bias-corrected like
Adam's moments (``avg_t / (1 - 0.99^t)``) so that short runs are not pulled towards the first, random output.
Any image size: ``z`` has the size padded up to a multiple of ``2^depth`` (at least ``2^(depth+1)``) and the
output is cropped back.

Stopping: after ``iterations``; at ``time_budget`` seconds; when the loss falls below ``min_loss`` (for noise of
known σ the discrepancy principle says ``σ²``: the fit has explained all but the noise); or, with ``patience``,
by ES-WMV (Wang et al. 2021): when the running variance of the last ``window`` outputs has not reached a new
minimum for ``patience`` iterations (its minimum tracks the PSNR peak without a reference).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from genlab.errors import GenlabError
from genlab.memory import reuse_freed_memory
from genlab.nn.skipnet import SkipEncoderDecoder

TASKS = ("denoise", "dejpeg", "inpaint", "superres")

#: iterations per task for an image up to ~256² (paper: 1,800-3,000); larger images get fewer (dip_defaults)
DEFAULT_ITERATIONS = {"denoise": 1000, "dejpeg": 600, "inpaint": 1500, "superres": 1000}
DEFAULT_WIDTH = 32  # channels per level up to ~256²; larger images get SMALL_WIDTH
SMALL_WIDTH = 16
#: CPU seconds of one step, per megapixel of output and per channel of width, on one thread: the cost grows
#: linearly with the width from 16 to 32 and with the pixels from 256² up. Measured with bench/dip_step.py --sizes
#: 256 512 --widths 16 24 32 on a 2-core Intel Xeon (torch 2.13, 1 thread): 1.87, 2.93, 3.69 s per megapixel.
STEP_SECONDS_PER_MEGAPIXEL_CHANNEL = 0.115
FULL_DEFAULTS_PIXELS = 256 * 256  # up to this output size the defaults are the full ones; beyond, the same cost
MIN_DEFAULT_ITERATIONS = 300  # fewer steps than this leave the noise in: past it, let the estimate speak


def step_seconds(pixels: int, width: int) -> float:
    """Estimated CPU seconds of one step for an output of ``pixels`` at ``width`` (one thread; see above)."""
    return STEP_SECONDS_PER_MEGAPIXEL_CHANNEL * width * max(pixels, FULL_DEFAULTS_PIXELS) / 1e6


def dip_defaults(task: str, pixels: int) -> tuple[int, int]:
    """``(iterations, width)`` for ``task`` on an output of ``pixels``: the full defaults up to 256²; beyond, width
    16 and the steps that cost what the full defaults cost at 256² (denoise: ~4 minutes of one core), at least 300.
    """
    full = DEFAULT_ITERATIONS[task]
    if pixels <= FULL_DEFAULTS_PIXELS:
        return full, DEFAULT_WIDTH
    budget = full * step_seconds(FULL_DEFAULTS_PIXELS, DEFAULT_WIDTH)
    fit = int(budget / step_seconds(pixels, SMALL_WIDTH)) // 50 * 50
    return max(MIN_DEFAULT_ITERATIONS, min(full, fit)), SMALL_WIDTH


@dataclass
class DIPConfig:
    width: int = DEFAULT_WIDTH  # channels per level; 128 is the paper's 2.2 M-parameter network (a GPU job)
    depth: int = 5  # levels of the encoder-decoder
    skip: int = 4  # channels of each skip connection
    input_channels: int = 32  # channels of the fixed noise z
    lr: float = 0.01
    reg_noise: float = 1 / 30  # std of the noise added to z at every step (0: off)
    average: float = 0.99  # exponential average of the outputs (0: use the last output)
    iterations: int | None = None  # None: DEFAULT_ITERATIONS[task]
    time_budget: float = 0.0  # seconds; 0: none
    min_loss: float = 0.0  # stop once the data term is below this (e.g. σ² for denoising); 0: off
    patience: int = 0  # ES-WMV: stop when the output variance has not improved for this many steps; 0: off
    window: int = 64  # ES-WMV: outputs in the running variance
    log_every: int = 25  # record loss (and PSNR) every this many iterations
    threads: int = 0  # CPU threads for this fit (0: torch's setting); small images often run faster on one
    seed: int = 0


@dataclass
class DIPResult:
    image: np.ndarray  # H×W×C restored image in [0, 1]
    iterations: int
    seconds: float
    stopped: str  # iterations | time_budget | min_loss | patience
    history: list[dict] = field(default_factory=list)  # {"iteration", "loss"[, "psnr"]}
    num_params: int = 0


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def downsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The super-resolution degradation ``d``: anti-aliased bicubic to ``size`` (``B×C×H×W``)."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


class _VarianceStop:
    """ES-WMV: running variance of the last ``window`` outputs; signals after ``patience`` steps without a new
    minimum. Keeps the output at the minimum, which is what the method returns."""

    def __init__(self, window: int, patience: int) -> None:
        self.window, self.patience = window, patience
        self.outputs: deque[torch.Tensor] = deque()
        self.total: torch.Tensor | None = None
        self.best, self.since_best, self.best_output = float("inf"), 0, None

    def update(self, out: torch.Tensor) -> bool:
        self.outputs.append(out)
        self.total = out.clone() if self.total is None else self.total + out
        if len(self.outputs) > self.window:
            self.total -= self.outputs.popleft()
        if len(self.outputs) < self.window:
            return False
        mean = self.total / self.window
        var = float(sum(((o - mean) ** 2).mean() for o in self.outputs)) / self.window
        if var < self.best:
            self.best, self.since_best, self.best_output = var, 0, out
        else:
            self.since_best += 1
        return self.since_best >= self.patience


def padded_size(h: int, w: int, multiple: int) -> tuple[int, int]:
    """The network's input size for an ``h×w`` output: multiples of ``multiple`` (``2^depth``), at least twice it
    so that the deepest level is 2×2 (batch norm and reflection padding need more than one pixel)."""
    return max(-(-h // multiple), 2) * multiple, max(-(-w // multiple), 2) * multiple


def deep_image_prior(
    task: str,
    degraded: np.ndarray,
    cfg: DIPConfig | None = None,
    *,
    mask: np.ndarray | None = None,
    scale: int = 4,
    reference: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    on_step: Callable[[int, dict], None] | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
    preview_every: int = 50,
) -> DIPResult:
    """Restore ``degraded`` (``H×W×C`` float in [0, 1]) by fitting a Deep Image Prior for ``task``.

    ``mask`` (inpaint): ``H×W`` bool, True = hole. ``scale`` (superres): the output is ``scale·H × scale·W``.
    ``reference``: a clean image of the output's size; its PSNR is recorded every ``log_every`` iterations.
    ``on_step(i, figures)`` is called after every iteration (figures: loss, and psnr with a reference);
    ``on_preview(i, image)`` every ``preview_every`` iterations with the output so far (``H×W×C`` in [0, 1]).
    """
    if task not in TASKS:
        raise GenlabError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    cfg = cfg or DIPConfig()
    iterations = cfg.iterations if cfg.iterations is not None else DEFAULT_ITERATIONS[task]
    device = torch.device(device)
    h, w, c = degraded.shape
    out_h, out_w = (h * scale, w * scale) if task == "superres" else (h, w)
    if task == "inpaint" and (mask is None or mask.shape != (h, w)):
        raise GenlabError("inpainting needs a mask of the image's size")
    if reference is not None and reference.shape[:2] != (out_h, out_w):
        raise GenlabError(f"--reference is {reference.shape[1]}×{reference.shape[0]} but the output is {out_w}×{out_h}")
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = SkipEncoderDecoder(c_in=cfg.input_channels, c_out=c, width=cfg.width, depth=cfg.depth, skip=cfg.skip).to(
        device
    )
    ph, pw = padded_size(out_h, out_w, net.multiple)
    z = (torch.rand(1, cfg.input_channels, ph, pw, generator=gen) * 0.1).to(device)
    target = torch.from_numpy(np.ascontiguousarray(degraded.transpose(2, 0, 1)))[None].float().to(device)
    known = None if task != "inpaint" else torch.from_numpy(~mask).float()[None, None].to(device)
    ref = None if reference is None else torch.from_numpy(reference.transpose(2, 0, 1).copy())[None].float()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    stopper = _VarianceStop(cfg.window, cfg.patience) if cfg.patience else None
    history, stopped = [], "iterations"
    # buffers reused every step (a 512² image's noise is 32 MiB): the same values as fresh tensors, no new memory
    noise = torch.empty(z.shape) if cfg.reg_noise else None
    noisy_z = torch.empty_like(z) if cfg.reg_noise else z
    average = torch.zeros(1, c, out_h, out_w, device=device)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    flush = torch.set_flush_denormal(True)  # denormal floats make CPU steps 2-8× slower
    try:
        with reuse_freed_memory():
            for it in range(1, iterations + 1):
                if noise is not None:
                    noise.normal_(generator=gen).mul_(cfg.reg_noise)  # = torch.randn(z.shape, generator=gen) * σ
                    torch.add(z, noise.to(device), out=noisy_z)
                opt.zero_grad(set_to_none=True)
                out = net(noisy_z)[..., :out_h, :out_w]
                pred = downsample(out, (h, w)) if task == "superres" else out
                loss = (
                    ((pred - target) ** 2 * known).sum() / (known.sum() * c)
                    if known is not None
                    else F.mse_loss(pred, target)
                )
                loss.backward()
                opt.step()
                with torch.no_grad():
                    average.mul_(cfg.average).add_(out.detach() * (1 - cfg.average))
                    result = average / (1 - cfg.average**it)  # bias-corrected exponential average
                    figures = {"iteration": it, "loss": float(loss)}
                    if ref is not None:
                        figures["psnr"] = _psnr(result.cpu(), ref)
                    if it % cfg.log_every == 0 or it == iterations:
                        history.append(figures)
                    if on_step is not None:
                        on_step(it, figures)
                    if on_preview is not None and it % preview_every == 0 and it < iterations:
                        on_preview(it, result[0].clamp(0, 1).cpu().numpy().transpose(1, 2, 0))
                    if stopper is not None and stopper.update(result):
                        stopped = "patience"
                    elif cfg.min_loss and float(loss) < cfg.min_loss:
                        stopped = "min_loss"
                    elif cfg.time_budget and time.perf_counter() - start >= cfg.time_budget:
                        stopped = "time_budget"
                if stopped != "iterations":
                    break
    finally:
        if flush:
            torch.set_flush_denormal(False)
        torch.set_num_threads(threads)
    if stopped == "patience":
        result = stopper.best_output
    image = result[0].cpu().numpy().transpose(1, 2, 0)
    num_params = sum(p.numel() for p in net.parameters())
    return DIPResult(np.clip(image, 0, 1), it, time.perf_counter() - start, stopped, history, num_params)
