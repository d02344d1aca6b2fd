"""Batched forward kinematics over the SMPL-22 tree (smplx ``lbs`` conventions), and bone-length projection.

Conventions (see DESIGN.md and ``skeleton``): the root rotates about the rest pelvis, then ``trans``
is added, so ``joints[..., 0, :] == rest_joints[0] + trans``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .skeleton import DEPTH_LEVELS, NUM_JOINTS, PARENTS, bone_lengths, rest_offsets


def project_bone_lengths(joints: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Joints (..., 22, 3) -> the same pose with every bone at its rest length (metres).

    Walks the tree from the pelvis (kept): each joint goes to its already placed parent plus
    the rest bone length along its own original direction from its original parent, so bone
    directions are kept and each subtree follows its parent. ``rest_joints`` (..., 22, 3)
    broadcasts against ``joints``. Differentiable (a degenerate zero-length bone gives a
    zero-length result, no NaN).
    """
    ref = bone_lengths(rest_joints.to(joints))  # (..., 21), bone j-1 ends at joint j
    placed: list[torch.Tensor | None] = [joints[..., 0, :]] + [None] * (NUM_JOINTS - 1)
    for level in DEPTH_LEVELS:
        idx, par = list(level), [PARENTS[j] for j in level]
        d = joints[..., idx, :] - joints[..., par, :]
        unit = d * torch.rsqrt(d.square().sum(-1, keepdim=True) + 1e-12)
        new = torch.stack([placed[p] for p in par], dim=-2) + unit * ref[..., [j - 1 for j in idx], None]
        for k, j in enumerate(idx):
            placed[j] = new[..., k, :]
    return torch.stack(placed, dim=-2)


@dataclass
class FKResult:
    """joints: (..., 22, 3) world positions; global_rotmats: (..., 22, 3, 3) world rotations."""

    joints: torch.Tensor
    global_rotmats: torch.Tensor


def forward_kinematics(
    local_rotmats: torch.Tensor, rest_joints: torch.Tensor, trans: torch.Tensor | None = None
) -> FKResult:
    """Batched FK over the SMPL-22 tree.

    local_rotmats: (..., 22, 3, 3) rotation of each joint relative to its parent
        (joint 0 = root orientation, body frame -> world).
    rest_joints: (..., 22, 3) or (22, 3) rest-pose joints in SMPL's zero pose (metres);
        broadcast against the leading dims of ``local_rotmats``.
    trans: (..., 3) or None; world pelvis = rest_joints[0] + trans.
    """
    lead = local_rotmats.shape[:-3]
    rest = rest_joints.to(local_rotmats).expand(*lead, NUM_JOINTS, 3)
    off = rest_offsets(rest.clone())
    g_rot = [local_rotmats[..., 0, :, :]]
    pos0 = rest[..., 0, :] + (trans if trans is not None else 0.0)
    g_pos = [pos0]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        g_rot.append(g_rot[p] @ local_rotmats[..., j, :, :])
        g_pos.append(g_pos[p] + (g_rot[p] @ off[..., j, :, None])[..., 0])
    return FKResult(joints=torch.stack(g_pos, dim=-2), global_rotmats=torch.stack(g_rot, dim=-3))
