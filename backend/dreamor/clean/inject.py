"""Capture faults put into a clean clip on purpose: the test cases of ``dreamor clean`` and of the detection
benchmark (docs/benchmarks/clean.md). Each returns the faulty clip; :func:`fault_truth` says which
joint-frames a set of faults really moved."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.skeleton import JOINT_GROUPS
from ..data.clip import Clip
from .detect import SUBTREE, world_joints


def hold_joints(clip: Clip, joints, start: int, frames: int) -> Clip:
    """The joints' local rotations held at frame ``start - 1`` over frames start .. start+frames-1 (a solver
    holding a lost limb at its last seen pose)."""
    aa = clip.local_aa.copy()
    joints = list(joints)
    aa[start : start + frames, joints] = aa[start - 1, joints]
    return clip.with_local_aa(aa)


def hold_legs(clip: Clip, start: int, frames: int = 40) -> Clip:
    """Both legs (hips down) held for ``frames`` frames from ``start``."""
    return hold_joints(clip, JOINT_GROUPS["lower_body"], start, frames)


def spike(clip: Clip, joint: int, start: int, frames: int = 3, metres: float = 0.3) -> Clip:
    """``joint``'s local rotation turned for ``frames`` frames so that the farthest joint below it jumps by
    about ``metres`` and comes back (a rotation glitch)."""
    far = max(SUBTREE[joint], key=lambda d: np.linalg.norm(clip.rest_joints[d] - clip.rest_joints[joint]))
    bone = clip.rest_joints[far] - clip.rest_joints[joint]
    reach = np.linalg.norm(bone)
    angle = 2.0 * np.arcsin(min(1.0, metres / (2.0 * max(reach, 1e-6))))
    axis = np.cross(bone, [0.0, 0.0, 1.0])  # across the limb (the rest pose's frame), not a twist along it
    if np.linalg.norm(axis) < 1e-6 * max(reach, 1e-6):
        axis = np.cross(bone, [1.0, 0.0, 0.0])
    axis = axis / np.linalg.norm(axis)
    aa = clip.local_aa.copy()
    seg = slice(start, start + frames)
    turned = Rotation.from_rotvec(aa[seg, joint]) * Rotation.from_rotvec(angle * axis)
    aa[seg, joint] = turned.as_rotvec()
    return clip.with_local_aa(aa)


def nan_frames(clip: Clip, start: int, frames: int = 5) -> Clip:
    """Frames start .. start+frames-1 lost: every value NaN."""
    aa, trans = clip.local_aa.copy(), clip.trans.copy()
    aa[start : start + frames] = np.nan
    trans[start : start + frames] = np.nan
    joints = None if clip.joints is None else clip.joints.copy()
    if joints is not None:
        joints[start : start + frames] = np.nan
    return replace(clip.with_local_aa(aa), trans=trans, joints=joints)


def touched(joints, start: int, frames: int, num_frames: int) -> np.ndarray:
    """(T, 22) the joint-frames a fault on ``joints`` over frames start .. start+frames-1 touches: those
    joints and everything below them."""
    out = np.zeros((num_frames, 22), bool)
    for j in joints:
        out[start : start + frames, list(SUBTREE[j])] = True
    return out


def fault_truth(clean: Clip, faulty: Clip, min_m: float = 0.02) -> np.ndarray:
    """(T, 22) joint-frames the faults really moved: more than ``min_m`` off the clean clip, or unknown."""
    a = world_joints(replace(clean, joints=None))
    finite = np.isfinite(faulty.local_aa).all((-1, -2)) & np.isfinite(faulty.trans).all(-1)
    b = world_joints(replace(faulty, joints=None, trans=np.nan_to_num(faulty.trans),
                             root_orient=np.nan_to_num(faulty.root_orient), pose_body=np.nan_to_num(faulty.pose_body)))
    truth = np.linalg.norm(a - b, axis=-1) > min_m
    truth[~finite] = True
    return truth
