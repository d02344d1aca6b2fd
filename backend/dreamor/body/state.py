"""The DREAMoR state x_t and per-frame contact labels.

x_t = [r (3), r_dot (3), Phi (6), Phi_dot (3), Theta (21 x 6), J (22 x 3), J_dot (22 x 3)]
(D = 273): root translation ``trans`` (m) and its velocity (m/s), root orientation in 6D
and its angular velocity (rad/s, world frame, axis-angle of R_t R_{t-1}^T times fps),
the 21 body joint rotations in 6D (relative to the parent), the 22 joint positions (m,
world, Z-up) and their velocities (m/s). Velocities are backward differences at the
model rate (30 Hz); frame 0 repeats frame 1's. Rotations in 6D: see ``rotations``.

Contacts c_t in {0, 1}^9 for [pelvis, l/r knee, l/r ankle, l/r toe, l/r wrist], HuMoR's
rule: speed < 0.005 m/frame at 30 Hz and height < 0.04 m (toes) / 0.08 m (others).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .kinematics import forward_kinematics
from .rotations import aa_to_mat, mat_to_aa, mat_to_r6d, r6d_to_mat
from .skeleton import CONTACT_HEIGHT_M, CONTACT_JOINTS, CONTACT_SPEED_M_PER_FRAME, MODEL_FPS, NUM_JOINTS

_SIZES = (("trans", 3), ("trans_vel", 3), ("root_orient", 6), ("root_orient_vel", 3),
          ("pose_body", 21 * 6), ("joints", NUM_JOINTS * 3), ("joints_vel", NUM_JOINTS * 3))
#: Slices of each part in the state vector.
STATE_SLICES: dict[str, slice] = {}
_o = 0
for _name, _n in _SIZES:
    STATE_SLICES[_name] = slice(_o, _o + _n)
    _o += _n
STATE_DIM = _o  # 273
NUM_CONTACTS = len(CONTACT_JOINTS)


@dataclass
class StateParts:
    """A state split into named parts; every field has shape (..., n) as in STATE_SLICES."""

    trans: torch.Tensor
    trans_vel: torch.Tensor
    root_orient: torch.Tensor
    root_orient_vel: torch.Tensor
    pose_body: torch.Tensor
    joints: torch.Tensor
    joints_vel: torch.Tensor


def split_state(x: torch.Tensor) -> StateParts:
    """(..., 273) -> StateParts (views)."""
    return StateParts(**{k: x[..., s] for k, s in STATE_SLICES.items()})


def join_state(p: StateParts) -> torch.Tensor:
    return torch.cat([getattr(p, k) for k in STATE_SLICES], dim=-1)


def _backward_diff(x: torch.Tensor, fps: float) -> torch.Tensor:
    """(T, ...) -> (T, ...) velocity per second; frame 0 repeats frame 1."""
    if x.shape[0] < 2:
        return torch.zeros_like(x)
    d = (x[1:] - x[:-1]) * fps
    return torch.cat([d[:1], d], dim=0)


def angular_velocity(rotmats: torch.Tensor, fps: float) -> torch.Tensor:
    """(..., T, 3, 3) world rotations -> (..., T, 3) world angular velocity (rad/s), backward differences."""
    if rotmats.shape[-3] < 2:
        return rotmats.new_zeros(*rotmats.shape[:-2], 3)
    rel = rotmats[..., 1:, :, :] @ rotmats[..., :-1, :, :].transpose(-1, -2)
    w = mat_to_aa(rel) * fps
    return torch.cat([w[..., :1, :], w], dim=-2)


def motion_to_state(
    local_rotmats: torch.Tensor, trans: torch.Tensor, rest_joints: torch.Tensor, fps: float = MODEL_FPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """A motion -> states (T, 273) and joints (T, 22, 3).

    local_rotmats: (T, 22, 3, 3); trans: (T, 3) m; rest_joints: (22, 3) m.
    """
    fk = forward_kinematics(local_rotmats, rest_joints, trans)
    t = trans.shape[0]
    joints = fk.joints.reshape(t, -1)
    parts = StateParts(
        trans=trans,
        trans_vel=_backward_diff(trans, fps),
        root_orient=mat_to_r6d(local_rotmats[:, 0]),
        root_orient_vel=angular_velocity(local_rotmats[:, 0], fps),
        pose_body=mat_to_r6d(local_rotmats[:, 1:]).reshape(t, -1),
        joints=joints,
        joints_vel=_backward_diff(joints, fps),
    )
    return join_state(parts), fk.joints


def clip_to_state(clip, fps: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A Clip (at the model rate) -> states (T, 273) float32 and joints (T, 22, 3)."""
    aa = torch.as_tensor(clip.local_aa, dtype=torch.float64)
    x, joints = motion_to_state(
        aa_to_mat(aa), torch.as_tensor(clip.trans, dtype=torch.float64),
        torch.as_tensor(clip.rest_joints, dtype=torch.float64), fps or clip.fps,
    )
    return x.float(), joints.float()


def state_rotmats(x: torch.Tensor) -> torch.Tensor:
    """(..., 273) -> (..., 22, 3, 3) local rotations (root first), via Gram-Schmidt."""
    p = split_state(x)
    body = r6d_to_mat(p.pose_body.reshape(*p.pose_body.shape[:-1], 21, 6))
    return torch.cat([r6d_to_mat(p.root_orient)[..., None, :, :], body], dim=-3)


def state_to_aa(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(T, 273) -> trans (T, 3), root_orient (T, 3), pose_body (T, 63) axis-angle."""
    aa = mat_to_aa(state_rotmats(x))
    return split_state(x).trans, aa[..., 0, :], aa[..., 1:, :].flatten(-2)


def contact_labels(joints: np.ndarray | torch.Tensor, fps: float = MODEL_FPS) -> np.ndarray:
    """(..., T, 22, 3) world joints (Z-up, floor z = 0) -> (..., T, 9) float {0, 1} contact labels.

    Speeds are rescaled to metres per 30 Hz frame, so the rule holds at any rate.
    """
    j = np.asarray(joints, dtype=np.float64)[..., list(CONTACT_JOINTS), :]
    if j.shape[-3] < 2:
        speed = np.zeros(j.shape[:-1])
    else:
        d = np.linalg.norm(np.diff(j, axis=-3), axis=-1) * (fps / 30.0)
        speed = np.concatenate([d[..., :1, :], d], axis=-2)
    return ((speed < CONTACT_SPEED_M_PER_FRAME) & (j[..., 2] < CONTACT_HEIGHT_M)).astype(np.float32)
