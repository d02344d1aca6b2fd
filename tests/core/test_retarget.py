"""Retargeting is right, measured on real takes of every supported skeleton."""
import numpy as np
import pytest
import torch

from dreamor.data.bvh import bvh_fk, read_bvh
from dreamor.data.retarget import Y_UP_TO_Z_UP, _target_positions, detect_skeleton, retarget_bvh
from dreamor.rotations import aa_to_mat
from dreamor.skeleton import BONES, forward_kinematics

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


def test_daz_drops_the_inserted_tpose_frame(mocap_dir):
    bvh = read_bvh(mocap_dir / "cmu_13_10.bvh.gz")
    assert retarget_bvh(bvh).num_frames == bvh.num_frames - 1


def test_skeleton_keeps_source_bone_lengths(mocap_dir):
    """Bandai: thigh 39.1 cm, shin 41.0 cm (README)."""
    clip = retarget_bvh(read_bvh(mocap_dir / "dataset-2_run_normal_001.bvh"))
    rest = clip.rest_joints
    assert np.linalg.norm(rest[4] - rest[1]) == pytest.approx(0.391, abs=0.005)
    assert np.linalg.norm(rest[7] - rest[4]) == pytest.approx(0.410, abs=0.005)
