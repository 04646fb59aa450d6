"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from genlab.errors import GenlabError


def best_device(requested: str | None = None) -> torch.device:
    """The device to run on: ``requested`` if given (validated), else cuda, then mps, then cpu."""
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as e:
            raise GenlabError(f"--device: {requested!r} is not a device (try cpu, cuda, cuda:1, mps)") from e
        if device.type == "cuda" and not torch.cuda.is_available():
            raise GenlabError("--device cuda: no CUDA GPU is available on this machine")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise GenlabError("--device mps: MPS is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run repeats on the same device."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device``; seeded when ``seed`` is given, else from the global RNG."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar tensor over the processes of a ``torchrun`` job (the value itself outside one): a figure
    that steers training, averaged so that every rank takes the same decision."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        value = value.detach().clone()
        torch.distributed.all_reduce(value)
        value /= torch.distributed.get_world_size()
    return value.item()
