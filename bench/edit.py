"""Benchmark: example-based editing, one JSON object on stdout (progress on stderr).

    python bench/edit.py                       # ~15 minutes on 2 CPU cores
    python bench/edit.py --only field inpaint  # some sections
    python bench/edit.py --dip-iterations 300  # a shorter Deep Image Prior run

Measures:
  * PatchMatch field, 7×7 patches, 5 iterations, at 256² and 512² (crops of scikit-image's stereo motorcycle pair,
    left → right, and of two unrelated photos, coffee → chelsea): seconds of the compiled CPU loop (the first call
    in a fresh process with an empty compilation cache, with a filled cache, then warm calls), of the PyTorch
    variant (CPU, and a GPU where available) and of a vectorized NumPy PatchMatch written here as the reference;
    mean patch distance relative to the exact field, estimated on 4,096 random patches of A compared with every
    patch of B;
  * hole filling: PSNR and SSIM inside eight 24×24 holes (seeded positions) in bundled photos, PatchMatch against
    OpenCV Telea and Navier–Stokes and scikit-image biharmonic on the same masks;
  * Deep Image Prior: denoising at σ = 25 and ×4 super-resolution (bicubic downsampling) against bicubic, on a
    256×256 view of a bundled photo, with the iterations used and the PSNR along the way;
  * texture synthesis seconds per output megapixel (quilting and Efros–Leung).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from genlab.data.images import bundled_image
from genlab.edit.baselines import bicubic_upscale, inpaint_baseline
from genlab.edit.dip import DIPConfig, deep_image_prior, downsample
from genlab.edit.patchmatch import exact_nnf, grid_shape, patchmatch
from genlab.edit.patchmatch_torch import patchmatch_torch
from genlab.edit.synthesis import SynthesisConfig, inpaint
from genlab.edit.texture import efros_leung, quilt
from genlab.eval.fidelity import psnr, ssim


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


# --- a vectorized NumPy PatchMatch: the reference the compiled loop is compared with ---------------------------
def numpy_patchmatch(a: np.ndarray, b: np.ndarray, p: int, iterations: int, seed: int = 0) -> np.ndarray:
    """PatchMatch with every patch updated at once per step (NumPy): propagation from the scan-order neighbours
    (alternating directions), then random search with halving radius. Returns the distances ``H'×W'``."""
    rng = np.random.default_rng(seed)
    gh, gw = grid_shape(a.shape, p)
    hb, wb = grid_shape(b.shape, p)
    flat_b = b.reshape(-1, b.shape[2])
    width_b = b.shape[1]

    def ssd(fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
        """SSD of every patch of A (slices, no copy) against B at ``(fy, fx)`` (one flat gather per offset)."""
        base = fy * width_b + fx
        d = np.zeros((gh, gw), np.float32)
        for dy in range(p):
            for dx in range(p):
                diff = a[dy : dy + gh, dx : dx + gw] - np.take(flat_b, base + (dy * width_b + dx), axis=0)
                d += np.einsum("ijc,ijc->ij", diff, diff)
        return d

    fy, fx = rng.integers(0, hb, (gh, gw)), rng.integers(0, wb, (gh, gw))
    dist = ssd(fy, fx)

    def consider(cy: np.ndarray, cx: np.ndarray) -> None:
        nonlocal fy, fx, dist
        cy, cx = np.clip(cy, 0, hb - 1), np.clip(cx, 0, wb - 1)
        d = ssd(cy, cx)
        better = d < dist
        fy, fx, dist = np.where(better, cy, fy), np.where(better, cx, fx), np.where(better, d, dist)

    for it in range(iterations):
        s = 1 if it % 2 == 0 else -1
        consider(np.roll(fy, s, axis=1), np.roll(fx, s, axis=1) + s)
        consider(np.roll(fy, s, axis=0) + s, np.roll(fx, s, axis=0))
        radius = max(hb, wb)
        while radius >= 1:
            consider(fy + rng.integers(-radius, radius + 1, fy.shape), fx + rng.integers(-radius, radius + 1, fx.shape))
            radius //= 2
    return dist


def sampled_exact_mean(a: np.ndarray, b: np.ndarray, p: int, sample: np.ndarray) -> float:
    """Mean exact nearest-neighbour distance over the patches of A in ``sample`` (bool over A's grid)."""
    exact = exact_nnf(a, b, p, active=sample)
    return float(exact.dist[sample].mean())


FIRST_CALL = """
import time, numpy as np
t = time.perf_counter()
from genlab.edit.patchmatch import patchmatch
a = np.random.default_rng(0).random((256, 256, 3), np.float32)
patchmatch(a, a[::-1].copy(), 7, 5)
print(time.perf_counter() - t)
"""


def first_call_seconds(cache_dir: str | None) -> float:
    """Import + first 256² field in a fresh process; ``cache_dir``: an empty numba cache (compile from scratch)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def field_figures(seed: int) -> dict:
    threads = torch.get_num_threads()
    left, right, _ = bundled_stereo()
    coffee, chelsea = bundled_image("coffee"), bundled_image("chelsea")
    with tempfile.TemporaryDirectory() as empty:
        compile_s = first_call_seconds(empty)
    first_call_seconds(None)  # fills the installation's cache if a change to the code emptied it
    out: dict = {
        "first_call_s": {"empty_cache": round(compile_s, 2), "filled_cache": round(first_call_seconds(None), 2)},
        "note_first_call": "import + one 256² field in a fresh process",
    }
    for size in (256, 512):
        pairs = {
            "stereo": (left[:size, 100 : 100 + size], right[:size, 100 : 100 + size]),
            "coffee_chelsea": (coffee[:size, :size], chelsea[:size, :size]),
        }
        for name, (a, b) in pairs.items():
            if a.shape[:2] != (size, size) or b.shape[:2] != (size, size):
                a, b = _tile(a, size), _tile(b, size)
            a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
            log(f"field {name} {size}²")
            sample = np.zeros(grid_shape(a.shape, 7), bool)
            sample.ravel()[np.random.default_rng(seed).choice(sample.size, 4096, replace=False)] = True
            exact = sampled_exact_mean(a, b, 7, sample)
            patchmatch(a, b, 7, 5, seed=seed)  # warm
            times, ratios = [], []
            for rep in range(5):
                start = time.perf_counter()
                nnf = patchmatch(a, b, 7, 5, seed=seed + rep)
                times.append(time.perf_counter() - start)
                ratios.append(float(nnf.dist[sample].mean()) / exact)
            reps = 1 if size == 512 else 3
            np_times, np_ratio = [], 0.0
            for rep in range(reps):
                start = time.perf_counter()
                d = numpy_patchmatch(a, b, 7, 5, seed=seed + rep)
                np_times.append(time.perf_counter() - start)
                np_ratio = float(d[sample].mean()) / exact
            torch_fig = {}
            devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            torch.set_num_threads(1)  # on a shared CPU two threads of these small ops stall each other
            for device in devices:
                patchmatch_torch(a, b, 7, 1, seed=seed, device=device)  # warm
                start = time.perf_counter()
                tnnf = patchmatch_torch(a, b, 7, 5, seed=seed, device=device)
                if device == "cuda":
                    torch.cuda.synchronize()
                torch_fig[device] = {
                    "seconds": round(time.perf_counter() - start, 3),
                    "relative_to_exact": round(float(tnnf.dist[sample].mean()) / exact, 4),
                }
            torch.set_num_threads(threads)
            warm = statistics.median(times)
            out[f"{name}_{size}"] = {
                "numba_warm_s_median": round(warm, 3),
                "numba_warm_s_min_max": [round(min(times), 3), round(max(times), 3)],
                "numba_relative_to_exact": round(statistics.median(ratios), 4),
                "numpy_reference_s": round(statistics.median(np_times), 2),
                "numpy_reference_relative_to_exact": round(np_ratio, 4),
                "speedup_vs_numpy": round(statistics.median(np_times) / warm, 1),
                "torch_one_thread": torch_fig,
            }
            log(json.dumps(out[f"{name}_{size}"]))
    return out


def bundled_stereo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import skimage.data

    left, right, disparity = skimage.data.stereo_motorcycle()
    return left.astype(np.float32) / 255, right.astype(np.float32) / 255, disparity


def _tile(img: np.ndarray, size: int) -> np.ndarray:
    reps = (-(-size // img.shape[0]), -(-size // img.shape[1]), 1)
    return np.tile(img, reps)[:size, :size]


def holes_for(shape: tuple[int, ...], n: int, side: int, seed: int) -> np.ndarray:
    """``n`` non-overlapping ``side×side`` square holes at seeded positions, away from the border."""
    rng = np.random.default_rng(seed)
    hole = np.zeros(shape[:2], bool)
    placed = 0
    while placed < n:
        y, x = rng.integers(side, shape[0] - 2 * side), rng.integers(side, shape[1] - 2 * side)
        if not hole[y - 4 : y + side + 4, x - 4 : x + side + 4].any():
            hole[y : y + side, x : x + side] = True
            placed += 1
    return hole


def inpaint_figures(photos: list[str], seed: int) -> dict:
    out: dict = {"holes": "8 squares of 24×24 per photo, seeded positions", "photos": {}}
    methods = ("patchmatch", "telea", "ns", "biharmonic")
    for name in photos:
        img = bundled_image(name)
        img = img if img.ndim == 3 else np.repeat(img[..., None], 3, 2)
        hole = holes_for(img.shape, 8, 24, seed)
        row = {}
        for method in methods:
            log(f"inpaint {name} {method}")
            start = time.perf_counter()
            if method == "patchmatch":
                filled = inpaint(img, hole, SynthesisConfig(seed=seed))
            else:
                filled = inpaint_baseline(img, hole, method)
            row[method] = {
                "psnr_hole": round(psnr(filled, img, hole), 2),
                "ssim_hole": round(ssim(filled, img, hole), 4),
                "seconds": round(time.perf_counter() - start, 2),
            }
        out["photos"][name] = row
        log(json.dumps(row))
    out["mean"] = {
        m: {k: round(float(np.mean([out["photos"][p][m][k] for p in photos])), 3) for k in ("psnr_hole", "ssim_hole")}
        for m in methods
    }
    return out


def fastest_threads(probe: np.ndarray) -> int:
    """1 or 2 CPU threads, whichever runs a few DIP steps faster here (shared machines differ)."""
    times = {}
    for threads in (1, 2):
        start = time.perf_counter()
        deep_image_prior("denoise", probe, DIPConfig(iterations=6, threads=threads))
        times[threads] = time.perf_counter() - start
    return min(times, key=times.get)


def dip_figures(photo: str, iterations: int, seed: int) -> dict:
    clean = bundled_image(photo)[::2, ::2][:256, :256].copy()
    threads = fastest_threads(clean) if not torch.cuda.is_available() else 0
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    log(f"DIP denoise {iterations} steps, {threads or 'default'} threads")
    cfg = DIPConfig(iterations=iterations, log_every=max(1, iterations // 10), threads=threads, seed=seed)
    den = deep_image_prior("denoise", noisy, cfg, reference=clean)
    hr = torch.from_numpy(clean.transpose(2, 0, 1))[None]
    lr = downsample(hr, (64, 64))[0].numpy().transpose(1, 2, 0).clip(0, 1)
    log(f"DIP ×4 super-resolution {iterations} steps")
    sr = deep_image_prior("superres", lr, cfg, scale=4, reference=clean)
    curve = lambda r: [[h["iteration"], round(h["psnr"], 2)] for h in r.history]  # noqa: E731
    return {
        "image": f"{photo}, every other pixel, top-left 256×256",
        "iterations": iterations,
        "cpu_threads": threads,
        "network": f"skip encoder-decoder, width {cfg.width}, {den.num_params:,} parameters",
        "denoise_sigma25": {
            "noisy_psnr": round(psnr(noisy, clean), 2),
            "dip_psnr": round(psnr(den.image, clean), 2),
            "best_psnr_on_the_way": round(max(h["psnr"] for h in den.history), 2),
            "seconds": round(den.seconds, 1),
            "psnr_curve": curve(den),
        },
        "superres_x4": {
            "bicubic_psnr": round(psnr(bicubic_upscale(lr, 4), clean), 2),
            "dip_psnr": round(psnr(sr.image, clean), 2),
            "best_psnr_on_the_way": round(max(h["psnr"] for h in sr.history), 2),
            "seconds": round(sr.seconds, 1),
            "psnr_curve": curve(sr),
        },
    }


def texture_figures(seed: int) -> dict:
    brick = np.repeat(bundled_image("brick")[..., None], 3, 2)
    sample = brick[:128, :128]
    quilt(sample, (64, 64), seed=seed)
    start = time.perf_counter()
    quilt(sample, (512, 512), seed=seed)
    q = time.perf_counter() - start
    small = brick[:48, :48]
    efros_leung(small, (16, 16), seed=seed)  # compile
    start = time.perf_counter()
    efros_leung(small, (96, 96), window=11, seed=seed)
    e = time.perf_counter() - start
    return {
        "quilting": {
            "sample": "brick 128×128",
            "output": "512×512",
            "seconds": round(q, 2),
            "seconds_per_megapixel": round(q / (512 * 512 / 1e6), 2),
        },
        "efros_leung": {
            "sample": "brick 48×48",
            "output": "96×96",
            "window": 11,
            "seconds": round(e, 2),
            "seconds_per_megapixel": round(e / (96 * 96 / 1e6), 1),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=["field", "inpaint", "dip", "texture"], help="run these sections")
    ap.add_argument("--photos", nargs="+", default=["coffee", "chelsea", "astronaut", "rocket"])
    ap.add_argument("--dip-photo", default="astronaut")
    ap.add_argument("--dip-iterations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = set(args.only or ["field", "inpaint", "dip", "texture"])
    start = time.perf_counter()
    result: dict = {
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "python": platform.python_version(),
        },
    }
    if "field" in run:
        result["patchmatch_field_7x7_5it"] = field_figures(args.seed)
    if "inpaint" in run:
        result["inpainting"] = inpaint_figures(args.photos, args.seed)
    if "dip" in run:
        result["deep_image_prior"] = dip_figures(args.dip_photo, args.dip_iterations, args.seed)
    if "texture" in run:
        result["texture"] = texture_figures(args.seed)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=2))


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
