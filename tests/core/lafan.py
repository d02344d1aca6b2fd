"""Write a BVH in the LAFAN1 hierarchy and channel layout (see the mocap README).

No LAFAN1 take may be shipped, so the motion is a real Bandai take re-expressed in the
LAFAN1 layout: same names and parents as LAFAN1 (three spine joints), Hips with 6 channels
``Xposition Yposition Zposition Zrotation Yrotation Xrotation``, every other joint 3
channels ``Zrotation Yrotation Xrotation``, bones along local +X (as in LAFAN1 and Bandai),
centimetres, Y-up, 30 fps, root OFFSET = the first frame's position.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dreamor.data.bvh import bvh_fk, read_bvh, write_bvh

# LAFAN1 joint -> Bandai joint whose rotation/offset it takes ("Spine1" splits the Chest bone).
LAFAN_FROM_BANDAI = {
    "Hips": "Hips", "LeftUpLeg": "UpperLeg_L", "LeftLeg": "LowerLeg_L", "LeftFoot": "Foot_L", "LeftToe": "Toes_L",
    "RightUpLeg": "UpperLeg_R", "RightLeg": "LowerLeg_R", "RightFoot": "Foot_R", "RightToe": "Toes_R",
    "Spine": "Spine", "Spine1": "Chest", "Spine2": None, "Neck": "Neck", "Head": "Head",
    "LeftShoulder": "Shoulder_L", "LeftArm": "UpperArm_L", "LeftForeArm": "LowerArm_L", "LeftHand": "Hand_L",
    "RightShoulder": "Shoulder_R", "RightArm": "UpperArm_R", "RightForeArm": "LowerArm_R", "RightHand": "Hand_R",
}
LAFAN_PARENTS = {
    "Hips": None, "LeftUpLeg": "Hips", "LeftLeg": "LeftUpLeg", "LeftFoot": "LeftLeg", "LeftToe": "LeftFoot",
    "RightUpLeg": "Hips", "RightLeg": "RightUpLeg", "RightFoot": "RightLeg", "RightToe": "RightFoot",
    "Spine": "Hips", "Spine1": "Spine", "Spine2": "Spine1", "Neck": "Spine2", "Head": "Neck",
    "LeftShoulder": "Spine2", "LeftArm": "LeftShoulder", "LeftForeArm": "LeftArm", "LeftHand": "LeftForeArm",
    "RightShoulder": "Spine2", "RightArm": "RightShoulder", "RightForeArm": "RightArm", "RightHand": "RightForeArm",
}


def write_lafan_like(bandai_bvh: Path, out: Path) -> Path:
    src = read_bvh(bandai_bvh)
    pos, rot = bvh_fk(src)
    idx = {n: i for i, n in enumerate(src.names)}
    names = list(LAFAN_PARENTS)
    parents = [names.index(p) if p else -1 for p in LAFAN_PARENTS.values()]
    t = src.num_frames
    offsets = np.zeros((len(names), 3))
    glob = np.zeros((t, len(names), 3, 3))
    for k, n in enumerate(names):
        b = LAFAN_FROM_BANDAI[n]
        if n == "Spine1":  # first half of Bandai's Spine->Chest bone, with Spine's rotation
            offsets[k] = 0.5 * src.offsets[idx["Chest"]]
            glob[:, k] = rot[:, idx["Spine"]]
        elif n == "Spine2":  # second half, Chest's rotation
            offsets[k] = 0.5 * src.offsets[idx["Chest"]]
            glob[:, k] = rot[:, idx["Chest"]]
        else:
            offsets[k] = src.offsets[idx[b]]
            glob[:, k] = rot[:, idx[b]]
    local = glob.copy()
    for k, p in enumerate(parents):
        if p >= 0:
            local[:, k] = np.swapaxes(glob[:, p], -1, -2) @ glob[:, k]
    euler = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_euler("ZYX", degrees=True).reshape(t, -1, 3)
    root = pos[:, idx["Hips"]]
    offsets[0] = root[0]
    return write_bvh(out, names, parents, offsets, root, euler, src.frame_time, order="ZYX")
