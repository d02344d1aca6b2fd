"""The doubt of joints the engine fills by splines: gaps shorter than ``RefineConfig.spline_gap_s``, whole lost
frames, a hidden pelvis (the networks complete a body around a seen pelvis only). The window prior's doubt
(``alternatives.doubt``) covers what the networks complete; without this those joints read as certain (0 m).

The doubt at a hidden frame is ``SCALE`` x a/2 x dt^2: a the joint's acceleration at the gap's edges (the larger), dt
the time to the nearest seen frame. Of the predictors measured (edge speed x dt, acceleration x dt^2, jerk x dt^3;
scripts/measure_gap_doubt.py) it ranked the splines' real error per gap best. A gap at the clip's start or end is
held at the nearest seen position, not splined: its doubt is speed x dt + a/2 x dt^2 (not measured).
"""
from __future__ import annotations

import numpy as np

from .fades import runs

#: the doubt is this times half the edge acceleration times the squared time to the nearest seen frame: the
#: splines' mean error on clean takes of both splits (scripts/measure_gap_doubt.py, docs/benchmarks/gap_doubt.json)
SCALE = 0.4
#: no joint's doubt is more than this (m): beyond about 0.3 s the formula overstates the real error (2x at 0.2-1 s)
MOST = 1.0


def _motion(x: np.ndarray, t: int, step: int, fps: float, direction: int) -> tuple[float, float]:
    """Speed (m/s) and acceleration (m/s^2) of x (T, 3) at frame t from frames t, t - step, t - 2 step
    (``direction`` -1: later frames)."""
    p = x[np.clip(t - direction * step * np.arange(3), 0, len(x) - 1)]
    h = step / fps
    return float(np.linalg.norm(p[0] - p[1]) / h), float(np.linalg.norm(p[0] - 2 * p[1] + p[2]) / h ** 2)


def spline_doubt(filled: np.ndarray, visible: np.ndarray, fps: float) -> np.ndarray:
    """filled (T, 22, 3) m (the splines' fill), visible (T, 22) -> (T, 22) m: how far each hidden joint may be off,
    0 where seen."""
    t_len = len(filled)
    out = np.zeros(visible.shape)
    step = max(1, int(round(fps / 30.0)))
    for j in range(visible.shape[1]):
        for a, b in runs(~visible[:, j]):
            sides = ([_motion(filled[:, j], a - 1, step, fps, +1)] if a > 0 else []) + \
                    ([_motion(filled[:, j], b, step, fps, -1)] if b < t_len else [])
            if not sides:
                continue
            speed, acc = (max(m[k] for m in sides) for k in range(2))
            frames = np.arange(a, b)
            dist = np.minimum(frames - a + 1 if a > 0 else np.inf, b - frames if b < t_len else np.inf) / fps
            if len(sides) == 2:  # the splines across the gap
                out[a:b, j] = np.minimum(SCALE * 0.5 * acc * dist ** 2, MOST)
            else:  # a gap at the clip's end holds the last seen position: off by how far the joint moved on
                out[a:b, j] = np.minimum(speed * dist + 0.5 * acc * dist ** 2, MOST)
    return out


def bridged(doubt: np.ndarray, network: np.ndarray, completed: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """(T, 22) doubts: inside a joint's hidden run that the networks completed in part (a few whole lost frames in a
    long gap), the frames they did not complete take the network's doubt interpolated from either side, not the
    splines' (which would count the whole run's length). ``network`` (T, 22) m, ``completed``/``hidden`` (T, 22)."""
    out = doubt.copy()
    for j in range(hidden.shape[1]):
        for a, b in runs(hidden[:, j]):
            done = np.flatnonzero(completed[a:b, j]) + a
            if 0 < len(done) < b - a:
                rest = np.setdiff1d(np.arange(a, b), done)
                out[rest, j] = np.interp(rest, done, network[done, j])
    return out
