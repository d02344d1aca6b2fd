"""Locked feet (``refine.foot_lock``): contact runs held in place, bone lengths exact, no pops."""
import numpy as np
import torch

from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.refine.foot_lock import held_offsets, lock_feet
from dreamor.rotations import aa_to_mat
from dreamor.skeleton import bone_lengths, forward_kinematics


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
