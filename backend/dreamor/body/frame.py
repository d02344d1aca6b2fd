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

import functools
from dataclasses import dataclass

import torch

from .state import STATE_SLICES

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
    r6d = x[..., _S["root_orient"]]
    left = r6d[..., :3] / r6d[..., :3].norm(dim=-1, keepdim=True)  # the root's columns by Gram-Schmidt (r6d_to_mat)
    up = r6d[..., 3:] - (left * r6d[..., 3:]).sum(-1, keepdim=True) * left
    fwd = torch.linalg.cross(left, up / up.norm(dim=-1, keepdim=True), dim=-1)
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


@functools.lru_cache(maxsize=None)
def _vector_index(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The state's 3-vectors, in order, on ``device``: (49 * 3,) indices into the 273 dims; (49, 1) masks of the
    positions (trans, joints: they shift) and of ``trans`` (it moves as the point trans + rest pelvis)."""
    groups = ["trans", "trans_vel", "root_orient", "root_orient_vel", "joints", "joints_vel"]
    index = torch.cat([torch.arange(_S[g].start, _S[g].stop) for g in groups])
    kinds = [g for g in groups for _ in range((_S[g].stop - _S[g].start) // 3)]
    moves = torch.tensor([k in ("trans", "joints") for k in kinds], dtype=dtype)[:, None]
    is_trans = torch.tensor([k == "trans" for k in kinds], dtype=dtype)[:, None]
    return index.to(device), moves.to(device), is_trans.to(device)


def transform_state(x: torch.Tensor, frame: Frame, rest_joints: torch.Tensor) -> torch.Tensor:
    """Apply a rigid world map to states (..., 273): positions move, vectors and root turn.

    One gather, one batched 3x3 product and one scatter (the refinement's rollout calls this twice per decoded
    frame, forward and backward, so its number of operations is most of the rollout's cost)."""
    rot, shift = frame.rot, frame.shift
    index, moves, is_trans = _vector_index(x.device, x.dtype)
    v = x.index_select(-1, index).reshape(*x.shape[:-1], -1, 3) @ rot.transpose(-1, -2)  # row vectors turned
    p0 = _pelvis(rest_joints, x)
    trans_fix = (rot @ p0[..., None])[..., 0] - p0  # trans + p0 turns as a point, then p0 comes off again
    offset = shift[..., None, :] * moves + trans_fix[..., None, :] * is_trans
    return x.index_copy(-1, index, (v + offset).reshape(*x.shape[:-1], -1))


def canonical_pairs(prev: torch.Tensor, cur: torch.Tensor, rest_joints: torch.Tensor):
    """World (x_{t-1}, x_t) -> both in x_{t-1}'s frame, plus that frame: (prev_c, cur_c, frame)."""
    frame = canonical_frame(prev, rest_joints)
    return transform_state(prev, frame, rest_joints), transform_state(cur, frame, rest_joints), frame
