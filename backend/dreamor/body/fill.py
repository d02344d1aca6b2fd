"""Simple fills for hidden joints: the first guesses the engine and the baselines start from.

Positions are (T, 22, 3) metres, Z-up world; ``visible`` (T, 22) bool; ``rest_joints`` (22, 3) in SMPL's
native frame (+Y up). Nothing here learns: the joint-completion network (``models.infill``) refines
these guesses, and ``evaluate.baselines`` exposes two of them as the ``input`` and ``interp`` methods.
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from .skeleton import NUM_JOINTS, PARENTS, Y_UP_TO_Z_UP

#: Left/right joint pairs that give the body's heading, in order of preference
#: (shoulders, collars, hips, elbows, knees).
_HEADING_PAIRS = ((16, 17), (13, 14), (1, 2), (18, 19), (4, 5))


def hold_last_seen(values: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Carry each joint's last visible value forward.

    values: (T, J, ...) with anything where not visible; visible: (T, J) bool.
    Returns (held values, seen) where seen (T, J) is False before a joint's first sighting
    (those entries keep ``values``).
    """
    t = np.arange(len(visible))[:, None]
    last = np.maximum.accumulate(np.where(visible, t, -1), axis=0)
    seen = last >= 0
    held = values[np.clip(last, 0, None), np.arange(visible.shape[1])[None, :]]
    return np.where(seen.reshape(seen.shape + (1,) * (values.ndim - 2)), held, values), seen


def heading_yaw(joints: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3), (T, 22), (22, 3) -> (T,) radians: how far the body is turned about the vertical.

    0 is SMPL's rest facing (-Y world); the first visible pair of ``_HEADING_PAIRS`` gives the
    heading; frames with no pair reuse the last heading (0 before any).
    """
    t = len(joints)
    yaw = np.full(t, np.nan)
    for a, b in reversed(_HEADING_PAIRS):  # preferred pairs overwrite
        ok = visible[:, a] & visible[:, b]
        d = joints[ok, a] - joints[ok, b]
        rest = Y_UP_TO_Z_UP @ (rest_joints[a] - rest_joints[b])
        good = np.hypot(d[:, 0], d[:, 1]) > 1e-6
        yaw[np.flatnonzero(ok)[good]] = np.arctan2(d[good, 1], d[good, 0]) - np.arctan2(rest[1], rest[0])
    known = ~np.isnan(yaw)
    yaw, seen = hold_last_seen(yaw[:, None], known[:, None])
    return np.where(seen[:, 0], yaw[:, 0], 0.0)


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    """(T,) radians -> (T, 3, 3) rotations about world +Z."""
    c, s = np.cos(yaw), np.sin(yaw)
    rz = np.zeros(yaw.shape + (3, 3))
    rz[..., 0, 0], rz[..., 0, 1], rz[..., 1, 0], rz[..., 1, 1], rz[..., 2, 2] = c, -s, s, c, 1.0
    return rz


def upright_frames(joints: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3), (T, 22), (22, 3) -> (T, 3, 3): the rest pose stood upright (SMPL native +Y up ->
    Z-up world) and turned by ``heading_yaw``."""
    return yaw_matrices(heading_yaw(joints, visible, rest_joints)) @ Y_UP_TO_Z_UP


def rest_fill(joints: np.ndarray, placed: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Place every joint not yet ``placed`` by the rest pose, hung from its nearest placed ancestor.

    joints: (T, 22, 3) with valid values where placed (T, 22); rest_joints: (22, 3) SMPL native frame.
    A pelvis that is not placed is put where the placed joints' rest offsets put it on average.
    """
    out = joints.copy()
    rot = upright_frames(joints, visible, rest_joints)
    off = lambda j, p: rest_joints[j] - rest_joints[p]  # noqa: E731
    miss0 = ~placed[:, 0]
    if miss0.any():
        est = np.zeros((int(miss0.sum()), 3))
        cnt = np.zeros((int(miss0.sum()), 1))
        for k in range(1, NUM_JOINTS):
            ok = placed[miss0, k]
            pos = joints[miss0, k] - rot[miss0] @ off(k, 0)
            est[ok] += pos[ok]
            cnt[ok] += 1
        fallback = np.array([0.0, 0.0, rest_joints[0, 1] - rest_joints[:, 1].min()])  # standing at the origin
        out[miss0, 0] = np.where(cnt > 0, est / np.maximum(cnt, 1), fallback)
    for j in range(1, NUM_JOINTS):
        miss = ~placed[:, j]
        if miss.any():
            p = PARENTS[j]
            out[miss, j] = out[miss, p] + rot[miss] @ off(j, p)
    return out


def held_fill(joints: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Hidden joints held at their last seen position, else placed by the rest pose (``rest_fill``)."""
    held, seen = hold_last_seen(joints, visible)
    return rest_fill(held, seen, visible, rest_joints)


def spline_fill(joints: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Per joint, a cubic spline (not-a-knot) through the visible frames fills every gap with a visible
    frame on both sides; elsewhere (clip ends, never-seen joints) as ``held_fill``."""
    out = held_fill(joints, visible, rest_joints)
    frames = np.arange(len(joints))
    for j in range(NUM_JOINTS):
        seen = np.flatnonzero(visible[:, j])
        if len(seen) < 2:
            continue
        gap = frames[(~visible[:, j]) & (frames > seen[0]) & (frames < seen[-1])]
        if len(gap):
            out[gap, j] = CubicSpline(seen, joints[seen, j], axis=0)(gap)
    return out


def short_gaps(visible: np.ndarray, max_frames: int) -> np.ndarray:
    """(T, J) bool: the hidden runs of each joint at most ``max_frames`` long with seen frames on both sides
    (a glitch or a few lost frames, pinned by the poses either side)."""
    out = np.zeros_like(visible, dtype=bool)
    t = len(visible)
    for j in range(visible.shape[1]):
        hidden = np.concatenate([[0], (~visible[:, j]).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(hidden))
        for a, b in zip(edges[::2], edges[1::2]):
            if 0 < a and b < t and b - a <= max_frames:
                out[a:b, j] = True
    return out

