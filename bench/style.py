"""Benchmark: neural style transfer (``genlab edit style``) on a 256×256 photo with the defaults; one JSON object.

    python bench/style.py                                   # astronaut (512² → 256²) in the style of coffee
    python bench/style.py --content chelsea --style brick   # other bundled photos (a non-square one is cropped)
    python bench/style.py --optimizer adam                  # the same with Adam, to compare

The content photo is a bundled one, read by the loader ``genlab edit`` uses, cropped to a centred square and
written as a PNG, so that the command below runs on a 256×256 output with every option at its default:
``genlab edit style --content PHOTO.png --style STYLE --out OUT.png --json --quiet``, in a fresh process. Printed:
the command, its wall time (process start to exit: imports and loading the network included), the seconds the
command reports (reading the inputs to writing the output), the steps, and the content and style losses of the
content photo (the starting image) and of the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genlab.data.images import read_image, write_image


def square(image: np.ndarray) -> np.ndarray:
    """The centred square crop of an ``H×W×C`` image."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(image[top : top + side, left : left + side])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--content", default="astronaut", help="a bundled photo (cropped to a square)")
    ap.add_argument("--style", default="coffee", help="a bundled photo or an image file")
    ap.add_argument("--size", type=int, default=256, help="the output's side")
    ap.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"], help="adam: to compare")
    ap.add_argument("--keep", help="also write the result here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        content = f"{args.content}-square.png"
        write_image(Path(tmp) / content, square(read_image(args.content)))
        style = str(Path(args.style).resolve()) if Path(args.style).exists() else args.style
        cmd = ["genlab", "edit", "style", "--content", content, "--style", style, "--out", "styled.png"]
        if args.size != 256:
            cmd += ["--size", str(args.size)]
        if args.optimizer != "lbfgs":
            cmd += ["--optimizer", args.optimizer]
        start = time.perf_counter()
        run = [sys.executable, "-m", *cmd, "--json", "--quiet"]
        proc = subprocess.run(run, capture_output=True, text=True, check=False, cwd=tmp)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        figures = json.loads(proc.stdout)
        if args.keep:
            shutil.copyfile(Path(tmp) / "styled.png", args.keep)
    result = {
        "command": " ".join(cmd),
        "content": f"{args.content}, centred square crop, resized to {figures['width']}×{figures['height']}",
        "style": args.style,
        "wall_seconds": round(wall, 2),
        "command_seconds": figures["seconds"],
        "steps": figures["steps"],
        "seconds_per_step": round(figures["seconds"] / figures["steps"], 4),
        "content_loss": {"before": figures["content_loss_start"], "after": figures["content_loss"]},
        "style_loss": {"before": figures["style_loss_start"], "after": figures["style_loss"]},
        "style_loss_ratio": round(figures["style_loss"] / figures["style_loss_start"], 4),
        "threads": int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
