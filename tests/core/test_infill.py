"""The joint-completion network: body-frame features, completion, training CLI, use in refine."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from dreamor.body.fill import yaw_matrices
from dreamor.body.skeleton import JOINT_GROUPS
from dreamor.cli import main
from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.models.infill import InfillConfig, JointInfill, complete, features, load_infill, save_infill, to_body, to_world


@pytest.fixture(scope="module")
def walk(mocap_dir):
    clip = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"))
    vis = np.ones((clip.num_frames, 22), bool)
    vis[:, list(JOINT_GROUPS["lower_body"])] = False
    return clip, vis


def test_features_do_not_depend_on_where_or_which_way_the_clip_walks(walk):
    clip, vis = walk
    f1, o1, y1 = features(clip.joints, vis, clip.rest_joints)
    turn = yaw_matrices(np.array(1.1))
    moved = clip.joints @ turn.T + np.array([3.0, -2.0, 0.0])
    f2, o2, y2 = features(moved, vis, clip.rest_joints)
    np.testing.assert_allclose(f1, f2, atol=1e-4)
    np.testing.assert_allclose(o2, o1 @ turn.T + np.array([3.0, -2.0, 0.0]), atol=1e-9)
    # hidden joints carry no information: garbage there changes nothing
    garbage = np.where(vis[..., None], clip.joints, 1e3)
    np.testing.assert_array_equal(features(garbage, vis, clip.rest_joints)[0], f1)


def test_body_frame_round_trip(walk):
    clip, vis = walk
    _, origin, yaw = features(clip.joints, vis, clip.rest_joints)
    np.testing.assert_allclose(to_world(to_body(clip.joints, origin, yaw), origin, yaw), clip.joints, atol=1e-9)


def test_complete_keeps_visible_joints_and_fills_hidden_ones(walk, tmp_path):
    clip, vis = walk
    torch.manual_seed(0)
    model = JointInfill(InfillConfig(channels=16, dilations=(1, 2)))
    path = save_infill(tmp_path / "infill.pt", model, step=3)
    loaded = load_infill(path)
    assert loaded.step == 3
    garbage = np.where(vis[..., None], clip.joints, np.nan)
    out = complete(loaded, garbage, vis, clip.rest_joints)
    assert out.shape == clip.joints.shape and np.isfinite(out).all()
    np.testing.assert_array_equal(out[vis], clip.joints[vis])
    np.testing.assert_allclose(out, complete(model, garbage, vis, clip.rest_joints))


def test_train_cli_tiny_then_resume(mocap_dir, tmp_path, capsys):
    from tests.core.test_vae import copy_takes  # one take renamed into a held-out style: a validation split

    out = tmp_path / "infill.pt"
    args = ["train", "infill", "--preset", "tiny", "--data", str(copy_takes(mocap_dir, tmp_path / "takes")), "--out", str(out),
            "--cache", str(tmp_path / "cache"), "--workers", "1", "--quiet"]
    assert main(args) == 0
    assert "hidden joints" in capsys.readouterr().out
    model = load_infill(out)
    assert model.step == 4 and model.metrics["val_hidden_cm"] > 0
    assert main(args) == 2  # exists: refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume", "--steps", "6"]) == 0
    assert load_infill(out).step == 6


def test_refine_starts_hidden_joints_from_the_network(tiny_checkpoints, tmp_path, monkeypatch, walk):
    from dreamor.refine import api
    from dreamor.refine.config import refine_preset

    clip, vis = walk
    models_dir = tmp_path / "models"
    shutil.copytree(tiny_checkpoints, models_dir)
    torch.manual_seed(0)
    save_infill(models_dir / "infill-small.pt", JointInfill(InfillConfig(channels=16, dilations=(1, 2))))
    monkeypatch.setenv(api.MODELS_DIR_ENV, str(models_dir))
    models = api.load_models()
    assert models.infill is not None and models.ids["infill"] == "infill-small.pt"

    calls = []
    real = api.optimize_windows

    def spy(vae, diffusion, batch, cfg, *a, **k):
        calls.append(batch)
        return real(vae, diffusion, batch, cfg, *a, **k)

    monkeypatch.setattr(api, "optimize_windows", spy)
    cfg = refine_preset("fast", iters=2)
    api.refine(clip, vis, cfg, models=models)
    guessed = calls[-1].guessed
    assert guessed is not None and bool(guessed[..., list(JOINT_GROUPS["lower_body"])].all())
    assert not bool(guessed[..., 0].any())
    api.refine(clip, vis, refine_preset("fast", iters=2, learned_init=False), models=models)
    assert not bool(calls[-1].guessed.any())
