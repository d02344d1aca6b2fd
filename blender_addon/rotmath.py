"""Rotation conversions in NumPy, batched over any leading dims (no bpy, no torch).

The add-on's vocabulary matches ``dreamor.rotations`` on the backend:

- axis-angle ``aa``: (..., 3) radians, direction = axis
- matrix ``mat``: (..., 3, 3), column vectors (v' = R @ v)
- quaternion ``quat``: (..., 4) **w, x, y, z** (Blender's order)
- Blender axis-angle ``baa``: (..., 4) **angle, x, y, z** (``rotation_axis_angle``)
- Euler ``eul``: (..., 3) angles about x, y, z; ``order`` is Blender's rotation mode,
  e.g. 'XYZ' = rotate about X first, then Y, then Z: ``R = Rz @ Ry @ Rx``.
"""
from __future__ import annotations

import numpy as np

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def aa_to_mat(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) by Rodrigues' formula (exact near zero)."""
    aa = np.asarray(aa, np.float64)
    angle = np.linalg.norm(aa, axis=-1)[..., None, None]
    k = np.zeros(aa.shape[:-1] + (3, 3))
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -z, y, -x
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = z, -y, x
    small = angle < 1e-8
    safe = np.where(small, 1.0, angle)
    a = np.where(small, 1.0 - angle**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - angle**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) w, x, y, z with w >= 0 (Shepperd's method, stable everywhere)."""
    m = np.asarray(mat, np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    cand = np.stack(
        [
            np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )  # (..., 4 candidates, 4)
    best = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """(..., 4) w, x, y, z (normalised here, as Blender does) -> (..., 3, 3)."""
    q = np.asarray(quat, np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(n > 1e-12, q / np.where(n > 1e-12, n, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def quat_to_aa(quat: np.ndarray) -> np.ndarray:
    """(..., 4) w, x, y, z -> (..., 3) axis-angle, angle in [0, pi]."""
    q = np.asarray(quat, np.float64)
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1)
    angle = 2.0 * np.arctan2(s, q[..., 0])
    scale = np.where(s > 1e-12, angle / np.where(s > 1e-12, s, 1.0), 2.0)
    return v * scale[..., None]


def mat_to_aa(mat: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) axis-angle, angle in [0, pi]."""
    return quat_to_aa(mat_to_quat(mat))


def quat_continuous(quat: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` (time) so consecutive quaternions have a non-negative dot product."""
    q = np.moveaxis(np.asarray(quat, np.float64), axis, 0).copy()
    if len(q) > 1:
        dots = np.sum(q[1:] * q[:-1], axis=-1)
        flips = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
        q[1:] *= flips[..., None]
    return np.moveaxis(q, 0, axis)


def baa_to_mat(baa: np.ndarray) -> np.ndarray:
    """(..., 4) Blender axis-angle (angle, x, y, z) -> (..., 3, 3); a zero axis means identity."""
    baa = np.asarray(baa, np.float64)
    axis = baa[..., 1:]
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    unit = np.where(n > 1e-12, axis / np.where(n > 1e-12, n, 1.0), 0.0)
    return aa_to_mat(unit * baa[..., :1])


def quat_to_baa(quat: np.ndarray) -> np.ndarray:
    """(..., 4) w, x, y, z -> (..., 4) angle, x, y, z with a unit axis (angle in [0, 2 pi])."""
    q = np.asarray(quat, np.float64)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s[..., 0], q[..., 0])
    axis = np.where(s > 1e-12, v / np.where(s > 1e-12, s, 1.0), np.array([0.0, 1.0, 0.0]))
    return np.concatenate([angle[..., None], axis], axis=-1)


def _axis_mat(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(np.shape(angle) + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i], m[..., j, j] = c, c
    m[..., i, j], m[..., j, i] = -s, s
    return m


def eul_to_mat(eul: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(..., 3) Euler angles (about x, y, z) in Blender's ``order`` -> (..., 3, 3)."""
    eul = np.asarray(eul, np.float64)
    a, b, c = ("XYZ".index(ch) for ch in order)
    return _axis_mat(c, eul[..., c]) @ _axis_mat(b, eul[..., b]) @ _axis_mat(a, eul[..., a])


def mat_to_eul(mat: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(..., 3, 3) -> (..., 3) Euler angles (about x, y, z) for Blender's ``order``.

    With ``R = R_k(c) R_j(b) R_i(a)`` (i, j, k = order), the middle angle is in [-pi/2, pi/2].
    """
    m = np.asarray(mat, np.float64)
    i, j, k = ("XYZ".index(ch) for ch in order)
    s = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for cyclic (even) orders
    out = np.empty(m.shape[:-2] + (3,))
    out[..., j] = np.arcsin(np.clip(-s * m[..., k, i], -1.0, 1.0))
    cos_b = np.hypot(m[..., i, i], m[..., j, i])
    regular = cos_b > 1e-9
    out[..., i] = np.where(regular, np.arctan2(s * m[..., k, j], m[..., k, k]), np.arctan2(-s * m[..., j, k], m[..., j, j]))
    out[..., k] = np.where(regular, np.arctan2(s * m[..., j, i], m[..., i, i]), 0.0)
    return out


def eul_continuous(eul: np.ndarray, axis: int = 0) -> np.ndarray:
    """Unwrap Euler angles along ``axis`` (time) so no channel jumps by 2 pi between frames."""
    return np.unwrap(np.asarray(eul, np.float64), axis=axis)


def orthonormalize(mat: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> rotation matrices; removes scale from bone matrices.

    Columns are normalised (exact for a rotation times a per-axis scale, the usual case);
    matrices that are still not orthonormal (sheared) go to the nearest rotation by SVD.
    """
    out = mat / np.linalg.norm(mat, axis=-2, keepdims=True)
    err = np.abs(np.swapaxes(out, -1, -2) @ out - np.eye(3)).max(axis=(-2, -1))
    bad = err > 1e-5
    if np.any(bad):
        u, _, vt = np.linalg.svd(mat[bad])
        d = np.sign(np.linalg.det(u @ vt))
        u[..., :, 2] *= d[..., None]
        out[bad] = u @ vt
    return out
