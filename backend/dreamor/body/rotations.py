"""Rotation conversions in torch, batched over any leading dims.

Thin, documented wrappers over `roma` (well-tested, differentiable) so the rest of the
code base has one vocabulary:

- axis-angle ``aa``: (..., 3) radians, direction = axis
- matrix ``mat``: (..., 3, 3), column vectors (v' = R @ v)
- 6D ``r6d``: (..., 6) the first two *columns* of the matrix, [R[:,0], R[:,1]]
  (Zhou et al. 2019, as HuMoR uses); mapped back by Gram-Schmidt
- quaternion ``quat``: (..., 4) **w, x, y, z** (Blender's order; roma uses x, y, z, w)

NumPy code paths (BVH parsing, retargeting) use ``scipy.spatial.transform.Rotation``; the few numpy
helpers the IK stages share (``smallest_rotation``, ``unit``) are at the end.
"""
from __future__ import annotations

import numpy as np
import roma
import torch
from scipy.spatial.transform import Rotation


def aa_to_mat(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix."""
    return roma.rotvec_to_rotmat(aa)


def mat_to_aa(mat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle, angle in [0, pi]."""
    return roma.rotmat_to_rotvec(mat)


def mat_to_r6d(mat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, concatenated."""
    return torch.cat([mat[..., :, 0], mat[..., :, 1]], dim=-1)


def r6d_to_mat(r6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; any 6-vector maps to a valid rotation."""
    cols = torch.stack([r6d[..., :3], r6d[..., 3:]], dim=-1)  # (..., 3, 2)
    return roma.special_gramschmidt(cols)


def quat_to_mat(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) w, x, y, z (normalised here) -> (..., 3, 3)."""
    q = roma.quat_wxyz_to_xyzw(quat)
    return roma.unitquat_to_rotmat(q / q.norm(dim=-1, keepdim=True))


def mat_to_quat(mat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) w, x, y, z with w >= 0."""
    q = roma.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(mat))
    return torch.where(q[..., :1] < 0, -q, q)


def aa_to_quat(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 4) w, x, y, z."""
    return mat_to_quat(aa_to_mat(aa))


def quat_to_aa(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) w, x, y, z -> (..., 3) axis-angle."""
    return mat_to_aa(quat_to_mat(quat))


def aa_to_r6d(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 6)."""
    return mat_to_r6d(aa_to_mat(aa))


def r6d_to_aa(r6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3)."""
    return mat_to_aa(r6d_to_mat(r6d))


def smallest_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations (..., 3, 3) taking unit vectors a to b (..., 3)."""
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    c = np.sum(a * b, axis=-1, keepdims=True)
    angle = np.arctan2(s, c)
    rotvec = np.where(s > 1e-9, axis / np.maximum(s, 1e-12) * angle, 0.0)
    # Antiparallel vectors: any perpendicular axis.
    anti = (s[..., 0] <= 1e-9) & (c[..., 0] < 0)
    if np.any(anti):
        perp = np.cross(a[anti], [1.0, 0.0, 0.0])
        bad = np.linalg.norm(perp, axis=-1) < 1e-6
        perp[bad] = np.cross(a[anti][bad], [0.0, 1.0, 0.0])
        rotvec[anti] = perp / np.linalg.norm(perp, axis=-1, keepdims=True) * np.pi
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(*a.shape[:-1], 3, 3)


def rotation_angle_deg(rot: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> how far each turns, degrees (...)."""
    return np.degrees(np.arccos(np.clip((np.trace(rot, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)))


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
