"""The add-on's pose maths over NumPy arrays: armature poses <-> clip arrays, and merging a result.

No bpy here (``armature_io.py`` is the bpy layer that reads and writes Blender data through these
functions), so the maths is tested in plain Python (``tests/core/test_addon_core.py``). Conventions
(DESIGN.md, and ``armature_io``'s docstring): ``rest`` (22, 4, 4) the bones' rest matrices in
armature space, ``axes`` K (3, 3) armature axes -> SMPL's native frame, ``metres_per_unit`` Blender
units -> metres; ``local_rotmats`` (T, 22, 3, 3) with joint 0 the root orientation (native -> world).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import rotmath
from .conventions import PARENTS


class ArmatureError(ValueError):
    """The armature or its animation cannot be used; the message says what to do."""


# --------------------------------------------------------------------------- the rig


class RigGeometry(Protocol):
    """What the pose maths needs of a rig (``armature_io.Rig`` is one)."""

    name: str  # the armature object's name, for messages
    rest: np.ndarray  # (22, 4, 4) bone.matrix_local of the SMPL bones, armature space
    axes: np.ndarray  # (3, 3) K: armature-space vectors -> SMPL native frame
    metres_per_unit: float  # Blender units -> metres


def uniform_scale(name: str, world: np.ndarray):
    """The uniform scale of object matrices (..., 4, 4) -> (...); ArmatureError if not uniform."""
    cols = np.linalg.norm(world[..., :3, :3], axis=-2)
    scale = np.mean(cols, axis=-1)
    if np.any(np.abs(cols - scale[..., None]) > 1e-4 * scale[..., None]) or np.any(np.linalg.det(world[..., :3, :3]) <= 0):
        raise ArmatureError(
            f"armature '{name}' has a non-uniform or negative scale {tuple(np.round(cols.reshape(-1, 3)[0], 4))}; "
            "apply the scale (Object > Apply > Scale) or make it uniform"
        )
    return scale


def rest_joints(rig: RigGeometry, world: np.ndarray) -> np.ndarray:
    """(22, 3) rest joints in metres, native frame, for an object world matrix (4, 4)."""
    scale = float(uniform_scale(rig.name, world))
    return (rig.rest[:, :3, 3] * scale * rig.metres_per_unit) @ rig.axes.T


def pose_to_clip(rig: RigGeometry, poses: np.ndarray, worlds: np.ndarray):
    """Armature-space poses (T, 22, 4, 4) + object matrices (T, 4, 4) -> trans, local_rotmats, joints.

    Returns trans (T, 3) m, local_rotmats (T, 22, 3, 3), joints (T, 22, 3) m (world heads).
    """
    w = rig.metres_per_unit
    scale = uniform_scale(rig.name, worlds)
    obj_rot = worlds[:, :3, :3] / scale[:, None, None]
    delta = rotmath.orthonormalize(poses[..., :3, :3]) @ np.swapaxes(rig.rest[None, :, :3, :3], -1, -2)
    glob = obj_rot[:, None] @ delta @ rig.axes.T  # (T, 22, 3, 3): native -> world
    local = np.empty_like(glob)
    local[:, 0] = glob[:, 0]
    par = list(PARENTS[1:])
    local[:, 1:] = np.swapaxes(glob[:, par], -1, -2) @ glob[:, 1:]
    heads = poses[..., :3, 3]
    joints = w * (np.einsum("tij,tkj->tki", worlds[:, :3, :3], heads) + worlds[:, None, :3, 3])
    rest = rest_joints(rig, worlds[0])
    trans = joints[:, 0] - rest[0]
    return trans, local, joints


def as_rotmats(rotations: np.ndarray) -> np.ndarray:
    rotations = np.asarray(rotations, np.float64)
    if rotations.shape[-2:] == (3, 3) and rotations.ndim == 4:
        return rotations
    if rotations.ndim == 3 and rotations.shape[-1] == 3:
        return rotmath.aa_to_mat(rotations)
    raise ValueError(f"rotations must be (T, 22, 3) axis-angle or (T, 22, 3, 3) matrices, got {rotations.shape}")


def clip_to_basis(rig: RigGeometry, trans: np.ndarray, local_rotmats: np.ndarray, world: np.ndarray):
    """Clip arrays -> per-bone ``matrix_basis`` parts: (T, 22, 3, 3) rotations and (T, 3) pelvis location.

    Assumes the bones above the pelvis are at rest (the written action leaves them unkeyed).
    """
    w = rig.metres_per_unit
    scale = float(uniform_scale(rig.name, world))
    obj_rot, obj_loc = world[:3, :3] / scale, world[:3, 3]
    q0 = rig.rest[:, :3, :3]  # (22, 3, 3)
    c = rig.axes @ q0  # rest orientation of each bone in the native frame
    basis = np.swapaxes(c, -1, -2)[None] @ local_rotmats @ c[None]
    # pelvis: D_0 = R^T G_0 K; basis = Q0^T D_0 Q0
    d0 = obj_rot.T @ local_rotmats[:, 0] @ rig.axes
    basis[:, 0] = q0[0].T @ d0 @ q0[0]
    rest = rest_joints(rig, world)
    head = ((rest[0] + trans) / w - obj_loc) @ obj_rot / scale  # armature space, (T, 3)
    location = (head - rig.rest[0, :3, 3]) @ q0[0]  # Q0^T (p - h0)
    return basis, location


def step_keys(frames: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the keys where a step function changes value (first key always kept)."""
    keep = np.ones(len(values), bool)
    keep[1:] = values[1:] != values[:-1]
    return frames[keep], values[keep]


@dataclass
class ArmatureAnimation:
    """An armature's motion as clip arrays (keys as in the backend's clip ``.npz``)."""

    trans: np.ndarray  # (T, 3) metres; world pelvis = rest_joints[0] + trans
    local_rotmats: np.ndarray  # (T, 22, 3, 3) joint 0 = root orientation (native -> world)
    rest_joints: np.ndarray  # (22, 3) metres, SMPL native frame
    joints: np.ndarray  # (T, 22, 3) world joint heads, metres
    visible: np.ndarray  # (T, 22) bool from the 'visible' marks (True where unmarked)
    pinned: np.ndarray | None  # (T, 22) bool from the 'pinned' marks (Pin Pose), None when there are none
    confidence: np.ndarray | None  # (T, 22) in [0, 1] from the 'confidence' marks, 0 where not visible; None when all 1
    contacts: np.ndarray | None  # (T, 9) in [0, 1] from the 'contact' properties, if any
    fps: float  # the scene's frame rate
    frame_start: int  # first frame (inclusive)
    frame_end: int  # last frame (inclusive)
    metres_per_unit: float = 1.0
    method: str = "fcurves"  # how the pose was read: 'fcurves' or 'evaluate'

    @property
    def num_frames(self) -> int:
        return int(self.trans.shape[0])

    @property
    def root_orient(self) -> np.ndarray:
        """(T, 3) axis-angle."""
        return rotmath.mat_to_aa(self.local_rotmats[:, 0])

    @property
    def pose_body(self) -> np.ndarray:
        """(T, 63) axis-angle of joints 1..21."""
        return rotmath.mat_to_aa(self.local_rotmats[:, 1:]).reshape(self.num_frames, 63)

    def clip_arrays(self) -> dict[str, np.ndarray]:
        """The clip ``.npz`` keys (float64; ``visible`` bool; ``contacts``, ``pinned``, ``confidence`` when present)."""
        out = {
            "trans": self.trans,
            "root_orient": self.root_orient,
            "pose_body": self.pose_body,
            "mocap_framerate": np.float64(self.fps),
            "rest_joints": self.rest_joints,
            "joints": self.joints,
            "visible": self.visible,
        }
        if self.contacts is not None:
            out["contacts"] = self.contacts
        if self.pinned is not None:
            out["pinned"] = self.pinned
        if self.confidence is not None:
            out["confidence"] = self.confidence
        return out


def rotation_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) x 2 -> (...) radians between the rotations."""
    cos = (np.einsum("...ji,...ji->...", a, b) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


@dataclass
class Merged:
    """What ``apply`` writes: the full read range with the refined frames in place."""

    trans: np.ndarray  # (T, 3) m
    rotmats: np.ndarray  # (T, 22, 3, 3) local rotations
    contacts: np.ndarray  # (T, 9)
    kept_deg: float  # largest change (degrees) the backend made to a visible bone, undone
    kept_cm: float  # largest change (cm) the backend made to a visible pelvis position, undone


def merge_result(anim: ArmatureAnimation, mask: np.ndarray, result, keep_visible: bool) -> Merged:
    """Put the result (``mask.sum()`` frames: trans, root_orient, pose_body, contacts) into the
    captured motion; with ``keep_visible``, visible bones keep their captured rotations."""
    n = int(mask.sum())
    local = np.concatenate([np.asarray(result.root_orient)[:, None], np.asarray(result.pose_body).reshape(n, 21, 3)], axis=1)
    trans, rotmats = anim.trans.copy(), anim.local_rotmats.copy()
    trans[mask] = np.asarray(result.trans, np.float64)
    rotmats[mask] = rotmath.aa_to_mat(local)
    contacts = anim.contacts.copy() if anim.contacts is not None else np.zeros((anim.num_frames, 9))
    contacts[mask] = np.clip(np.asarray(result.contacts, np.float64), 0.0, 1.0)
    kept_deg = kept_cm = 0.0
    if keep_visible:
        vis = anim.visible & mask[:, None]  # (T, 22)
        if vis.any():
            kept_deg = float(np.degrees(rotation_angle(rotmats[vis], anim.local_rotmats[vis]).max()))
            rotmats[vis] = anim.local_rotmats[vis]
        root = vis[:, 0]
        if root.any():
            kept_cm = float(100.0 * np.linalg.norm(trans[root] - anim.trans[root], axis=-1).max())
            trans[root] = anim.trans[root]
    return Merged(trans, rotmats, contacts, kept_deg, kept_cm)
