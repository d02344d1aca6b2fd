"""Windowing: a clip cut into overlapping windows for the optimiser, and the windows blended back.

Frames at the model rate (30 Hz). ``split_windows`` covers a clip with equal windows, ``blend_weights``
cross-fades them back into one motion, ``overlap_pairs`` tells the agreement energy which frames two windows share.
"""
from __future__ import annotations

import numpy as np
import torch


def split_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[(start, end)] of equal-length windows covering the frames (one shorter window if the clip is)."""
    if num_frames <= window:
        return [(0, num_frames)]
    step = window - overlap
    starts = list(range(0, num_frames - window + 1, step))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return [(s, s + window) for s in starts]


def blend_weights(windows: list[tuple[int, int]], num_frames: int) -> np.ndarray:
    """(W, T) cross-fade weights: linear ramps over each overlap, summing to 1 per frame."""
    w = np.zeros((len(windows), num_frames))
    for k, (s, e) in enumerate(windows):
        ramp = np.ones(e - s)
        if k > 0:
            ov = windows[k - 1][1] - s
            if ov > 0:
                ramp[:ov] = np.minimum(ramp[:ov], (np.arange(ov) + 1) / (ov + 1))
        if k + 1 < len(windows):
            ov = e - windows[k + 1][0]
            if ov > 0:
                ramp[-ov:] = np.minimum(ramp[-ov:], (ov - np.arange(ov)) / (ov + 1))
        w[k, s:e] = ramp
    return w / w.sum(0, keepdims=True)


def overlap_pairs(starts: list[int] | None, length: int, visible: torch.Tensor | None = None):
    """Where consecutive overlapping windows hold the same clip frame: flat (window * length + frame)
    indices (a, b) and a (P, 22) mask of the joints to compare there -- the joints hidden in that frame
    (visible ones already agree through their observations). None when there is nothing to compare."""
    if not starts or len(starts) < 2:
        return None
    a, b = [], []
    for k in range(len(starts) - 1):
        ov = starts[k] + length - starts[k + 1]
        for f in range(max(ov, 0)):
            a.append(k * length + length - ov + f)
            b.append((k + 1) * length + f)
    if not a:
        return None
    a, b = torch.tensor(a), torch.tensor(b)
    mask = torch.ones(len(a), 22, dtype=torch.bool) if visible is None else ~visible.reshape(-1, visible.shape[-1])[a.to(visible.device)].cpu()
    return (a, b, mask) if mask.any() else None
