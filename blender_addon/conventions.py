"""The SMPL-22 skeleton as the add-on sees it, and the armature naming conventions it reads.

No bpy here. The joint names, parents, groups and contact joints are the backend's own
``dreamor/body/skeleton.py``, copied into the zip (the add-on never imports the backend).

Coordinate frames: SMPL's native body frame is +Y up, facing +Z, +X = the body's left,
metres. Blender's world is Z-up; a body standing in it faces -Y. ``BLENDER_TO_NATIVE``
maps a Blender vector (x, y, z) to the native (x, z, -y).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The skeleton has one source, the backend's ``dreamor/body/skeleton.py``, which scripts/build_addon.py copies
# into the zip as ``dreamor_body/`` (numpy only).
from .dreamor_body.skeleton import (  # noqa: F401  (re-exported for the add-on's modules)
    CHILDREN,
    CONTACT_JOINTS,
    JOINT_GROUPS,
    JOINT_NAMES,
    NUM_JOINTS,
    PARENTS,
    SMPL_NEUTRAL_REST_JOINTS,
)
from .dreamor_body.skeleton import parse_joints as _parse_joints

#: SMPL for Blender / SMPL FBX spelling of each joint (the FBX adds an 'm_avg_' / 'f_avg_' prefix).
SMPL_CAPS_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle",
    "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip

#: (x, y, z) Blender -> (x, z, -y) native; its transpose maps native -> Blender.
BLENDER_TO_NATIVE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: Custom properties the add-on keys on pose bones.
VISIBLE_PROP = "visible"
PINNED_PROP = "pinned"
CONFIDENCE_PROP = "confidence"
CONTACT_PROP = "contact"
#: metres: how far the backend says the joint may be off (0 where it was seen); keyed by Refine.
DOUBT_PROP = "doubt"


@dataclass(frozen=True)
class Convention:
    """One armature naming scheme: ``names[j]`` is the bone of SMPL joint j (prefix included)."""

    key: str  # 'smplx' (SMPL-X / Meshcapade add-on), 'smpl' (SMPL for Blender), 'smpl_fbx'
    label: str
    names: tuple[str, ...]


def _with_prefix(names: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    return tuple(prefix + n for n in names)


def candidate_conventions(bone_names) -> list[Convention]:
    """The conventions an armature with these bone names might follow, best guess first.

    Prefixes are found from the pelvis bone ('m_avg_Pelvis' -> 'm_avg_'), so 'f_avg_' and
    other exporters' prefixes work too.
    """
    names = set(bone_names)
    out: list[Convention] = []
    for bone in sorted(names):
        if bone.endswith("Pelvis"):
            prefix = bone[: -len("Pelvis")]
            key = "smpl" if prefix == "" else "smpl_fbx"
            label = "SMPL for Blender" if prefix == "" else f"SMPL FBX ({prefix}*)"
            out.append(Convention(key, label, _with_prefix(SMPL_CAPS_NAMES, prefix)))
        elif bone.endswith("pelvis"):
            prefix = bone[: -len("pelvis")]
            out.append(Convention("smplx", "SMPL-X / Meshcapade", _with_prefix(JOINT_NAMES, prefix)))
    defaults = [
        Convention("smplx", "SMPL-X / Meshcapade", JOINT_NAMES),
        Convention("smpl_fbx", "SMPL FBX (m_avg_*)", _with_prefix(SMPL_CAPS_NAMES, "m_avg_")),
        Convention("smpl", "SMPL for Blender", SMPL_CAPS_NAMES),
    ]
    out += [c for c in defaults if c not in out]
    out.sort(key=lambda c: -sum(n in names for n in c.names))
    return out


def match_convention(armature_name: str, bone_names) -> Convention:
    """The convention whose 22 bones all exist, or ValueError naming the missing bones."""
    names = set(bone_names)
    cands = candidate_conventions(names)
    for conv in cands:
        if all(n in names for n in conv.names):
            return conv
    best = cands[0]
    other = next((c for c in cands if c.key != best.key and c.key != "smpl"), cands[1])
    missing = [j for j, n in enumerate(best.names) if n not in names]
    pairs = [f"'{best.names[j]}' or '{other.names[j]}'" for j in missing[:4]]
    more = f" (and {len(missing) - 4} more)" if len(missing) > 4 else ""
    noun = "bone" if len(missing) == 1 else "bones"
    raise ValueError(
        f"armature '{armature_name}' has no {noun} {', '.join(pairs)}{more}; is this an SMPL armature?"
    )


def descendants(joints) -> set[int]:
    """All joints below the given ones in the SMPL-22 tree (the given ones included)."""
    out = set(joints)
    for j in range(NUM_JOINTS):  # parents come before children
        if PARENTS[j] in out:
            out.add(j)
    return out


def canonical_axes(heads: np.ndarray) -> np.ndarray:
    """The axis-aligned rotation K (3, 3) that maps armature-space vectors to SMPL's native frame.

    heads: (22, 3) rest-pose joint heads in armature space (a T-pose, any units). The body's
    up (pelvis -> neck) and left (right hip/shoulder -> left) directions are measured and
    snapped to the nearest of the 24 axis-aligned rotations, so a rig built in SMPL's own
    frame keeps its rest joints exactly. ValueError when the rest pose has no up or no left direction.
    """
    heads = np.asarray(heads, np.float64)
    up = heads[12] - heads[0]
    left = (heads[1] - heads[2]) + (heads[16] - heads[17])
    size = float(np.ptp(heads, axis=0).max()) if np.all(np.isfinite(heads)) else 0.0
    if not size > 0 or np.linalg.norm(up) < 1e-3 * size:
        raise ValueError("the rest pose has no up direction (the neck is not above the pelvis); "
                         "is the skeleton's rest pose a T-pose?")
    up = up / np.linalg.norm(up)
    left = left - up * np.dot(left, up)
    if np.linalg.norm(left) < 1e-3 * size:
        raise ValueError("the rest pose has no left-right direction (the hips and shoulders have no width); "
                         "is the skeleton's rest pose a T-pose?")
    left = left / np.linalg.norm(left)
    frame = np.stack([left, up, np.cross(left, up)])  # rows: native x, y, z in armature space
    best, best_score = None, -np.inf
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        for signs in np.ndindex(2, 2, 2):
            k = np.zeros((3, 3))
            for row, (col, sgn) in enumerate(zip(perm, signs)):
                k[row, col] = 1.0 if sgn == 0 else -1.0
            if np.linalg.det(k) < 0:
                continue
            score = float(np.sum(k * frame))
            if score > best_score:
                best, best_score = k, score
    return best


def parse_joints(spec: str, convention: Convention | None = None) -> tuple[int, ...]:
    """'lower_body' or 'left_knee,m_avg_R_Knee' -> sorted joint indices; ValueError names unknowns.

    Accepts group names, SMPL joint names and (with ``convention``) the armature's bone names.
    """
    aliases = {n: i for i, n in enumerate(convention.names)} if convention is not None else None
    return _parse_joints(spec, aliases)
