"""Corrections that hold over runs of frames and fade out at their edges, so nothing pops."""
from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) of the runs of True in a (T,) bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def fade_out(values: np.ndarray, mask: np.ndarray, blend: int) -> tuple[np.ndarray, np.ndarray]:
    """values (T, D), meaningful where mask (T,) is True -> (T, D) values and (T,) weights in [0, 1]: the
    values in full over every run of the mask, and each run's edge value fading linearly to zero over ``blend``
    frames on either side of it (where no run or stronger fade is)."""
    t = len(values)
    out, weight = np.where(mask[:, None], values, 0.0), mask.astype(np.float64)
    for s, e in runs(mask):
        for k in range(1, blend + 1):
            w = 1.0 - k / (blend + 1)
            for f, edge in ((s - k, s), (e - 1 + k, e - 1)):
                if 0 <= f < t and w > weight[f]:
                    out[f], weight[f] = w * values[edge], w
    return out, weight
