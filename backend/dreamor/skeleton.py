"""The SMPL 22-joint skeleton (pelvis ... wrists) and batched forward kinematics.

Conventions (see DESIGN.md): the body is defined in SMPL's native model frame (+Y up,
facing +Z, +X to the body's left, metres); a clip's ``root_orient`` rotates it into the
Z-up world, as in AMASS. Rest joints are the body's joints in SMPL's zero pose (a T-pose).
Forward kinematics follows smplx's ``lbs``: the root rotates about the rest pelvis, then
``trans`` is added, so ``joints[..., 0, :] == rest_joints[0] + trans``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

_ASSET = json.loads(resources.files("dreamor").joinpath("assets/smpl22_rest_joints.json").read_text())

JOINT_NAMES: tuple[str, ...] = tuple(_ASSET["joint_names"])
PARENTS: tuple[int, ...] = tuple(_ASSET["parents"])
NUM_JOINTS = 22
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}
#: SMPL neutral (betas = 0) rest joints, (22, 3) metres, SMPL native frame.
SMPL_NEUTRAL_REST_JOINTS = np.asarray(_ASSET["rest_joints_m"], dtype=np.float64)
#: Children of each joint (within the 22).
CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c in range(NUM_JOINTS) if PARENTS[c] == j) for j in range(NUM_JOINTS)
)
#: Bones as (parent, child) pairs, one per non-root joint.
BONES: tuple[tuple[int, int], ...] = tuple((PARENTS[j], j) for j in range(1, NUM_JOINTS))


def _depth_levels() -> tuple[tuple[int, ...], ...]:
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS[j]] + 1
    return tuple(tuple(j for j in range(NUM_JOINTS) if depth[j] == d) for d in range(1, max(depth) + 1))


#: Non-root joints grouped by their depth in the tree (parents always in an earlier group).
DEPTH_LEVELS: tuple[tuple[int, ...], ...] = _depth_levels()

#: The 9 contact joints: pelvis, l/r knee, l/r ankle, l/r foot (toe), l/r wrist.
CONTACT_JOINTS: tuple[int, ...] = (0, 4, 5, 7, 8, 10, 11, 20, 21)
#: Contact height thresholds (m) per contact joint: 0.04 for the toes, 0.08 otherwise (HuMoR).
CONTACT_HEIGHT_M = np.array([0.08, 0.08, 0.08, 0.08, 0.08, 0.04, 0.04, 0.08, 0.08])
#: Contact speed threshold, metres per frame at 30 Hz (HuMoR).
CONTACT_SPEED_M_PER_FRAME = 0.005

#: Named joint groups (indices), used for occlusion marks and metrics.
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "lower_body": (1, 2, 4, 5, 7, 8, 10, 11),
    "legs": (4, 5, 7, 8, 10, 11),
    "left_leg": (1, 4, 7, 10),
    "right_leg": (2, 5, 8, 11),
    "left_arm": (13, 16, 18, 20),
    "right_arm": (14, 17, 19, 21),
    "spine": (3, 6, 9, 12, 15),
    "feet": (7, 8, 10, 11),
}


def parse_joints(spec: str) -> tuple[int, ...]:
    """'lower_body' or 'left_knee,right_knee' -> sorted joint indices; ValueError names unknowns."""
    out: set[int] = set()
    unknown = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        if name in JOINT_GROUPS:
            out.update(JOINT_GROUPS[name])
        elif name in JOINT_INDEX:
            out.add(JOINT_INDEX[name])
        else:
            unknown.append(name)
    if unknown or not out:
        raise ValueError(
            f"unknown joint or group name(s) {unknown or [spec]}; use SMPL joint names "
            f"({', '.join(JOINT_NAMES)}) or groups ({', '.join(JOINT_GROUPS)})"
        )
    return tuple(sorted(out))


def rest_offsets(rest_joints: np.ndarray | torch.Tensor):
    """(..., 22, 3) rest joints -> (..., 22, 3) offsets to the parent; row 0 = absolute pelvis."""
    parents = list(PARENTS)
    parents[0] = 0
    off = rest_joints - rest_joints[..., parents, :]
    off[..., 0, :] = rest_joints[..., 0, :]
    return off


def bone_lengths(joints: np.ndarray | torch.Tensor):
    """(..., 22, 3) joints -> (..., 21) lengths of BONES (metres)."""
    p = [b[0] for b in BONES]
    c = [b[1] for b in BONES]
    d = joints[..., c, :] - joints[..., p, :]
    if isinstance(d, torch.Tensor):
        return d.norm(dim=-1)
    return np.linalg.norm(d, axis=-1)


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
