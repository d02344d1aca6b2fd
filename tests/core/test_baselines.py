"""Joint-space baselines (input, interp) and the method registry."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dreamor.body.skeleton import JOINT_GROUPS, NUM_JOINTS
from dreamor.data.clip import Clip
from dreamor.data.convert import with_joints_and_contacts
from dreamor.errors import DreamorError
from dreamor.evaluate.baselines import METHODS, MethodConfig, get_methods, run_input, run_interp
from dreamor.evaluate.occlusion import observe, occlude


def rest_pose_walk(t: int = 60) -> Clip:
    """The rest pose, upright, walking while turning (yaw changes every frame)."""
    yaw = np.linspace(0.0, 2.5, t)
    rots = Rotation.from_euler("z", yaw[:, None]) * Rotation.from_rotvec([np.pi / 2, 0, 0])
    trans = np.stack([np.linspace(0, 3, t), np.sin(np.linspace(0, 3, t)), np.full(t, 0.9)], axis=1)
    return with_joints_and_contacts(Clip(trans=trans, root_orient=rots.as_rotvec(), pose_body=np.zeros((t, 63)),
                                         fps=30.0, name="rest"))


def test_input_places_never_seen_joints_by_the_upright_rest_pose_facing_the_visible_shoulders():
    gt = rest_pose_walk()
    obs = occlude(gt, "lower_body")
    assert np.isnan(obs.joints[:, list(JOINT_GROUPS["lower_body"])]).all()
    pred = run_input(obs, MethodConfig())
    assert np.abs(pred.joints - gt.joints).max() < 1e-6  # a body in its rest pose is rebuilt exactly
    assert pred.contacts.shape == (len(gt.joints), 9)
    # with the heading from the hips instead (shoulders and collars hidden too), still exact
    vis = np.ones((len(gt.joints), NUM_JOINTS), bool)
    vis[:, [4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 18, 19, 20, 21]] = False
    pred = run_input(observe(gt, vis))
    assert np.abs(pred.joints - gt.joints).max() < 1e-6
    assert not np.isnan(pred.joints).any()


def moving_points(t: int = 40) -> Clip:
    """Joints on cubic trajectories (a method sees only joints, so FK consistency is not needed)."""
    s = np.arange(t, dtype=float)[:, None, None]
    base = np.random.default_rng(0).normal(size=(1, NUM_JOINTS, 3))
    joints = base + 0.02 * s - 1e-3 * s**2 + 2e-5 * s**3
    z = np.zeros((t, 3))
    return Clip(trans=z, root_orient=z, pose_body=np.zeros((t, 63)), fps=30.0, joints=joints, name="pts")


def test_input_holds_the_last_seen_value_and_interp_fills_gaps_with_a_cubic():
    gt = moving_points()
    vis = np.ones((40, NUM_JOINTS), bool)
    vis[10:20, 20] = False  # left wrist: a gap inside the clip
    vis[30:, 21] = False  # right wrist: hidden until the end
    obs = observe(gt, vis)
    held = run_input(obs)
    assert np.array_equal(held.joints[10:20, 20], np.repeat(gt.joints[9:10, 20], 10, axis=0))
    assert np.array_equal(held.joints[30:, 21], np.repeat(gt.joints[29:30, 21], 10, axis=0))
    assert np.array_equal(held.joints[vis], gt.joints[vis])
    filled = run_interp(obs)
    assert np.abs(filled.joints[10:20, 20] - gt.joints[10:20, 20]).max() < 1e-9  # a cubic is recovered exactly
    assert np.array_equal(filled.joints[30:, 21], held.joints[30:, 21])  # no visible frame after: as input
    assert np.array_equal(filled.joints[vis], gt.joints[vis])


def test_interp_starts_like_input_before_a_joints_first_sighting():
    gt = rest_pose_walk(40)
    vis = np.ones((40, NUM_JOINTS), bool)
    vis[:8, 20] = False
    obs = observe(gt, vis)
    a, b = run_input(obs), run_interp(obs)
    assert np.array_equal(a.joints[:8, 20], b.joints[:8, 20])
    assert np.abs(a.joints[:8, 20] - gt.joints[:8, 20]).max() < 1e-6  # rest pose hung from the elbow


def test_methods_do_not_modify_the_observation():
    obs = occlude(moving_points(), "limb_gaps", seed=0)
    before = obs.joints.copy()
    run_interp(obs)
    assert np.array_equal(obs.joints, before, equal_nan=True)


def test_registry_lists_the_learned_methods_and_refuses_them_without_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tmp_path))  # no checkpoints there
    assert {"input", "interp", "vae_only", "no_opt", "dreamor"} <= set(METHODS)
    assert [m.name for m in get_methods(["interp", "input"])] == ["interp", "input"]
    with pytest.raises(DreamorError, match="unknown method.*'?magic"):
        get_methods(["magic"])
    for name in ("vae_only", "no_opt", "dreamor"):
        with pytest.raises(DreamorError, match=f"method '{name}' is not available: .*checkpoint"):
            get_methods(["input", name])
        with pytest.raises(DreamorError, match="not available"):
            METHODS[name].run(occlude(moving_points(), "noisy"), MethodConfig())
