"""Locked feet (``refine.foot_lock``): contact runs held in place, bone lengths exact, no pops."""
import numpy as np
import pytest
import torch

from dreamor.body.kinematics import forward_kinematics
from dreamor.body.rotations import aa_to_mat
from dreamor.body.skeleton import bone_lengths
from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.refine.foot_lock import held_offsets, lock_feet


def test_held_offsets_hold_each_run_and_fade_out():
    points = np.zeros((20, 3))
    points[:, 0] = np.arange(20) * 0.01  # sliding 1 cm per frame
    contact = np.zeros(20, bool)
    contact[5:10] = True
    off = held_offsets(points, contact, blend=3)
    held = points + off
    assert np.allclose(held[5:10], held[5:10].mean(0))  # one anchor over the run
    assert np.allclose(off[:2], 0) and np.allclose(off[13:], 0)  # untouched beyond the fades
    steps = np.linalg.norm(np.diff(held, axis=0), axis=-1)
    assert steps.max() < 0.02  # the fades spread the catch-up: no pop


def test_sliding_feet_are_held_with_the_bones_intact(mocap_dir):
    c = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"))
    rot = aa_to_mat(torch.from_numpy(c.local_aa)).numpy()
    rng = np.random.default_rng(0)
    trans = c.trans + np.cumsum(rng.normal(0, 0.003, c.trans.shape), 0) * [1, 1, 0]  # the pelvis drifts: feet slide
    before = forward_kinematics(torch.from_numpy(rot), torch.from_numpy(c.rest_joints), torch.from_numpy(trans)).joints.numpy()

    def skate(j):
        s = [np.linalg.norm(np.diff(j[:, joint, :2], axis=0), axis=-1)[(c.contacts[1:, col] > 0.5) & (c.contacts[:-1, col] > 0.5)]
             for joint, col in ((7, 3), (8, 4), (10, 5), (11, 6))]
        return np.concatenate(s)

    new_rot, joints = lock_feet(rot, trans, c.rest_joints, c.contacts, c.fps)
    assert skate(before).mean() > 0.003 and skate(joints).mean() < 0.001 and np.percentile(skate(joints), 95) < 0.003
    np.testing.assert_allclose(bone_lengths(joints), np.broadcast_to(bone_lengths(c.rest_joints), (c.num_frames, 21)), atol=1e-9)
    np.testing.assert_allclose(joints[:, :4], before[:, :4], atol=1e-12)  # pelvis, hips, spine untouched
    assert np.abs(np.diff(joints, axis=0)).max() <= np.abs(np.diff(before, axis=0)).max() + 0.01


def test_two_bone_reaches_from_a_straight_limb_and_leaves_fixed_legs_alone(mocap_dir):
    from dreamor.refine.foot_lock import two_bone

    hip, knee = np.zeros((1, 3)), np.array([[0.0, -0.4, 0.0]])  # a straight leg: no bending plane
    target = np.array([[0.0, -0.6, 0.0]])
    new_knee, new_ankle = two_bone(hip, knee, target, 0.4, 0.4, bend_dir=np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(new_ankle, target, atol=1e-9)
    assert np.linalg.norm(new_knee - hip) == pytest.approx(0.4) and np.linalg.norm(new_ankle - new_knee) == pytest.approx(0.4)
    assert new_knee[0, 2] > 0.1  # bent forward

    c = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"))
    rot = aa_to_mat(torch.from_numpy(c.local_aa)).numpy()
    fixed = np.zeros((c.num_frames, 22), bool)
    fixed[:, [1, 4, 7, 10]] = True  # the left leg is observed (pinned or trusted): the lock must not move it
    new_rot, _ = lock_feet(rot, c.trans, c.rest_joints, c.contacts, c.fps, fixed=fixed)
    np.testing.assert_array_equal(new_rot[:, [1, 4, 7]], rot[:, [1, 4, 7]])
    assert not np.allclose(new_rot[:, [2, 5, 8]], rot[:, [2, 5, 8]])  # the other leg is still locked
