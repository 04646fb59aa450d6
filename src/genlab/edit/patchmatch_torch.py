"""PatchMatch for a GPU: every patch updated at once (jump-flood style propagation), in PyTorch.

The scan-order propagation of :mod:`genlab.edit.patchmatch` is sequential. Here each iteration updates all
patches in parallel (Jacobi style): propagation tries the matches of the neighbours at distance ``k`` in the four
directions, shifted by ``k``, for ``k`` in ``JUMPS`` (jump flooding, Rong & Tan 2006: a good match travels
``1 + 2 + 4 + 8`` patches per iteration instead of a whole scan line), then the same random search (radius
``w·α^i``, one candidate per radius, eq. 1 of Barnes et al. 2009). Same inputs, masks and :class:`NNF` output as
:func:`genlab.edit.patchmatch.patchmatch`; the field differs (other random numbers) but reaches the same quality
(tests/test_edit_patchmatch.py compares both with the exact field). On a CPU the compiled loop is faster.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from genlab.edit.patchmatch import ALPHA, NNF, check_pair, grid_shape
from genlab.errors import GenlabError

JUMPS = (8, 4, 2, 1)  # propagation distances tried each iteration


def _patches(img: np.ndarray, patch: int, device: torch.device) -> torch.Tensor:
    """Every ``p×p`` patch of ``img`` (``H×W[×C]``) as a column: ``(p·p·C)×(H'·W')`` (memory: p² times the image)."""
    img = np.asarray(img, np.float32)
    img = img[..., None] if img.ndim == 2 else img
    chw = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(device)
    return F.unfold(chw[None], patch)[0]


def _candidate_ssd(pa: torch.Tensor, pb: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, wb: int) -> torch.Tensor:
    """SSD of every patch of A (columns of ``pa``) against the candidates ``(cy, cx)`` (``K×H'×W'``) in B.

    ``pb``: B's patch columns, ``wb`` the width of B's patch grid. Returns ``K×H'×W'``.
    """
    out = torch.empty(cy.shape, dtype=torch.float32, device=pa.device)
    for k in range(cy.shape[0]):  # one candidate set at a time bounds the memory to one gathered copy of A
        picked = pb[:, (cy[k] * wb + cx[k]).reshape(-1)]
        out[k] = ((pa - picked) ** 2).sum(0).reshape(cy.shape[1:])
    return out


def patchmatch_torch(
    a: np.ndarray,
    b: np.ndarray,
    patch: int = 7,
    iterations: int = 5,
    *,
    active: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    init: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_iteration=None,  # noqa: ANN001  (callable(iteration, NNF) -> None)
) -> NNF:
    """The PatchMatch field from ``a`` to ``b`` computed on ``device``; arguments as in ``patchmatch``."""
    check_pair(a, b, patch)
    device = torch.device(device)
    ga, gb = grid_shape(a.shape, patch), grid_shape(b.shape, patch)
    pa, pb = _patches(a, patch, device), _patches(b, patch, device)
    act = torch.ones(ga, dtype=torch.bool, device=device) if active is None else torch.as_tensor(active, device=device)
    ok = torch.ones(gb, dtype=torch.bool, device=device) if allowed is None else torch.as_tensor(allowed, device=device)
    allowed_idx = torch.nonzero(ok.reshape(-1)).squeeze(1)
    if allowed_idx.numel() == 0:
        raise GenlabError(f"no {patch}×{patch} patch of the source is allowed (the mask covers them all)")
    gen = torch.Generator(device=device).manual_seed(seed)

    def random_allowed(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        k = allowed_idx[torch.randint(allowed_idx.numel(), shape, generator=gen, device=device)]
        return k // gb[1], k % gb[1]

    fy, fx = random_allowed(ga)
    if init is not None:
        iy = torch.as_tensor(init[..., 0], device=device).long().clamp(0, gb[0] - 1)
        ix = torch.as_tensor(init[..., 1], device=device).long().clamp(0, gb[1] - 1)
        keep = ok[iy, ix]
        fy, fx = torch.where(keep, iy, fy), torch.where(keep, ix, fx)
    dist = _candidate_ssd(pa, pb, fy[None], fx[None], gb[1])[0]

    def consider(cy: torch.Tensor, cx: torch.Tensor) -> None:
        """Keep the candidates ``K×H'×W'`` that are allowed, in range and better than the current match."""
        nonlocal fy, fx, dist
        inside = (cy >= 0) & (cy < gb[0]) & (cx >= 0) & (cx < gb[1])
        cy, cx = cy.clamp(0, gb[0] - 1), cx.clamp(0, gb[1] - 1)
        d = _candidate_ssd(pa, pb, cy, cx, gb[1])
        d = torch.where(inside & ok[cy, cx], d, torch.inf)
        best, k = d.min(0)
        better = (best < dist) & act
        fy = torch.where(better, cy.gather(0, k[None])[0], fy)
        fx = torch.where(better, cx.gather(0, k[None])[0], fx)
        dist = torch.where(better, best, dist)

    for it in range(iterations):
        for k in JUMPS:  # propagation from the four neighbours at distance k (jump flooding)
            cys, cxs = [], []
            for dy, dx in ((0, k), (0, -k), (k, 0), (-k, 0)):
                ny, nx = torch.arange(ga[0], device=device) - dy, torch.arange(ga[1], device=device) - dx
                usable = ((ny >= 0) & (ny < ga[0]))[:, None] & ((nx >= 0) & (nx < ga[1]))[None, :]
                ny, nx = ny.clamp(0, ga[0] - 1), nx.clamp(0, ga[1] - 1)
                usable &= act[ny][:, nx]
                cys.append(torch.where(usable, fy[ny][:, nx] + dy, -1))
                cxs.append(torch.where(usable, fx[ny][:, nx] + dx, -1))
            consider(torch.stack(cys), torch.stack(cxs))
        radius = max(gb)
        while radius >= 1:  # random search, eq. 1: u_i = v_0 + w α^i R_i
            consider(_uniform_around(fy, radius, gb[0], gen)[None], _uniform_around(fx, radius, gb[1], gen)[None])
            radius = int(radius * ALPHA)
        if on_iteration is not None:
            on_iteration(it + 1, _as_nnf(fy, fx, dist, act, patch))
    return _as_nnf(fy, fx, dist, act, patch)


def _uniform_around(v: torch.Tensor, radius: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform integers in the window ``[v - radius, v + radius]`` clipped to ``[0, size)``, one per element."""
    lo, hi = (v - radius).clamp(min=0), (v + radius).clamp(max=size - 1)
    u = torch.rand(v.shape, generator=gen, device=v.device)
    return torch.minimum(lo + (u * (hi - lo + 1).float()).long(), hi)


def _as_nnf(fy: torch.Tensor, fx: torch.Tensor, dist: torch.Tensor, act: torch.Tensor, patch: int) -> NNF:
    field = torch.stack([fy, fx], -1).to(torch.int32).cpu().numpy()
    d = torch.where(act, dist, torch.inf).cpu().numpy().astype(np.float32)
    return NNF(field, d, patch)
