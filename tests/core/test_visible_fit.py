"""The refinement's last stage (visible joints put where they were observed), ``--method infill``
and the ``noisy`` mark."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from dreamor.body.kinematics import forward_kinematics
from dreamor.body.rotations import aa_to_mat
from dreamor.body.skeleton import JOINT_GROUPS
from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.evaluate.occlusion import occlude
from dreamor.refine.visible_fit import meet_observation


@pytest.fixture(scope="module")
def walk(mocap_dir):
    c = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"))
    return replace(c, trans=c.trans[:60], root_orient=c.root_orient[:60], pose_body=c.pose_body[:60],
                   joints=c.joints[:60], contacts=c.contacts[:60])


def _perturbed(walk, deg=4.0, seed=0):
    """The walk's rotations (T, 22, 3, 3) turned a few degrees per joint and its root moved ~2 cm: a 'result'."""
    rng = np.random.default_rng(seed)
    rot = aa_to_mat(torch.from_numpy(walk.local_aa)).numpy()
    turn = aa_to_mat(torch.from_numpy(rng.normal(0, np.radians(deg), rot.shape[:2] + (3,)))).numpy()
    return rot @ turn, walk.trans + rng.normal(0, 0.02, walk.trans.shape)


def test_visible_joints_meet_the_observation_and_hidden_legs_keep_their_orientation(walk):
    rot, trans = _perturbed(walk)
    vis = np.ones((walk.num_frames, 22), bool)
    vis[:, list(JOINT_GROUPS["lower_body"])] = False
    before = forward_kinematics(torch.from_numpy(rot), torch.from_numpy(walk.rest_joints), torch.from_numpy(trans))
    observed = np.where(vis[..., None], walk.joints, np.nan)  # hidden values never matter
    new_rot, new_trans, joints = meet_observation(rot, trans, walk.rest_joints, observed, vis)
    assert np.abs(joints - walk.joints)[vis].max() < 1e-6  # exact: the observation is on this skeleton
    after = forward_kinematics(torch.from_numpy(new_rot), torch.from_numpy(walk.rest_joints), torch.from_numpy(new_trans))
    np.testing.assert_allclose(after.joints.numpy(), joints, atol=1e-9)  # returned joints are the FK of the pose
    legs = list(JOINT_GROUPS["legs"])
    np.testing.assert_allclose(after.global_rotmats.numpy()[:, legs], before.global_rotmats.numpy()[:, legs], atol=1e-9)
    # the hidden legs hang from the corrected hips: their shape is the result's, not the truth's
    shape = lambda j: j[:, legs] - j[:, [1, 2, 1, 2, 1, 2]]  # noqa: E731
    np.testing.assert_allclose(shape(joints), shape(before.joints.numpy()), atol=1e-9)


def test_everything_visible_gives_the_observed_motion(walk):
    rot, trans = _perturbed(walk, deg=8.0, seed=1)
    vis = np.ones((walk.num_frames, 22), bool)
    _, _, joints = meet_observation(rot, trans, walk.rest_joints, walk.joints, vis)
    assert np.abs(joints - walk.joints).max() < 1e-6


def test_a_hidden_spine_moves_with_the_visible_arms_below_it(walk):
    rot, trans = _perturbed(walk)
    vis = np.ones((walk.num_frames, 22), bool)
    vis[:, list(JOINT_GROUPS["spine"])] = False
    before = forward_kinematics(torch.from_numpy(rot), torch.from_numpy(walk.rest_joints), torch.from_numpy(trans)).joints.numpy()
    _, _, joints = meet_observation(rot, trans, walk.rest_joints, walk.joints, vis)
    err = lambda j: np.linalg.norm(j - walk.joints, axis=-1)  # noqa: E731
    assert err(joints)[vis].mean() < 0.3 * err(before)[vis].mean()
    assert err(joints)[~vis].mean() < err(before)[~vis].mean()


def test_refine_meets_visible_joints_unless_the_capture_is_marked_noisy(tiny_checkpoints, walk, monkeypatch):
    from dreamor.refine.api import load_models, refine
    from dreamor.refine.config import refine_preset

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    models = load_models()
    obs = occlude(walk, "lower_body")
    cfg = refine_preset("fast", iters=6, window=20, window_overlap=6)
    vis_err = lambda r: np.linalg.norm(r.joints - walk.joints, axis=-1)[obs.visible].mean()  # noqa: E731
    assert vis_err(refine(obs, config=cfg, models=models)) < 1e-5
    assert vis_err(refine(obs, config=replace(cfg, noisy=True), models=models)) > 1e-3  # the rollout's own


def test_method_infill_is_the_first_guess(walk):
    """``--method infill`` poses the joint-completion network's guess: no optimisation in between."""
    from dreamor.models.infill import complete
    from dreamor.refine.api import load_models, models_dir, refine
    from dreamor.refine.config import refine_preset

    if not (models_dir() / "infill-small.pt").exists():
        pytest.skip("shipped checkpoints not present")
    models = load_models()
    obs = occlude(walk, "lower_body")
    guess = complete(models.infill, np.nan_to_num(obs.joints), obs.visible, walk.rest_joints, mirror_average=True)
    out = refine(obs, config=refine_preset("default", method="infill"), models=models)
    hidden = ~obs.visible
    assert np.linalg.norm(out.joints - guess, axis=-1)[hidden].mean() < 0.015  # posed on the skeleton's bones
    assert np.abs(out.joints - walk.joints)[obs.visible].max() < 1e-5
    assert out.timings["optimise_s"] < 0.5


def test_a_limb_hidden_for_a_gap_does_not_pop_where_it_goes_out_of_sight(walk):
    # a result off the truth by the same few degrees per joint in every frame: smooth, like a rollout's drift
    rng = np.random.default_rng(3)
    rot = aa_to_mat(torch.from_numpy(walk.local_aa)).numpy()
    rot = rot @ aa_to_mat(torch.from_numpy(rng.normal(0, np.radians(5.0), (1, 22, 3)))).numpy()
    trans = walk.trans + [0.02, -0.01, 0.01]
    vis = np.ones((walk.num_frames, 22), bool)
    vis[20:40, list(JOINT_GROUPS["left_leg"])] = False
    steps = {}
    for blend in (0, 6):
        _, _, joints = meet_observation(rot, trans, walk.rest_joints, walk.joints, vis, blend=blend)
        assert np.abs(joints - walk.joints)[vis].max() < 1e-6  # seen joints met either way
        # the ankle's largest frame-to-frame step beyond the true motion's own, around the gap's two edges
        step = np.linalg.norm(np.diff(joints[:, 7], axis=0) - np.diff(walk.joints[:, 7], axis=0), axis=-1)
        steps[blend] = max(step[19], step[39])
    assert steps[6] < 0.5 * steps[0]


def test_pins_are_met_even_where_the_capture_is_hidden_or_noisy(tiny_checkpoints, walk, monkeypatch):
    """A pinned joint is returned where the animator put it (<= 0.5 cm), whatever else is marked; the frames
    around a pin follow it without a pop."""
    from dreamor.refine.api import load_models, refine
    from dreamor.refine.config import refine_preset

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    models = load_models()
    obs = occlude(walk, "lower_body")
    pinned = np.zeros_like(obs.visible)
    pinned[30, list(JOINT_GROUPS["lower_body"])] = True  # the animator keyed the legs at frame 30
    joints = np.where(pinned[..., None], walk.joints, obs.joints)
    cfg = refine_preset("fast", iters=6, window=20, window_overlap=6, noisy=True)
    out = refine(replace(obs, joints=joints, pinned=pinned), config=cfg, models=models)
    assert np.linalg.norm(out.joints - walk.joints, axis=-1)[pinned].max() < 0.005
    free = refine(obs, config=cfg, models=models)  # the same without the pin
    ankle_step = np.linalg.norm(np.diff(out.joints[:, 7], axis=0), axis=-1)
    free_step = np.linalg.norm(np.diff(free.joints[:, 7], axis=0), axis=-1)
    correction = np.linalg.norm(out.joints[30, 7] - free.joints[30, 7])
    assert correction > 0.01  # the pin moved the ankle ...
    assert ankle_step[25:35].max() < free_step[25:35].max() + 0.5 * correction  # ... without jumping to it


def test_joints_marked_noisy_are_smoothed_and_trusted_ones_met(tiny_checkpoints, walk, monkeypatch):
    from dreamor.refine.api import load_models, refine
    from dreamor.refine.config import refine_preset

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    models = load_models()
    conf = np.ones((walk.num_frames, 22))
    arm = list(JOINT_GROUPS["left_arm"])
    conf[:, arm] = 0.5
    out = refine(replace(walk, confidence=conf), config=refine_preset("fast", iters=6, window=20, window_overlap=6),
                 models=models)
    err = np.linalg.norm(out.joints - walk.joints, axis=-1)
    trusted = np.ones(22, bool)
    trusted[arm] = False
    assert err[:, trusted].max() < 1e-5 and err[:, arm].mean() > 1e-3


def test_one_pinned_wrist_does_not_drag_the_body(walk):
    """With only a pin fitted (a noisy capture), the other seen joints hold the unseen parents back."""
    rot = aa_to_mat(torch.from_numpy(walk.local_aa)).numpy()
    fit = np.zeros((walk.num_frames, 22), bool)
    fit[30, 20] = True
    observed = walk.joints.copy()
    observed[30, 20] += [0.0, 0.1, 0.05]  # the animator moved the left wrist
    _, _, joints = meet_observation(rot, walk.trans, walk.rest_joints, observed, fit, blend=6, anchors=~fit)
    assert np.linalg.norm(joints[30, 20] - observed[30, 20]) < 0.005
    body = list(range(13))  # pelvis, legs, spine and neck (the collar and shoulder may follow the arm)
    assert np.abs(joints[:, body] - walk.joints[:, body]).max() < 0.005


@pytest.mark.parametrize("keep_visible", [True, False])
def test_a_pin_on_a_hidden_leg_bends_the_leg_and_leaves_the_seen_body_alone(walk, keep_visible):
    """Found trying the add-on: legs hidden, the left knee and ankle pinned at one frame where the refined legs were
    elsewhere; the seen pelvis twisted up to 38 degrees round the spine (the hidden hip, carrying the pin's correction,
    set its twist) and the pin missed by 0.6 cm once the visible bones were put back."""
    rot, trans = aa_to_mat(torch.from_numpy(walk.local_aa)).numpy(), walk.trans.copy()
    legs = list(JOINT_GROUPS["lower_body"])
    result = rot.copy()
    result[:, [1, 2, 4, 5]] = _perturbed(walk, deg=15.0)[0][:, [1, 2, 4, 5]]  # the refined legs: elsewhere
    vis = np.ones((walk.num_frames, 22), bool)
    vis[:, legs] = False
    fit = vis.copy()
    fit[30, [4, 7]] = True  # the pins: the clean clip's knee and ankle
    observed = np.where(fit[..., None], walk.joints, np.nan)
    keep = (vis & ~fit) if keep_visible else None
    new_rot, _, joints = meet_observation(result, trans, walk.rest_joints, observed, fit, blend=6, keep=keep)
    assert np.linalg.norm(joints[30, [4, 7]] - walk.joints[30, [4, 7]], axis=-1).max() < 0.005
    seen = np.flatnonzero(vis[0])
    turned = np.einsum("tjab,tjab->tj", new_rot[:, seen], rot[:, seen])  # trace of R_new^T R_old
    degrees = np.degrees(np.arccos(np.clip((turned - 1) / 2, -1, 1)))
    assert degrees.max() < 0.5
