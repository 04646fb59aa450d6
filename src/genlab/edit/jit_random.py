"""Random numbers inside compiled (numba) loops: splitmix64 streams, one per band of work.

Each parallel piece of work owns a stream seeded from ``(seed, iteration, band)``, so a result depends on the
seed only, never on how many threads ran it.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def next_random(state: np.uint64) -> tuple:
    """splitmix64 (Steele et al. 2014): the next state and a well-mixed 64-bit value."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def randint(state: np.uint64, lo: int, hi: int) -> tuple:
    """The next state and a uniform integer in ``[lo, hi]`` (inclusive)."""
    state, z = next_random(state)
    return state, lo + np.int64(z % np.uint64(hi - lo + 1))


@njit(cache=True, inline="always")
def uniform(state: np.uint64) -> tuple:
    """The next state and a uniform float in ``[0, 1)`` (53 bits)."""
    state, z = next_random(state)
    return state, (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def stream(seed: int, iteration: int, band: int) -> np.uint64:
    """The first state of the stream of one band of work in one iteration."""
    state = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03) + np.uint64(iteration * 1_000_003 + band + 1)
    state, _ = next_random(state)
    return state
