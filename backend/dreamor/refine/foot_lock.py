"""Locked feet: while the result says a foot is in contact, it does not slide (``RefineConfig.lock_feet``).

For each leg and each run of frames where its ankle or toe is in contact (probability > 0.5), the joint is
held at one anchor (its mean position over the run); the correction fades in and out over ``blend_s`` on either
side so nothing pops. The leg reaches the held ankle by two-bone IK (hip fixed, the knee kept in the plane of
hip, ankle and the result's knee, bone lengths exact); a held toe moves the whole foot (its world orientation
kept) when only the toe is down, and turns the foot about the held ankle when both are. Lengths in metres,
frames at the clip's own rate.
"""
from __future__ import annotations

import numpy as np
import torch

from ..body.kinematics import forward_kinematics
from ..body.rotations import smallest_rotation, unit
from ..body.skeleton import rest_offsets
from .fades import fade_out, runs

#: (hip, knee, ankle, toe) joints and the contact-label columns of the ankle and toe, per leg.
LEGS = (((1, 4, 7, 10), (3, 5)), ((2, 5, 8, 11), (4, 6)))


def held_offsets(points: np.ndarray, contact: np.ndarray, blend: int) -> np.ndarray:
    """points (T, 3), contact (T,) bool -> (T, 3) offsets that hold each contact run at its mean position,
    fading linearly to zero over ``blend`` frames on either side of the run."""
    inside = np.zeros_like(points)
    for s, e in runs(contact):
        inside[s:e] = points[s:e].mean(0) - points[s:e]
    return fade_out(inside, contact, blend)[0]


def two_bone(hip: np.ndarray, knee: np.ndarray, target: np.ndarray, l1: float, l2: float,
             bend_dir: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle positions (T, 3) reaching ``target`` from ``hip`` with bone lengths l1, l2, the knee in
    the plane of hip, target and the old knee (reach clamped to what the leg can do). Where the old limb is
    straight (no plane), the knee bends towards ``bend_dir`` (T, 3), e.g. the body's forward for a knee."""
    to = target - hip
    d = np.linalg.norm(to, axis=-1, keepdims=True)
    u = to / np.maximum(d, 1e-9)
    d = np.clip(d, abs(l1 - l2) + 1e-6, l1 + l2)
    bend = knee - hip
    perp = bend - (bend * u).sum(-1, keepdims=True) * u
    if bend_dir is not None:
        alt = bend_dir - (bend_dir * u).sum(-1, keepdims=True) * u
        perp = np.where(np.linalg.norm(perp, axis=-1, keepdims=True) < 1e-3 * l1, alt, perp)
    v = unit(perp)
    cos_a = np.clip((l1**2 + d**2 - l2**2) / (2 * max(l1, 1e-9) * d), -1.0, 1.0)
    new_knee = hip + l1 * (cos_a * u + np.sqrt(1 - cos_a**2) * v)
    return new_knee, hip + d * u


def lock_feet(local_rotmats: np.ndarray, trans: np.ndarray, rest: np.ndarray, contacts: np.ndarray, fps: float,
              blend_s: float = 0.1, fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """local_rotmats (T, 22, 3, 3), trans (T, 3) m, rest (22, 3), contacts (T, 9) -> local_rotmats, joints
    (T, 22, 3) with every contact run of each ankle and toe held in place (see the module docstring).
    ``fixed`` (T, 22) bool: joints already where they must be (pins, trusted observations): a leg is left
    alone in the frames where any of its joints is fixed."""
    fk = forward_kinematics(torch.from_numpy(local_rotmats), torch.from_numpy(rest), torch.from_numpy(trans))
    joints, world = fk.joints.numpy().copy(), fk.global_rotmats.numpy().copy()
    off = rest_offsets(np.asarray(rest, np.float64).copy())
    out = local_rotmats.copy()
    blend = max(int(round(blend_s * fps)), 1)
    down = np.asarray(contacts) > 0.5
    for (hip, knee, ankle, toe), (c_ankle, c_toe) in LEGS:
        free = np.ones(len(trans), bool) if fixed is None else ~np.asarray(fixed)[:, [hip, knee, ankle, toe]].any(1)
        ankle_fix = held_offsets(joints[:, ankle], down[:, c_ankle] & free, blend) * free[:, None]
        toe_fix = held_offsets(joints[:, toe], down[:, c_toe] & free, blend) * free[:, None]
        rows = np.abs(ankle_fix).sum(-1) + np.abs(toe_fix).sum(-1) > 0  # only where something is held
        if not rows.any():
            continue
        # the ankle goes where it is held; where only the toe is held, the foot moves with the toe
        only_toe = ~ankle_fix.any(-1, keepdims=True)
        target = joints[:, ankle] + np.where(only_toe, toe_fix, ankle_fix)
        l1, l2 = np.linalg.norm(off[knee]), np.linalg.norm(off[ankle])
        forward = world[:, hip] @ np.array([0.0, 0.0, 1.0])  # SMPL's body frame faces +Z: knees bend forward
        new_knee, new_ankle = two_bone(joints[:, hip], joints[:, knee], target, l1, l2, forward)
        g_hip = smallest_rotation(unit(joints[:, knee] - joints[:, hip]), unit(new_knee - joints[:, hip])) @ world[:, hip]
        g_knee = smallest_rotation(unit(joints[:, ankle] - joints[:, knee]), unit(new_ankle - new_knee)) @ world[:, knee]
        g_ankle = world[:, ankle]
        toe_target = joints[:, toe] + toe_fix
        both = ~only_toe[:, 0] & toe_fix.any(-1)  # turn the foot about the held ankle towards the held toe
        if both.any():
            turn = smallest_rotation(unit(joints[both, toe] - joints[both, ankle]), unit(toe_target[both] - new_ankle[both]))
            g_ankle = g_ankle.copy()
            g_ankle[both] = turn @ g_ankle[both]
        out[rows, hip] = (np.swapaxes(world[:, 0], 1, 2) @ g_hip)[rows]  # the hips hang from the pelvis
        out[rows, knee] = (np.swapaxes(g_hip, 1, 2) @ g_knee)[rows]
        out[rows, ankle] = (np.swapaxes(g_knee, 1, 2) @ g_ankle)[rows]
    joints = forward_kinematics(torch.from_numpy(out), torch.from_numpy(rest), torch.from_numpy(trans)).joints.numpy()
    return out, joints
