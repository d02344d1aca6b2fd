"""Occlusion protocols: what is hidden, that hidden values never reach a method, reproducibility."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dreamor.body.skeleton import JOINT_GROUPS
from dreamor.data.clip import Clip
from dreamor.data.convert import with_joints_and_contacts
from dreamor.errors import DreamorError
from dreamor.evaluate.occlusion import LIMB_CHAINS, OcclusionConfig, occlude, visibility_mask


def walking_clip(t: int = 90, name: str = "walk", seed: int = 0) -> Clip:
    """An upright body that walks and waves its joints a little (FK-consistent joints)."""
    rng = np.random.default_rng(seed)
    pose = 0.3 * np.sin(np.linspace(0, 6, t)[:, None] + rng.uniform(0, 6, 63))
    root = Rotation.from_rotvec([np.pi / 2, 0, 0]).as_rotvec()
    trans = np.stack([np.linspace(0, 2, t), np.zeros(t), np.full(t, 0.95)], axis=1)
    return with_joints_and_contacts(Clip(trans=trans, root_orient=np.tile(root, (t, 1)), pose_body=pose, fps=30.0, name=name))


def runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D mask."""
    padded = np.concatenate([[0], mask.astype(int), [0]])
    d = np.diff(padded)
    return list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))


def test_lower_body_hides_rohm_joints_for_the_whole_clip_and_nothing_leaks():
    gt = walking_clip()
    obs = occlude(gt, "lower_body", seed=3)
    hidden = sorted(JOINT_GROUPS["lower_body"])
    assert hidden == [1, 2, 4, 5, 7, 8, 10, 11]
    assert (~obs.visible[:, hidden]).all() and obs.visible[:, [j for j in range(22) if j not in hidden]].all()
    assert np.isnan(obs.joints[:, hidden]).all()
    assert np.array_equal(obs.joints[obs.visible], gt.joints[obs.visible])
    # rotations would give the hidden joints away through FK: they are not observed
    assert not obs.root_orient.any() and not obs.pose_body.any() and obs.contacts is None
    assert np.allclose(obs.trans + obs.rest_joints[0], gt.joints[:, 0])
    assert gt.joints is not obs.joints and not np.isnan(gt.joints).any()  # the clean clip is untouched


def test_limb_gaps_are_limb_suffixes_of_the_right_length_and_reproducible():
    cfg = OcclusionConfig()
    never = [0, 3, 6, 9, 12, 15]  # pelvis, spine, neck, head: not limbs
    for seed in range(40):
        vis = visibility_mask("limb_gaps", 60, 30.0, np.random.default_rng(seed), cfg)  # 2 s: one gap
        assert vis[:, never].all()
        hidden_frames = np.flatnonzero((~vis).any(axis=1))
        assert 9 <= len(hidden_frames) <= 60 and runs((~vis).any(axis=1)) == [len(hidden_frames)]
        for chain in LIMB_CHAINS:  # a hidden joint hides the rest of its chain (elbow -> wrist)
            h = ~vis[:, list(chain)]
            assert (np.diff(h.astype(int), axis=1) >= 0).all()
    gt = walking_clip(300)
    a, b = occlude(gt, "limb_gaps", seed=1), occlude(gt, "limb_gaps", seed=1)
    assert np.array_equal(a.visible, b.visible) and np.array_equal(a.joints, b.joints, equal_nan=True)
    assert not np.array_equal(a.visible, occlude(gt, "limb_gaps", seed=2).visible)
    renamed = Clip(**{**gt.__dict__, "name": "other"})
    assert not np.array_equal(a.visible, occlude(renamed, "limb_gaps", seed=1).visible)
    assert 0 < (~a.visible).mean() < 0.5


def test_noisy_adds_4cm_gaussian_noise_and_hides_nothing():
    gt = walking_clip(300)
    obs = occlude(gt, "noisy", seed=0)
    assert obs.visible.all()
    noise = obs.joints - gt.joints
    assert noise.std() == pytest.approx(0.04, rel=0.03)
    assert abs(noise.mean()) < 0.002
    # the mean 3-D error of N(0, s^2 I) is s * 2 sqrt(2 / pi) = 6.38 cm for s = 4 cm
    assert np.linalg.norm(noise, axis=-1).mean() * 100 == pytest.approx(6.38, rel=0.03)
    small = occlude(gt, "noisy", seed=0, config=OcclusionConfig(noise_sigma_m=0.01))
    assert (small.joints - gt.joints).std() == pytest.approx(0.01, rel=0.03)
    assert np.array_equal(obs.joints, occlude(gt, "noisy", seed=0).joints)


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(DreamorError, match="unknown protocol 'upper'.*lower_body, limb_gaps, noisy"):
        occlude(walking_clip(), "upper")
