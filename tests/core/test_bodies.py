"""Bodies: size normalisation, random bodies, a motion put on another body, body-augmented windows,
the refinement's scale equivariance and the visible-joint guard."""
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from dreamor.body.proportions import (
    REFERENCE_LEG_M,
    BodyAugment,
    body_scale,
    leg_length,
    mirror_states,
    named_body,
    random_body,
    repose_clip,
    repose_states,
    scale_clip,
)
from dreamor.body.skeleton import SMPL_NEUTRAL_REST_JOINTS, bone_lengths
from dreamor.body.state import STATE_SLICES, angular_velocity, clip_to_state, contact_labels, state_rotmats
from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.data.dataset import WindowSampler, build_motion_data, is_unseen_subject


@pytest.fixture(scope="module")
def walk(mocap_dir):
    c = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"))
    return replace(c, trans=c.trans[:60], root_orient=c.root_orient[:60], pose_body=c.pose_body[:60],
                   joints=c.joints[:60], contacts=c.contacts[:60])


def _mirror_error(rest):
    from dreamor.body.proportions import MIRROR_PAIRS
    from dreamor.body.skeleton import rest_offsets

    off = rest_offsets(rest.copy())
    return max(np.abs(off[left] - off[right] * np.array([-1, 1, 1])).max() for left, right in MIRROR_PAIRS)


def test_random_bodies_are_human_symmetric_and_reference_sized(walk):
    rng = np.random.default_rng(0)
    cfg = BodyAugment(p_native=0.0)
    bodies = [random_body(walk.rest_joints, rng, cfg) for _ in range(50)]
    legs = np.array([leg_length(b) for b in bodies])
    np.testing.assert_allclose(legs, REFERENCE_LEG_M, atol=1e-9)
    assert max(_mirror_error(b) for b in bodies) < 1e-9
    hips = np.array([b[1, 1] - b[0, 1] for b in bodies])  # hip height relative to the pelvis joint
    assert hips.min() < -0.08 and hips.max() > 0.0  # both rig conventions (SMPL-like and CMU-Daz-like) occur
    bones = np.stack([bone_lengths(b) for b in bodies])
    assert (bones.std(0) / bones.mean(0)).min() > 0.02  # every bone's length varies
    sized = random_body(walk.rest_joints, rng, BodyAugment(p_native=0.0, scale=(1.2, 1.2)))
    assert leg_length(sized) == pytest.approx(1.2 * REFERENCE_LEG_M)


def test_named_bodies(walk):
    np.testing.assert_array_equal(named_body("native", walk.rest_joints), walk.rest_joints)
    np.testing.assert_array_equal(named_body("smpl", walk.rest_joints), SMPL_NEUTRAL_REST_JOINTS)
    np.testing.assert_allclose(named_body("x1.2", walk.rest_joints), walk.rest_joints * 1.2)
    for bad in ("giant", "x0", "x-1", "xbig"):
        with pytest.raises(ValueError, match="unknown body"):
            named_body(bad, walk.rest_joints)


def test_repose_on_own_body_is_identity_and_scaled_body_is_scaled_motion(walk):
    same = repose_clip(walk, walk.rest_joints)
    np.testing.assert_allclose(same.joints, walk.joints, atol=1e-6)
    np.testing.assert_allclose(same.trans, walk.trans, atol=1e-6)
    big = repose_clip(walk, walk.rest_joints * 1.2)
    np.testing.assert_allclose(big.joints, walk.joints * 1.2, atol=1e-6)
    np.testing.assert_allclose(scale_clip(walk, 1.2).joints, walk.joints * 1.2)
    assert body_scale(walk.rest_joints * 1.2) == pytest.approx(1.2 * body_scale(walk.rest_joints))


def test_repose_keeps_bones_floor_and_contacts_consistent(walk):
    smpl = repose_clip(walk, SMPL_NEUTRAL_REST_JOINTS)
    np.testing.assert_allclose(bone_lengths(smpl.joints), bone_lengths(SMPL_NEUTRAL_REST_JOINTS)[None].repeat(60, 0),
                               atol=1e-6)
    s = leg_length(SMPL_NEUTRAL_REST_JOINTS) / leg_length(walk.rest_joints)
    low = lambda j: j[:, [7, 8, 10, 11], 2].min()  # noqa: E731
    assert low(smpl.joints) == pytest.approx(s * low(walk.joints), abs=1e-6)  # the feet stay on the floor
    np.testing.assert_array_equal(smpl.contacts, contact_labels(smpl.joints, smpl.fps))
    assert smpl.contacts[:, 3:7].mean() > 0.2  # a walk: feet are in contact much of the time
    _, fk = clip_to_state(smpl)  # the clip's own FK agrees with the joints it carries
    np.testing.assert_allclose(fk.numpy(), smpl.joints, atol=1e-5)
    # the root path scales with leg length: the same walk covers s times the ground
    dist = lambda j: np.linalg.norm(j[-1, 0, :2] - j[0, 0, :2])  # noqa: E731
    assert dist(smpl.joints) == pytest.approx(s * dist(walk.joints), rel=1e-3)


def test_repose_states_matches_the_state_of_the_reposed_clip(walk):
    x, _ = clip_to_state(walk)
    rest = torch.from_numpy(walk.rest_joints)
    new = torch.from_numpy(SMPL_NEUTRAL_REST_JOINTS)
    out, contacts = repose_states(x[None].double(), rest[None], new[None])
    ref, joints = clip_to_state(repose_clip(walk, SMPL_NEUTRAL_REST_JOINTS))
    np.testing.assert_allclose(out[0, 1:].numpy(), ref[1:].numpy(), atol=2e-4)  # velocities in m/s
    np.testing.assert_array_equal(contacts[0].numpy(), contact_labels(joints.numpy()))


def test_mirrored_motion_is_the_mirror_image_and_a_consistent_state(walk):
    from dreamor.body.state import motion_to_state, state_rotmats

    x, joints = clip_to_state(walk)
    contacts = torch.from_numpy(contact_labels(joints.numpy()))
    rest = torch.from_numpy(walk.rest_joints).float()
    mx, mc, mrest = mirror_states(x, contacts, rest)
    # the image's rotations, FK'd on the image's rest joints, give back its whole state (velocities too)
    ref, mjoints = motion_to_state(state_rotmats(mx.double()), mx[:, STATE_SLICES["trans"]].double(), mrest.double())
    np.testing.assert_allclose(mx.numpy(), ref.float().numpy(), atol=2e-4)
    # the left ankle of the image is the right ankle of the take, reflected in x (the world's left-right axis)
    np.testing.assert_allclose(mjoints[:, 7].numpy(), joints[:, 8].numpy() * [-1, 1, 1], atol=1e-5)
    np.testing.assert_array_equal(mc.numpy(), contact_labels(mjoints.numpy()))
    back = mirror_states(mx, mc, mrest)
    for a, b in zip(back, (x, contacts, rest)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_mirroring_sampler_keeps_windows_consistent(mocap_dir, tmp_path):
    data = build_motion_data([(mocap_dir, 1.0)], tmp_path / "cache", workers=1, quiet=True)
    states, contacts, rest = WindowSampler(data, 12, seed=0, augment=BodyAugment(p_mirror=1.0)).sample(8)
    joints = states[..., STATE_SLICES["joints"]].reshape(8, 12, 22, 3)
    np.testing.assert_allclose(bone_lengths(joints), np.repeat(bone_lengths(rest)[:, None], 12, 1), atol=1e-4)
    assert (contacts[:, 1:] != contact_labels(joints)[:, 1:]).mean() < 1e-3


def test_augmented_windows_are_consistent(mocap_dir, tmp_path):
    data = build_motion_data([(mocap_dir, 1.0)], tmp_path / "cache", workers=1, quiet=True)
    sampler = WindowSampler(data, 12, seed=0, augment=BodyAugment())
    states, contacts, rest = sampler.sample(16)
    assert states.shape == (16, 12, 273) and contacts.shape == (16, 12, 9) and rest.shape == (16, 22, 3)
    joints = states[..., STATE_SLICES["joints"]].reshape(16, 12, 22, 3)
    np.testing.assert_allclose(bone_lengths(joints), np.repeat(bone_lengths(rest)[:, None], 12, 1), atol=1e-4)
    np.testing.assert_allclose(leg_length(rest), REFERENCE_LEG_M, atol=1e-5)
    # frame 0's speed comes from the frame before the window (kept out of it), so compare from frame 1 on;
    # the float32 states may flip a label sitting exactly on a threshold
    assert (contacts[:, 1:] != contact_labels(joints)[:, 1:]).mean() < 1e-3
    vel = states[..., STATE_SLICES["joints_vel"]]
    flat = states[..., STATE_SLICES["joints"]]
    np.testing.assert_allclose(vel[:, 1:], (flat[:, 1:] - flat[:, :-1]) * 30, atol=2e-3)
    assert not np.allclose(rest[0], rest[1])  # every window its own body


def test_tempo_augmented_windows_are_the_take_played_faster_and_consistent(mocap_dir, tmp_path):
    data = build_motion_data([(mocap_dir, 1.0)], tmp_path / "cache", workers=1, quiet=True)
    aug = BodyAugment(p_native=1.0, smpl_mix=(0.0, 0.0), proportion=0.0, trunk_jitter_m=0.0, hip_height_m=(0.0, 0.0),
                      p_tempo=1.0, tempo=(2.0, 2.0))
    sampler = WindowSampler(data, 12, seed=0, augment=aug)
    pick = np.array([0, len(sampler) - 1])  # the first window of a take and the last one of another
    states, _ = sampler._retimed_rows(pick)
    trans = STATE_SLICES["trans"]
    for b in range(2):
        c = sampler.clips[pick[b]]
        first, last = data.clip_starts[c], data.clip_starts[c + 1] - 1
        # tempo 2 reads every other frame; the last window starts earlier so it stays inside its take
        start = min(sampler.starts[pick[b]], last - 2 * 12)
        assert start >= first
        np.testing.assert_allclose(states[b, :, trans], data.states[start + 2 * np.arange(13), trans], atol=1e-6)
    fast, contacts, rest = sampler.take(pick)
    slow, _, _ = WindowSampler(data, 12, seed=0, augment=replace(aug, p_tempo=0.0)).take(pick[:1])
    speed = lambda x: np.linalg.norm(x[..., STATE_SLICES["trans_vel"]], axis=-1).mean()
    assert speed(fast[:1]) == pytest.approx(2 * speed(slow), rel=0.05)
    # what training sees is still one consistent motion at the model rate
    joints = fast[..., STATE_SLICES["joints"]].reshape(2, 12, 22, 3)
    np.testing.assert_allclose(bone_lengths(joints), np.repeat(bone_lengths(rest)[:, None], 12, 1), atol=1e-4)
    flat = fast[..., STATE_SLICES["joints"]]
    np.testing.assert_allclose(fast[:, 1:, STATE_SLICES["joints_vel"]], (flat[:, 1:] - flat[:, :-1]) * 30, atol=2e-3)
    rot = state_rotmats(torch.from_numpy(fast).double())[..., 0, :, :]
    np.testing.assert_allclose(fast[:, 1:, STATE_SLICES["root_orient_vel"]],
                               angular_velocity(rot, 30.0)[:, 1:].numpy(), atol=1e-3)
    assert (contacts[:, 1:] != contact_labels(joints)[:, 1:]).mean() < 1e-3


def test_unseen_subject_split(mocap_dir, tmp_path):
    assert is_unseen_subject("cmu_14_07") and is_unseen_subject("cmu_05_02")
    assert not is_unseen_subject("cmu_13_10") and not is_unseen_subject("dataset-2_walk_normal_001")
    data = build_motion_data([(mocap_dir, 1.0)], tmp_path / "cache", workers=1, quiet=True)
    unseen = set(data.names[data.is_unseen])
    assert unseen == {"cmu_05_02"}
    assert not (data.is_train & (data.is_unseen | data.is_val)).any()
    with pytest.raises(Exception, match="no clip is long enough"):
        WindowSampler(data, 10, split="val")  # the fixtures have no default-split validation take


def test_manifest_capture_rate_overrides_a_wrong_header(mocap_dir, tmp_path):
    src = mocap_dir / "cmu_13_10.bvh.gz"
    header = read_motion(src, fps=None)
    shutil.copy(src, tmp_path / src.name)
    (tmp_path / "manifest.csv").write_text(f"file,fps,capture_fps\n{src.name},120.0,60\n")
    fixed = read_motion(tmp_path / src.name, fps=None)
    assert header.fps == 120 and fixed.fps == 60
    assert read_motion(tmp_path / src.name).num_frames == pytest.approx(2 * read_motion(src).num_frames, abs=2)


def test_refine_is_scale_equivariant(tiny_checkpoints, walk):
    """A refine of the clip on a body 1.2 x as large is the refine of the clip, scaled (the networks see
    bodies at the reference size). Without the size normalisation the tiny models give other legs."""
    from dreamor.evaluate.occlusion import occlude
    from dreamor.refine.api import load_models, refine
    from dreamor.refine.config import refine_preset

    models = load_models(tiny_checkpoints / "vae-small.pt", tiny_checkpoints / "diffusion-small.pt")
    cfg = refine_preset("fast", iters=8, window=20, window_overlap=6)
    obs = occlude(walk, "lower_body", seed=0)
    small = refine(obs, obs.visible, cfg, models=models)
    big_obs = replace(scale_clip(obs, 1.2), joints=np.where(obs.visible[..., None], obs.joints * 1.2, np.nan))
    big = refine(big_obs, obs.visible, cfg, models=models)
    np.testing.assert_allclose(big.joints, small.joints * 1.2, atol=2e-3)
    np.testing.assert_allclose(big.trans, small.trans * 1.2, atol=2e-3)
    np.testing.assert_allclose(big.pose_body, small.pose_body, atol=2e-2)


def test_visible_guard_warns_only_when_visible_joints_moved():
    from dreamor.refine.api import Refined, visible_guard

    t = 10
    obs = np.zeros((t, 22, 3))
    vis = np.ones((t, 22), bool)
    vis[:, 4] = False
    joints = obs.copy()
    joints[:, 4] += 0.5  # a hidden joint may move anywhere
    r = Refined(np.zeros((t, 3)), np.zeros((t, 3)), np.zeros((t, 63)), joints, np.zeros((t, 9)), 30.0)
    ok = visible_guard(replace(r, warnings=[]), obs, vis, warn_cm=2.0)
    assert ok.warnings == [] and ok.quality["visible_cm"] == 0.0
    joints = joints.copy()
    joints[vis] += np.array([0.05, 0.0, 0.0])  # every visible joint 5 cm off
    bad = visible_guard(replace(r, joints=joints, warnings=[]), obs, vis, warn_cm=2.0)
    assert len(bad.warnings) == 1 and "visible joints" in bad.warnings[0]
    assert bad.quality["visible_cm"] == pytest.approx(5.0)


def test_joint_completion_is_scale_equivariant(walk):
    from dreamor.models.infill import InfillConfig, JointInfill, complete

    torch.manual_seed(0)
    model = JointInfill(InfillConfig(channels=16, dilations=(1, 2))).eval()
    vis = np.ones((60, 22), bool)
    vis[:, [1, 2, 4, 5, 7, 8, 10, 11]] = False
    small = complete(model, walk.joints, vis, walk.rest_joints)
    big = complete(model, walk.joints * 1.2, vis, walk.rest_joints * 1.2)
    np.testing.assert_allclose(big, small * 1.2, atol=1e-4)


def test_mirror_averaged_completion_is_mirror_equivariant(walk):
    """Averaging the guesses for a clip and for its mirror image: the mirror image of a clip gets the mirror
    image of its guess (a network alone does not promise that)."""
    from dreamor.body.proportions import MIRROR_JOINTS
    from dreamor.models.infill import InfillConfig, JointInfill, complete

    torch.manual_seed(0)
    model = JointInfill(InfillConfig(channels=16, dilations=(1, 2))).eval()
    vis = np.ones((60, 22), bool)
    vis[:, [1, 4, 7, 10]] = False  # the left leg: its image hides the right one
    m, flip = list(MIRROR_JOINTS), np.array([-1.0, 1.0, 1.0])
    guess = complete(model, walk.joints, vis, walk.rest_joints, mirror_average=True)
    image = complete(model, walk.joints[:, m] * flip, vis[:, m], walk.rest_joints[m] * flip, mirror_average=True)
    np.testing.assert_allclose(image, guess[:, m] * flip, atol=1e-5)
    plain = complete(model, walk.joints[:, m] * flip, vis[:, m], walk.rest_joints[m] * flip)
    assert np.abs(plain - complete(model, walk.joints, vis, walk.rest_joints)[:, m] * flip).max() > 1e-3


def test_visible_guard_allows_for_jitter_in_the_capture():
    """Cleaning 1-2 cm of capture jitter off visible joints is the job, not a failure: no warning then."""
    from dreamor.refine.api import Refined, visible_guard

    t = 60
    rng = np.random.default_rng(0)
    clean = np.zeros((t, 22, 3))
    clean[..., 0] = np.linspace(0, 1, t)[:, None]  # a steady walk along x
    noisy = clean + rng.normal(0, 0.015, clean.shape)  # ~2.6 cm of jitter
    vis = np.ones((t, 22), bool)
    r = Refined(np.zeros((t, 3)), np.zeros((t, 3)), np.zeros((t, 63)), clean, np.zeros((t, 9)), 30.0)
    out = visible_guard(replace(r, warnings=[]), noisy, vis, warn_cm=2.0)
    assert out.quality["visible_cm"] > 2.0 and out.quality["observed_jitter_cm"] > 1.0 and out.warnings == []
    far = visible_guard(replace(r, joints=clean + 0.2, warnings=[]), noisy, vis, warn_cm=2.0)
    assert len(far.warnings) == 1  # 35 cm off is not jitter
