"""The canonical frame of a state (as HuMoR): where the networks see a motion from.

Before the networks, x_{t-1} and x_t are expressed in the local frame of x_{t-1}: a world z rotation
removing the body's heading (its forward axis, SMPL +Z, turned to face +Y) and a ground-plane shift
putting x_{t-1}'s pelvis at x = y = 0 (height kept: the floor stays at z = 0). Vectors (velocities,
angular velocity) rotate; positions (trans, joints) rotate and shift; ``trans`` moves as the point
``trans + rest_pelvis`` (FK adds trans to the rest pelvis), so canonical states stay FK-consistent.
Body rotations are relative, hence unchanged. States are (..., 273) (``state.py``); ``rest_joints`` is
(B, 22, 3) (broadcast over the other leading dims) or (22, 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .rotations import r6d_to_mat
from .state import STATE_SLICES, join_state, split_state

_S = STATE_SLICES


@dataclass
class Frame:
    """A rigid map p -> rot @ p + shift (rotation about world z, shift in the ground plane).

    rot: (..., 3, 3); shift: (..., 3).
    """

    rot: torch.Tensor
    shift: torch.Tensor

    def inverse(self) -> "Frame":
        rt = self.rot.transpose(-1, -2)
        return Frame(rt, -(rt @ self.shift[..., None])[..., 0])


def _pelvis(rest_joints: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Rest pelvis (B, 3) or (3,) -> broadcastable against x's leading dims (B, ..., 3)."""
    p0 = rest_joints[..., 0, :].to(x)
    if p0.dim() == 2 and x.dim() > 2:
        p0 = p0.view(p0.shape[0], *([1] * (x.dim() - 2)), 3)
    return p0


def canonical_frame(x: torch.Tensor, rest_joints: torch.Tensor) -> Frame:
    """World -> local frame of the states x (..., 273): pelvis at x = y = 0, facing +Y.

    The heading is the body's forward axis (SMPL +Z) projected on the ground; when that is
    near vertical (lying face up/down), the left axis (SMPL +X) turned by 90 degrees is used.
    """
    rot = r6d_to_mat(x[..., _S["root_orient"]])
    fwd, left = rot[..., :, 2], rot[..., :, 0]
    fx, fy = fwd[..., 0], fwd[..., 1]
    flat = (fx.square() + fy.square()) < 1e-6
    fx = torch.where(flat, left[..., 1], fx)
    fy = torch.where(flat, -left[..., 0], fy)
    n = (fx.square() + fy.square()).clamp_min(1e-12).sqrt()
    c, s = fy / n, fx / n  # rotation taking (fx, fy) to (0, n)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rz = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).view(*c.shape, 3, 3)
    pelvis = x[..., _S["trans"]] + _pelvis(rest_joints, x)
    origin = torch.cat([pelvis[..., :2], torch.zeros_like(pelvis[..., 2:])], dim=-1)
    return Frame(rz, -(rz @ origin[..., None])[..., 0])


def transform_state(x: torch.Tensor, frame: Frame, rest_joints: torch.Tensor) -> torch.Tensor:
    """Apply a rigid world map to states (..., 273): positions move, vectors and root turn."""
    rot, shift = frame.rot, frame.shift
    rt = rot.transpose(-1, -2)

    def vecs(v: torch.Tensor) -> torch.Tensor:  # (..., 3k) -> rotated
        return (v.reshape(*v.shape[:-1], -1, 3) @ rt).reshape(v.shape)

    p = split_state(x)
    p0 = _pelvis(rest_joints, x)
    p.trans = vecs(p.trans + p0) + shift - p0
    p.trans_vel = vecs(p.trans_vel)
    p.root_orient = vecs(p.root_orient)  # the two 6D columns are vectors
    p.root_orient_vel = vecs(p.root_orient_vel)
    j = p.joints.reshape(*p.joints.shape[:-1], -1, 3)
    p.joints = (j @ rt + shift[..., None, :]).reshape(p.joints.shape)
    p.joints_vel = vecs(p.joints_vel)
    return join_state(p)


def canonical_pairs(prev: torch.Tensor, cur: torch.Tensor, rest_joints: torch.Tensor):
    """World (x_{t-1}, x_t) -> both in x_{t-1}'s frame, plus that frame: (prev_c, cur_c, frame)."""
    frame = canonical_frame(prev, rest_joints)
    return transform_state(prev, frame, rest_joints), transform_state(cur, frame, rest_joints), frame
