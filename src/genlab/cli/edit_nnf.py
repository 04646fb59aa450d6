"""``genlab edit nnf``: the PatchMatch nearest-neighbour field from A to B, colour-coded, and A rebuilt from B."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from genlab.cli.common import POSITIVE, Formatter, Num
from genlab.cli.edit_common import PATCH_DEVICE_HELP, add_common_options, finish, patchmatch_fn, progress, read_input
from genlab.errors import GenlabError


# --- nnf --------------------------------------------------------------------------------------------------
def cmd_nnf(args: argparse.Namespace) -> int:
    import numpy as np

    from genlab.data.images import write_image
    from genlab.edit.patchmatch import exact_nnf, grid_shape, nnf_to_rgb, vote

    a, b = read_input(args, args.a), read_input(args, args.b)
    out = Path(args.out)
    default = out.with_name(f"{out.stem}-reconstruction{out.suffix or '.png'}")
    recon_path = Path(args.reconstruction) if args.reconstruction is not None else default
    if recon_path.resolve() == out.resolve():
        raise GenlabError("--reconstruction must differ from --out")
    for given in (args.a, args.b):  # the default OUT-reconstruction.png may name an input: check it too
        if recon_path.exists() and Path(given).exists() and recon_path.samefile(given):
            raise GenlabError(
                f"the reconstruction {recon_path} is the input {given}; genlab never overwrites an input: "
                "choose another --reconstruction"
            )
    if args.exact:  # refused before anything runs or is written
        pairs = np.prod(grid_shape(a.shape, args.patch)) * np.prod(grid_shape(b.shape, args.patch))
        if pairs > 4e9:
            raise GenlabError(f"--exact compares {pairs:,.0f} pairs of patches (limit 4e9): use smaller images")
    field_fn = patchmatch_fn(args.device)
    per_iteration: list[float] = []
    start = time.perf_counter()
    with progress(args, args.iterations, "iteration", "PatchMatch") as bar:

        def on_iteration(i: int, nnf: Any) -> None:
            per_iteration.append(round(nnf.mean_distance(), 5))
            bar.update(1)

        nnf = field_fn(a, b, args.patch, args.iterations, seed=args.seed, on_iteration=on_iteration)
    seconds = time.perf_counter() - start
    acc, weight = vote(b, nnf, a.shape)
    reconstruction = acc / np.maximum(weight, 1e-8)[..., None]
    figures: dict[str, Any] = {
        "reconstruction": str(recon_path),
        "field_seconds": round(seconds, 4),
        "patch": args.patch,
        "iterations": args.iterations,
        "mean_distance": round(nnf.mean_distance(), 5),
        "mean_distance_per_iteration": per_iteration,
    }
    if args.exact:
        exact = exact_nnf(a, b, args.patch).mean_distance()
        figures["exact_mean_distance"] = round(exact, 5)
        if exact > 0:
            figures["relative_to_exact"] = round(nnf.mean_distance() / exact, 4)
    existed = recon_path.exists()
    write_image(recon_path, reconstruction)
    try:
        return finish(args, nnf_to_rgb(nnf, grid_shape(b.shape, args.patch)), start, **figures)
    except BaseException:
        if not existed:  # a failed command leaves nothing behind
            recon_path.unlink(missing_ok=True)
        raise


def add_nnf(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "nnf",
        help="the PatchMatch nearest-neighbour field from A to B, colour-coded, and A rebuilt from B's patches",
        formatter_class=Formatter,
        description="Compute the PatchMatch field (Barnes et al. 2009: random initialization, propagation, random "
        "search) from every patch of A to a similar patch of B. --out gets the field colour-coded as in the paper "
        "(red = matched x, blue = matched y; one pixel per patch of A, so it is patch-1 pixels smaller); the "
        "reconstruction of A from B's patches goes beside it. About 0.2-0.3 s for 256x256 and 0.5-1.3 s for 512x512 "
        "with 7x7 patches and 5 iterations on 2 CPU cores (plus a one-time compilation of a few seconds).",
        epilog="""examples:
  genlab edit nnf --a a.png --b b.png --patch 7 --out flow.png
  genlab edit nnf --a coffee --b chelsea --iterations 10 --json --out flow.png
  genlab edit nnf --a small_a.png --b small_b.png --exact --json --out flow.png   # compare with brute force
""",
    )
    p.add_argument("--a", required=True, help="image A (whose patches are matched)")
    p.add_argument("--b", required=True, help="image B (where matches are searched)")
    p.add_argument("--patch", type=POSITIVE, default=7, help="patch side in pixels")
    p.add_argument("--iterations", type=Num(int, 0, 1000), default=5, help="PatchMatch iterations")
    p.add_argument("--reconstruction", help="where to write A rebuilt from B (default: OUT-reconstruction.png)")
    p.add_argument("--exact", action="store_true", help="also compute the exact field by brute force (small images)")
    p.add_argument("--device", help=PATCH_DEVICE_HELP)
    add_common_options(p)
    p.set_defaults(func=cmd_nnf)
