"""Retargeting is right, measured on real takes of every supported skeleton."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dreamor.body.kinematics import forward_kinematics
from dreamor.body.rotations import aa_to_mat
from dreamor.body.skeleton import BONES, Y_UP_TO_Z_UP
from dreamor.body.state import clip_to_state
from dreamor.data.bvh import bvh_fk, read_bvh
from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.data.retarget import _target_positions, detect_skeleton, retarget_bvh

from .lafan import write_lafan_like

CASES = {
    "dataset-2_walk-turn-left_normal_001.bvh": ("bandai", True),
    "dataset-2_run_normal_001.bvh": ("bandai", True),
    "dataset-2_raise-up-both-hands_normal_028.bvh": ("bandai", False),
    "cmu_02_01.bvh": ("cmu", True),
    "cmu_13_35.bvh.gz": ("cmu_daz", False),  # stairs
    "cmu_05_02.bvh.gz": ("cmu_daz", False),  # dance
    "cmu_13_10.bvh.gz": ("cmu_daz", False),  # jumps
}


@pytest.fixture(scope="module")
def lafan_file(tmp_path_factory, mocap_dir):
    out = tmp_path_factory.mktemp("lafan") / "walk_lafan_layout.bvh"
    return write_lafan_like(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh", out)


def _measure(bvh):
    """-> (clip, SMPL FK joints (T,22,3), mapped source joints (T,22,3) in metres Z-up)."""
    m = detect_skeleton(bvh)
    clip = retarget_bvh(bvh)
    pos, _ = bvh_fk(bvh)
    if m.drop_first_frame:
        pos = pos[1:]
    src = np.einsum("ij,tkj->tki", Y_UP_TO_Z_UP, _target_positions(m, bvh, pos)) * m.unit_to_m
    joints = forward_kinematics(
        aa_to_mat(torch.tensor(clip.local_aa)), torch.tensor(clip.rest_joints), torch.tensor(clip.trans)
    ).joints.numpy()
    return clip, joints, src


def _bone_cosines(a, b):
    p = [i for i, _ in BONES]
    c = [j for _, j in BONES]
    da, db = a[:, c] - a[:, p], b[:, c] - b[:, p]
    return np.sum(da * db, -1) / (np.linalg.norm(da, axis=-1) * np.linalg.norm(db, axis=-1))


def _check(bvh, walking):
    clip, joints, src = _measure(bvh)
    # 1. bone directions match the source's mapped bones
    cos = _bone_cosines(joints, src)
    assert np.isfinite(cos).all()
    assert cos.mean() >= 0.98, cos.mean()
    # 2. feet on the floor where they stand still
    toes = joints[:, [10, 11], 2]
    low = toes.min(1)
    which = toes.argmin(1)
    speed = np.abs(np.diff(toes, axis=0, prepend=toes[:1]))[np.arange(len(low)), which] * clip.fps / 30
    standing = speed < 0.01
    assert standing.sum() > 5
    assert abs(low[standing].min()) <= 0.03, low[standing].min()
    # upright, plausible heights (metres)
    assert 0.4 < np.median(joints[:, 0, 2]) < 1.3
    assert np.median(joints[:, 15, 2]) > np.median(joints[:, 0, 2])
    # 3. walking: the root moves forward, in the ground plane, in the direction the body faces
    if walking:
        from scipy.spatial.transform import Rotation

        move = joints[-1, 0] - joints[0, 0]
        assert np.linalg.norm(move[:2]) > 1.0
        assert abs(move[2]) < 0.1
        fwd = Rotation.from_rotvec(clip.root_orient).as_matrix() @ np.array([0.0, 0.0, 1.0])
        vel = np.gradient(joints[:, 0, :2], axis=0)
        fast = np.linalg.norm(vel, axis=1) > 0.01
        cos_f = np.sum(fwd[fast, :2] * vel[fast], 1) / (np.linalg.norm(fwd[fast, :2], axis=1) * np.linalg.norm(vel[fast], axis=1))
        assert cos_f.mean() > 0.8, cos_f.mean()
    return clip, joints


@pytest.mark.parametrize("name", list(CASES))
def test_retarget_real_takes(mocap_dir, name):
    skeleton, walking = CASES[name]
    bvh = read_bvh(mocap_dir / name)
    assert detect_skeleton(bvh).name == skeleton
    _check(bvh, walking)


def test_retarget_lafan1_layout(lafan_file):
    bvh = read_bvh(lafan_file)
    assert detect_skeleton(bvh).name == "lafan1"
    assert len(bvh.channels[0]) == 6 and all(len(c) == 3 for c in bvh.channels[1:] if c)
    _check(bvh, walking=True)


def test_daz_drops_the_inserted_tpose_frame_and_says_so(mocap_dir):
    bvh = read_bvh(mocap_dir / "cmu_13_10.bvh.gz")
    assert retarget_bvh(bvh).num_frames == bvh.num_frames - 1
    notes = []
    read_motion(mocap_dir / "cmu_13_10.bvh.gz", fps=None, notes=notes)
    assert len(notes) == 1 and "frame 0 is the skeleton's T-pose" in notes[0] and "the file's frame 1" in notes[0]


def test_a_daz_take_cut_after_its_tpose_keeps_its_first_frame(mocap_dir):
    """A file trimmed by the user no longer starts with the T-pose: its first frame is motion and stays."""
    bvh = read_bvh(mocap_dir / "cmu_13_10.bvh.gz")
    cut = replace(bvh, motion=bvh.motion[1:])
    clip = retarget_bvh(cut)
    assert clip.num_frames == cut.num_frames
    np.testing.assert_allclose(clip.pose_body, retarget_bvh(bvh).pose_body, atol=1e-9)


def test_skeleton_keeps_source_bone_lengths(mocap_dir):
    """Bandai: thigh 39.1 cm, shin 41.0 cm (README)."""
    clip = retarget_bvh(read_bvh(mocap_dir / "dataset-2_run_normal_001.bvh"))
    rest = clip.rest_joints
    assert np.linalg.norm(rest[4] - rest[1]) == pytest.approx(0.391, abs=0.005)
    assert np.linalg.norm(rest[7] - rest[4]) == pytest.approx(0.410, abs=0.005)


# The Motionbuilder fixture's joints under their 3dsMax-friendly names (the same tree; see the mocap README).
MB_TO_3DSMAX = {
    "LeftUpLeg": "LeftHip", "LeftLeg": "LeftKnee", "LeftFoot": "LeftAnkle", "LeftToeBase": "LeftToe",
    "RightUpLeg": "RightHip", "RightLeg": "RightKnee", "RightFoot": "RightAnkle", "RightToeBase": "RightToe",
    "LowerBack": "lowerback", "Spine": "Chest", "Spine1": "Chest2", "Neck": "lowerneck", "Neck1": "Neck",
    "LeftShoulder": "LeftCollar", "LeftArm": "LeftShoulder", "LeftForeArm": "LeftElbow", "LeftHand": "LeftWrist",
    "LeftFingerBase": "lhand", "LeftHandIndex1": "LFingers",
    "RightShoulder": "RightCollar", "RightArm": "RightShoulder", "RightForeArm": "RightElbow",
    "RightHand": "RightWrist", "RightFingerBase": "rhand", "RightHandIndex1": "RFingers",
}


def _rewrite_hierarchy(src, dst, rename=None, scale_offsets=None):
    """Copy a BVH with joints renamed and/or some joints' OFFSETs scaled (name -> factor)."""
    import re

    lines, current = [], None
    for line in src.read_text().splitlines():
        m = re.match(r"(\s*)(ROOT|JOINT)\s+(\S+)", line)
        if m:
            current = m.group(3)
            line = f"{m.group(1)}{m.group(2)} {(rename or {}).get(current, current)}"
        elif "End Site" in line:
            current = None
        elif line.strip().startswith("OFFSET") and current in (scale_offsets or {}):
            vals = [float(v) * scale_offsets[current] for v in line.split()[1:]]
            line = line[: line.index("OFFSET")] + "OFFSET " + " ".join(f"{v:.6f}" for v in vals)
        lines.append(line)
    dst.write_text("\n".join(lines) + "\n")
    return dst


def test_retarget_cmu_3dsmax_layout(mocap_dir, tmp_path):
    """The 3dsMax names (LeftShoulder = upper arm, LeftCollar = clavicle) give the Motionbuilder joints."""
    src = mocap_dir / "cmu_02_01.bvh"
    max_file = _rewrite_hierarchy(src, tmp_path / "131_like.bvh", rename=MB_TO_3DSMAX)
    assert detect_skeleton(read_bvh(max_file)).name == "cmu_3dsmax"
    mb, mx = read_motion(src), read_motion(max_file)
    assert mx.num_frames == mb.num_frames
    _, j_mb = clip_to_state(mb)
    _, j_mx = clip_to_state(mx)
    err = np.linalg.norm(j_mx.numpy() - j_mb.numpy(), axis=-1).max(0)  # (22,) metres
    legs = [0, 1, 2, 3, 4, 5, 7, 8, 10, 11]
    assert err[legs].max() < 1e-4
    # spine3 is Spine1 there and midway Chest2-Neck here, so the upper spine is fitted a little differently
    assert err.max() < 0.06 and np.delete(err, [6, 9]).max() < 0.005


def test_retarget_pfnn_bone_lengths(mocap_dir, tmp_path):
    """PFNN captures: the Motionbuilder layout with their own bone lengths, which the clip keeps."""
    src = mocap_dir / "cmu_02_01.bvh"
    longer = _rewrite_hierarchy(src, tmp_path / "pfnn_like.bvh", scale_offsets={"LeftLeg": 1.1, "RightLeg": 1.1})
    assert detect_skeleton(read_bvh(longer)).name == "cmu"
    thigh = lambda c: np.linalg.norm(c.rest_joints[4] - c.rest_joints[1])  # noqa: E731
    assert thigh(read_motion(longer)) == pytest.approx(1.1 * thigh(read_motion(src)), rel=1e-3)


def _tilted(bvh, degrees: float):
    """The BVH's whole world turned by ``degrees`` about the file's horizontal X axis (a capture floor off level)."""
    tilt = Rotation.from_euler("x", degrees, degrees=True)
    motion = bvh.motion.copy()
    names = bvh.channels[0]
    pos_cols = [names.index(f"{a}position") for a in "XYZ"]
    rot_cols = [i for i, c in enumerate(names) if c.endswith("rotation")]
    order = "".join(names[i][0] for i in rot_cols)
    motion[:, pos_cols] = tilt.apply(motion[:, pos_cols])
    root = Rotation.from_euler(order, motion[:, rot_cols], degrees=True)
    motion[:, rot_cols] = (tilt * root).as_euler(order, degrees=True)
    return replace(bvh, motion=motion)


def test_a_tilted_capture_floor_is_levelled(mocap_dir):
    """A walk captured on a floor 1.5 deg off level (as the CMU 07/08 walks) comes back with its feet on a level
    floor; without the levelling its feet would end 4+ cm above or below it."""
    bvh = read_bvh(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh")
    level = retarget_bvh(bvh)
    tilted = retarget_bvh(_tilted(bvh, 1.5))
    toes = lambda c: with_joints_and_contacts(c).joints[:, [10, 11], 2].min(1)  # noqa: E731
    assert np.abs(toes(tilted) - toes(level)).max() < 0.01
    np.testing.assert_allclose(tilted.pose_body, level.pose_body, atol=0.02)


def test_floor_tilt_levels_only_a_small_tilt():
    """Synthetic feet stepping along x: a plane 1.5 deg off level is levelled; stairs (30 deg) and a level floor
    are left alone."""
    from dreamor.data.retarget import floor_tilt

    rng = np.random.default_rng(0)
    x = np.repeat(np.arange(12) * 0.35, 10)  # 12 footfalls, 10 still frames each (30 Hz)
    toes = np.zeros((len(x), 2, 3))
    toes[:, 0, 0], toes[:, 1, 0] = x, x + 0.2
    toes[:, 1, 2] = 0.1  # the other foot in the air
    up = np.array([0.0, 0.0, 1.0])
    for slope_deg, levelled in ((1.5, True), (30.0, False), (0.0, False)):
        t = toes.copy()
        t[..., 2] += np.tan(np.radians(slope_deg)) * t[..., 0] + 0.002 * rng.standard_normal(t.shape[:2])
        rot = floor_tilt(t, 30.0)
        normal = np.array([-np.tan(np.radians(slope_deg)), 0.0, 1.0]) / np.hypot(np.tan(np.radians(slope_deg)), 1.0)
        if levelled:
            np.testing.assert_allclose(rot @ normal, up, atol=2e-3)
        else:
            np.testing.assert_allclose(rot, np.eye(3), atol=1e-12)
