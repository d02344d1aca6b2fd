import numpy as np
import pytest
import torch

from dreamor.body import rotations as R
from dreamor.body.kinematics import forward_kinematics
from dreamor.body.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, SMPL_NEUTRAL_REST_JOINTS, bone_lengths, parse_joints


@pytest.fixture
def aa():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(500, 3, generator=g, dtype=torch.float64)
    angle = torch.rand(500, 1, generator=g, dtype=torch.float64) * (np.pi - 1e-3)
    return v / v.norm(dim=-1, keepdim=True) * angle


def test_round_trips_are_exact(aa):
    mat = R.aa_to_mat(aa)
    assert torch.allclose(R.mat_to_aa(mat), aa, atol=1e-5)
    assert torch.allclose(R.r6d_to_mat(R.mat_to_r6d(mat)), mat, atol=1e-5)
    assert torch.allclose(R.quat_to_mat(R.mat_to_quat(mat)), mat, atol=1e-5)
    assert torch.allclose(R.quat_to_aa(R.aa_to_quat(aa)), aa, atol=1e-5)
    assert torch.allclose(R.r6d_to_aa(R.aa_to_r6d(aa)), aa, atol=1e-5)


def test_conventions_match_scipy(aa):
    from scipy.spatial.transform import Rotation

    ref = Rotation.from_rotvec(aa.numpy())
    assert np.allclose(R.aa_to_mat(aa).numpy(), ref.as_matrix(), atol=1e-10)
    q = R.aa_to_quat(aa).numpy()  # w, x, y, z
    ref_q = ref.as_quat()[:, [3, 0, 1, 2]]
    ref_q *= np.sign(ref_q[:, :1])
    assert np.allclose(q, ref_q, atol=1e-8)
    # 6D = first two columns
    assert np.allclose(R.aa_to_r6d(aa).numpy()[:, :3], ref.as_matrix()[:, :, 0])


def test_r6d_maps_any_vector_to_a_rotation():
    m = R.r6d_to_mat(torch.randn(100, 6))
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3).expand(100, 3, 3), atol=1e-5)
    assert torch.allclose(torch.det(m), torch.ones(100), atol=1e-5)


def test_fk_of_rest_pose_gives_rest_joints():
    rest = torch.tensor(SMPL_NEUTRAL_REST_JOINTS)
    eye = torch.eye(3, dtype=torch.float64).expand(2, 5, NUM_JOINTS, 3, 3)
    fk = forward_kinematics(eye, rest)
    assert fk.joints.shape == (2, 5, NUM_JOINTS, 3)
    assert torch.allclose(fk.joints, rest.expand(2, 5, -1, -1), atol=1e-12)
    trans = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).expand(2, 5, 3)
    assert torch.allclose(forward_kinematics(eye, rest, trans).joints, rest + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_fk_rotates_about_the_pelvis_and_keeps_bone_lengths(aa):
    rest = torch.tensor(SMPL_NEUTRAL_REST_JOINTS)
    rot = R.aa_to_mat(aa[: 10 * NUM_JOINTS].reshape(10, NUM_JOINTS, 3))
    trans = torch.randn(10, 3, dtype=torch.float64)
    fk = forward_kinematics(rot, rest, trans)
    assert torch.allclose(fk.joints[:, 0], rest[0] + trans)
    assert torch.allclose(bone_lengths(fk.joints), bone_lengths(rest).expand(10, -1), atol=1e-10)
    # A child's world position follows from its parent's world rotation.
    j = JOINT_NAMES.index("left_knee")
    p = PARENTS[j]
    expect = fk.joints[:, p] + (fk.global_rotmats[:, p] @ (rest[j] - rest[p]))
    assert torch.allclose(fk.joints[:, j], expect)


def test_parse_joints():
    assert parse_joints("lower_body") == (1, 2, 4, 5, 7, 8, 10, 11)
    assert parse_joints("left_knee, head") == (4, 15)
    with pytest.raises(ValueError, match="left_kneee"):
        parse_joints("left_kneee")
    assert parse_joints("m_avg_L_Knee,head", aliases={"m_avg_L_Knee": 4}) == (4, 15)  # an armature's bone names
    with pytest.raises(ValueError, match="m_avg_L_Knee"):
        parse_joints("m_avg_L_Knee")
