"""The ``genlab demo`` section for example-based editing: every method once, on small bundled photos."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from genlab.data.images import bundled_image, write_image


def _timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


MIN_WIDTH = 256  # pixels: smaller results are written enlarged (nearest neighbour) to at least this width


def _figure(out_dir: Path, name: str, image: np.ndarray, caption: str) -> str:
    scale = -(-MIN_WIDTH // image.shape[1])  # ceiling division: 1 for images already wide enough
    shown = image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image
    write_image(out_dir / name, shown)
    return (
        f"<figure><img src='{html.escape(name)}' width='{shown.shape[1]}' alt='{html.escape(caption)}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def edit_section(out_dir: Path, seed: int) -> str:
    """Texture synthesis, PatchMatch field, hole filling vs Telea, retargeting, reshuffling, Deep Image Prior."""
    from genlab.edit.baselines import inpaint_baseline
    from genlab.edit.dip import DIPConfig, deep_image_prior
    from genlab.edit.patchmatch import grid_shape, nnf_to_rgb, patchmatch, vote
    from genlab.edit.synthesis import SynthesisConfig, inpaint, reshuffle, retarget
    from genlab.edit.texture import efros_leung, quilt
    from genlab.eval.fidelity import psnr

    # warm-up on tiny inputs: the first calls compile the numba kernels, so the timings below are warm runs
    tiny = np.random.default_rng(seed).random((24, 24, 3), dtype=np.float32)
    quilt(tiny, (32, 32), seed=seed)
    efros_leung(tiny[:12, :12], (14, 14), window=9, seed=seed)
    small_hole = np.zeros(tiny.shape[:2], bool)
    small_hole[8:12, 8:12] = True
    inpaint(tiny, small_hole, SynthesisConfig(seed=seed))
    patchmatch(tiny, tiny[::-1].copy(), 7, 1, seed=seed)  # retarget and reshuffle run the same kernels

    figs: list[str] = []
    brick = np.repeat(bundled_image("brick")[:96, :96, None], 3, axis=2)
    quilted, t_quilt = _timed(lambda: quilt(brick, (192, 192), seed=seed))
    grown, t_el = _timed(lambda: efros_leung(brick[:40, :40], (64, 64), window=9, seed=seed))
    figs += [
        _figure(out_dir, "edit-texture-sample.png", brick, "sample (brick, 96×96)"),
        _figure(out_dir, "edit-texture-quilting.png", quilted, f"image quilting, 192×192 in {t_quilt:.2f} s"),
        _figure(
            out_dir, "edit-texture-efros-leung.png", grown, f"Efros–Leung from a 40×40 crop, 64×64 in {t_el:.2f} s"
        ),
    ]

    cat = bundled_image("chelsea")[::2, ::2].copy()  # 150×226
    coffee = bundled_image("coffee")[::2, ::2][:150, :226].copy()
    nnf, t_field = _timed(lambda: patchmatch(cat, coffee, 7, 5, seed=seed))
    acc, weight = vote(coffee, nnf, cat.shape)
    figs += [
        _figure(
            out_dir,
            "edit-nnf-field.png",
            nnf_to_rgb(nnf, grid_shape(coffee.shape, 7)),
            f"PatchMatch field chelsea → coffee (red = x, blue = y), 7×7, 5 iterations, {t_field:.2f} s",
        ),
        _figure(
            out_dir,
            "edit-nnf-reconstruction.png",
            acc / np.maximum(weight, 1e-8)[..., None],
            "chelsea rebuilt from coffee's patches",
        ),
    ]

    hole = np.zeros(cat.shape[:2], bool)
    hole[45:75, 150:180] = True
    filled, t_fill = _timed(lambda: inpaint(cat, hole, SynthesisConfig(seed=seed)))
    telea = inpaint_baseline(cat, hole, "telea")
    shown = cat.copy()
    shown[hole] = (1.0, 0.0, 1.0)
    figs += [
        _figure(out_dir, "edit-inpaint-hole.png", shown, "the hole (magenta)"),
        _figure(
            out_dir,
            "edit-inpaint-patchmatch.png",
            filled,
            f"PatchMatch fill, {t_fill:.2f} s, PSNR in hole {psnr(filled, cat, hole):.1f} dB",
        ),
        _figure(
            out_dir, "edit-inpaint-telea.png", telea, f"OpenCV Telea, PSNR in hole {psnr(telea, cat, hole):.1f} dB"
        ),
    ]

    narrow, t_ret = _timed(lambda: retarget(cat, 150, 150, SynthesisConfig(patch=7, seed=seed)))
    rocket = bundled_image("rocket")[::3, ::3].copy()  # 143×214
    moved, t_move = _timed(lambda: reshuffle(rocket, (94, 38, 116, 130), (130, 38), SynthesisConfig(seed=seed)))
    figs += [
        _figure(out_dir, "edit-retarget.png", narrow, f"retargeted to 150×150 in {t_ret:.2f} s"),
        _figure(out_dir, "edit-reshuffle-input.png", rocket, "rocket"),
        _figure(
            out_dir,
            "edit-reshuffle.png",
            moved,
            f"the rocket moved right, its old place re-synthesized, {t_move:.2f} s",
        ),
    ]
    clean = bundled_image("astronaut")[30:94, 190:254].copy()  # 64×64: the face
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    # one thread: a 64×64 fit gains nothing from more, and loses much when another job shares the cores
    result = deep_image_prior("denoise", noisy, DIPConfig(iterations=300, threads=1, seed=seed), reference=clean)
    figs += [
        _figure(out_dir, "edit-dip-noisy.png", noisy, f"noise σ = 25: {psnr(noisy, clean):.1f} dB"),
        _figure(
            out_dir,
            "edit-dip-denoised.png",
            result.image,
            f"Deep Image Prior, {result.iterations} steps in {result.seconds:.1f} s: "
            f"{psnr(result.image, clean):.1f} dB",
        ),
    ]
    return (
        "<h2>Example-based image editing</h2>"
        "<p>Texture synthesis (Efros–Leung, image quilting), the PatchMatch nearest-neighbour field, hole filling, "
        "retargeting and reshuffling on top of it, and Deep Image Prior denoising, on bundled photos. "
        "Timings are of warm runs (numba's kernels compiled beforehand); small results are shown enlarged "
        "(nearest neighbour). "
        "Try: <code>genlab edit inpaint --image photo.jpg --mask hole.png --out filled.png</code>; "
        "<code>genlab edit --help</code> lists every task.</p>"
        "<style>figure{display:inline-block;margin:.4rem;vertical-align:top;max-width:16rem}"
        "figure img{max-width:16rem;height:auto;image-rendering:pixelated}"
        "figcaption{font-size:.8rem;color:#555}</style>" + "".join(figs)
    )
