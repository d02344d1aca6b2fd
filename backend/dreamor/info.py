"""`dreamor info FILE`: a short, human summary of a motion file (BVH or clip .npz)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .body.skeleton import CONTACT_JOINTS, JOINT_NAMES, bone_lengths
from .data.bvh import read_bvh
from .data.convert import is_bvh, read_motion, with_joints_and_contacts
from .data.retarget import detect_skeleton


def summarize(path: str | Path) -> str:
    path = Path(path)
    lines = [f"{path.name}"]
    if is_bvh(path):
        bvh = read_bvh(path)
        lines.append(f"  source: BVH, {detect_skeleton(bvh).name} skeleton, {len(bvh.names)} joints (End Sites included), "
                     f"{bvh.num_frames} frames at {bvh.fps:.2f} fps")
    notes: list[str] = []
    clip = with_joints_and_contacts(read_motion(path, notes=notes))
    lines += [f"  note: {n}" for n in notes]
    j = clip.joints
    travel = np.linalg.norm(np.diff(j[:, 0, :2], axis=0), axis=-1).sum()
    lengths = bone_lengths(clip.rest_joints)
    lines += [
        f"  SMPL-22 clip: {clip.num_frames} frames at {clip.fps:g} Hz ({clip.num_frames / clip.fps:.2f} s)",
        f"  height (head joint at rest, above ankles): {clip.rest_joints[15, 1] - clip.rest_joints[7, 1]:.2f} m; "
        f"thigh {lengths[3]:.3f} m, shin {lengths[6]:.3f} m",
        f"  pelvis height: median {np.median(j[:, 0, 2]):.2f} m; root travel {travel:.2f} m; "
        f"lowest toe {j[:, [10, 11], 2].min():+.3f} m",
        "  contact (share of frames): " + ", ".join(
            f"{JOINT_NAMES[k]} {clip.contacts[:, i].mean():.0%}" for i, k in enumerate(CONTACT_JOINTS)),
    ]
    if clip.visible is not None:
        lines.append(f"  occluded: {(~clip.visible).mean():.1%} of joint-frames")
    return "\n".join(lines)
