"""The SMPL 22-joint skeleton (pelvis ... wrists): names, tree, groups, contact joints.

numpy and the standard library only: ``scripts/build_addon.py`` copies this file and its JSON into the
Blender add-on (``dreamor_body/``), so the add-on and the backend share one definition. Forward kinematics is in ``kinematics.py``.

Conventions (see DESIGN.md): the body is defined in SMPL's native model frame (+Y up,
facing +Z, +X to the body's left, metres); a clip's ``root_orient`` rotates it into the
Z-up world, as in AMASS. Rest joints are the body's joints in SMPL's zero pose (a T-pose).
Forward kinematics follows smplx's ``lbs``: the root rotates about the rest pelvis, then
``trans`` is added, so ``joints[..., 0, :] == rest_joints[0] + trans``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_ASSET = json.loads(Path(__file__).with_name("smpl22_rest_joints.json").read_text())

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
#: The models' frame rate (Hz): clips are resampled to it for the networks and back afterwards.
MODEL_FPS = 30.0
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


def parse_joints(spec: str, aliases: dict[str, int] | None = None) -> tuple[int, ...]:
    """'lower_body' or 'left_knee,right_knee' -> sorted joint indices; ValueError names unknowns.

    aliases: more names for joints (e.g. an armature's bone names -> joint index), accepted beside
    group and SMPL joint names.
    """
    index = {**JOINT_INDEX, **(aliases or {})}
    out: set[int] = set()
    unknown = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        if name in JOINT_GROUPS:
            out.update(JOINT_GROUPS[name])
        elif name in index:
            out.add(index[name])
        else:
            unknown.append(name)
    if unknown or not out:
        raise ValueError(
            f"unknown joint or group name(s) {unknown or [spec]}; use SMPL joint names "
            f"({', '.join(JOINT_NAMES)}) or groups ({', '.join(JOINT_GROUPS)})"
        )
    return tuple(sorted(out))


def rest_offsets(rest_joints):
    """(..., 22, 3) rest joints -> (..., 22, 3) offsets to the parent; row 0 = absolute pelvis."""
    parents = list(PARENTS)
    parents[0] = 0
    off = rest_joints - rest_joints[..., parents, :]
    off[..., 0, :] = rest_joints[..., 0, :]
    return off


def bone_lengths(joints):
    """(..., 22, 3) joints (numpy or torch) -> (..., 21) lengths of BONES (metres)."""
    p = [b[0] for b in BONES]
    c = [b[1] for b in BONES]
    d = joints[..., c, :] - joints[..., p, :]
    if isinstance(d, np.ndarray):
        return np.linalg.norm(d, axis=-1)
    return d.norm(dim=-1)

#: Y-up file frame -> Z-up world: +90 degrees about X, (x, y, z) -> (x, -z, y).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
