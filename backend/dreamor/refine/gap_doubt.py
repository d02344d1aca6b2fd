"""The doubt of joints the engine fills by splines: gaps shorter than ``RefineConfig.spline_gap_s``, whole lost
frames, a hidden pelvis (the networks complete a body around a seen pelvis only). The window prior's doubt
(``alternatives.doubt``) covers what the networks complete; without this those joints read as certain (0 m).

The doubt at a hidden frame is ``SCALE`` x a/2 x dt^2: a the joint's acceleration at the gap's edges (the larger), dt
the time to the nearest seen frame. Of the predictors measured (edge speed x dt, acceleration x dt^2, jerk x dt^3;
scripts/measure_gap_doubt.py) it ranked the splines' real error per gap best.
"""
from __future__ import annotations

import numpy as np

#: the doubt is this times half the edge acceleration times the squared time to the nearest seen frame: the
#: splines' mean error on clean takes of both splits (scripts/measure_gap_doubt.py, docs/benchmarks/gap_doubt.json)
SCALE = 0.4
#: no joint's doubt is more than this (m): beyond about 0.3 s the formula overstates the real error (2x at 0.2-1 s)
MOST = 1.0


def _runs(hidden: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], hidden.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _acceleration(x: np.ndarray, t: int, step: int, fps: float, direction: int) -> float:
    """Acceleration (m/s^2) of x (T, 3) at frame t from frames t, t - step, t - 2 step (``direction`` -1: later
    frames)."""
    p = x[np.clip(t - direction * step * np.arange(3), 0, len(x) - 1)]
    return float(np.linalg.norm(p[0] - 2 * p[1] + p[2]) / (step / fps) ** 2)


def spline_doubt(filled: np.ndarray, visible: np.ndarray, fps: float) -> np.ndarray:
    """filled (T, 22, 3) m (the splines' fill), visible (T, 22) -> (T, 22) m: how far each hidden joint may be off,
    0 where seen."""
    t_len = len(filled)
    out = np.zeros(visible.shape)
    step = max(1, int(round(fps / 30.0)))
    for j in range(visible.shape[1]):
        for a, b in _runs(~visible[:, j]):
            sides = ([_acceleration(filled[:, j], a - 1, step, fps, +1)] if a > 0 else []) + \
                    ([_acceleration(filled[:, j], b, step, fps, -1)] if b < t_len else [])
            if not sides:
                continue
            acc = max(sides)
            frames = np.arange(a, b)
            dist = np.minimum(frames - a + 1 if a > 0 else np.inf, b - frames if b < t_len else np.inf) / fps
            out[a:b, j] = np.minimum(SCALE * 0.5 * acc * dist ** 2, MOST)
    return out
