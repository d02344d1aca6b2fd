"""MotionVAE: canonical frame, shapes, one training step, checkpoints, differentiable rollout,
scheduled sampling, the Gaussian prior, resumable training and the CLI's input checks.

Real mocap (the bundled Bandai/CMU fixtures), a tiny model; the whole file runs in seconds.
"""
import math
import shutil

import pytest
import torch

from dreamor.body.frame import Frame, canonical_frame, canonical_pairs, transform_state
from dreamor.body.kinematics import project_bone_lengths
from dreamor.body.rotations import mat_to_r6d, r6d_to_mat
from dreamor.body.skeleton import BONES, SMPL_NEUTRAL_REST_JOINTS, bone_lengths
from dreamor.body.state import STATE_DIM, STATE_SLICES, split_state
from dreamor.cli import main
from dreamor.data.dataset import WindowSampler, build_motion_data
from dreamor.models.configs import PRESETS, TrainConfig, preset
from dreamor.models.losses import contact_velocity, fk_joints, kl_gaussians, kl_to_standard_normal, regressed_joints, vae_loss
from dreamor.models.vae import MotionVAE, canonical_norm_stats, load_vae, orthonormalize, read_vae, save_vae
from dreamor.train import train_vae as tv

#: fixture takes copied under these names; "elderly" is a held-out style -> validation split.
TAKES = {
    "dataset-2_run_normal_001.bvh": "dataset-2_run_normal_001.bvh",
    "cmu_02_01.bvh": "cmu_02_01.bvh",
    "dataset-2_raise-up-both-hands_normal_028.bvh": "dataset-2_raise-up-both-hands_normal_028.bvh",
    "dataset-2_walk-turn-left_normal_001.bvh": "dataset-2_walk_elderly_001.bvh",
}


def copy_takes(mocap_dir, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for src, name in TAKES.items():
        shutil.copy(mocap_dir / src, dst / name)
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory, mocap_dir):
    root = tmp_path_factory.mktemp("vae_data")
    return build_motion_data([(copy_takes(mocap_dir, root / "takes"), 1.0)], root / "cache", workers=1, quiet=True)


@pytest.fixture(scope="module")
def cfg():
    return preset("tiny")


@pytest.fixture()
def vae(data, cfg):
    """A tiny untrained VAE whose decoder already depends on z (its output layer starts at zero)."""
    torch.manual_seed(0)
    model = MotionVAE(cfg.model, canonical_norm_stats(data))
    with torch.no_grad():
        model.decoder.out.weight.normal_(0.0, 0.05)
    return model


def windows(data, length, n=4, seed=0, validation=False):
    s = WindowSampler(data, length, validation=validation, seed=seed)
    return tv.to_batch(s.sample(n), "cpu")


def rotate_z(x, rest, angle, shift):
    """Move states (B, T, 273) rigidly: rotate about world z by angle, shift in the ground plane."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).expand(*x.shape[:-1], 3, 3)
    return transform_state(x, Frame(rot, torch.tensor([*shift, 0.0]).expand(*x.shape[:-1], 3)), rest)


# ----------------------------------------------------------------------------- canonical frame
def test_canonical_frame_faces_plus_y_at_the_origin_and_round_trips(data):
    states, _, rest = windows(data, 8)
    frame = canonical_frame(states, rest)
    xc = transform_state(states, frame, rest)
    pelvis = xc[..., STATE_SLICES["trans"]] + rest[:, None, 0]
    assert torch.allclose(pelvis[..., :2], torch.zeros_like(pelvis[..., :2]), atol=1e-5)
    assert torch.allclose(pelvis[..., 2], (states[..., STATE_SLICES["trans"]] + rest[:, None, 0])[..., 2], atol=1e-6)
    fwd = r6d_to_mat(xc[..., STATE_SLICES["root_orient"]])[..., :, 2]
    assert (fwd[..., 0].abs() < 1e-5).all() and (fwd[..., 1] > 0).all()
    # FK of the canonical state equals its (moved) joints: trans moved as a point about the rest pelvis
    assert (fk_joints(xc, rest) - regressed_joints(xc)).abs().max() < 1e-4
    back = transform_state(xc, frame.inverse(), rest)
    assert (back - states).abs().max() < 1e-4


def test_transform_state_moves_positions_and_turns_vectors(data):
    """Each part of the state as its definition says (transform_state does them all in one gather and product)."""
    states, _, rest = windows(data, 5)
    angle, shift = 0.7, torch.tensor([0.3, -1.2, 0.0])
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    p, q = split_state(states), split_state(rotate_z(states, rest, angle, shift[:2].tolist()))

    def turned(v):  # (..., 3k) -> each 3-vector turned
        return (v.reshape(*v.shape[:-1], -1, 3) @ rot.T).reshape(v.shape)

    p0 = rest[:, None, 0]
    assert torch.allclose(q.trans, (p.trans + p0) @ rot.T + shift - p0, atol=1e-5)
    assert torch.allclose(q.joints, turned(p.joints) + shift.repeat(22), atol=1e-5)
    for name in ("trans_vel", "root_orient", "root_orient_vel", "joints_vel"):
        assert torch.allclose(getattr(q, name), turned(getattr(p, name)), atol=1e-5), name
    assert torch.equal(q.pose_body, p.pose_body)  # relative rotations do not turn


def test_orthonormalize_is_gram_schmidt_on_every_6d_rotation():
    x = torch.randn(3, 4, 273, dtype=torch.float64)
    y = split_state(orthonormalize(x))
    p = split_state(x)
    assert torch.allclose(y.root_orient, mat_to_r6d(r6d_to_mat(p.root_orient)))
    body = p.pose_body.reshape(3, 4, 21, 6)
    assert torch.allclose(y.pose_body, mat_to_r6d(r6d_to_mat(body)).reshape(3, 4, 126))
    for name in ("trans", "trans_vel", "root_orient_vel", "joints", "joints_vel"):
        assert torch.equal(getattr(y, name), getattr(p, name))


def test_encoder_is_invariant_and_decoder_equivariant_to_heading_and_position(vae, data):
    states, _, rest = windows(data, 6)
    moved = rotate_z(states, rest, 2.1, (3.0, -1.5))
    with torch.no_grad():
        mu, logvar = vae.encode(states[:, :-1], states[:, 1:], rest)
        mu2, logvar2 = vae.encode(moved[:, :-1], moved[:, 1:], rest)
        assert torch.allclose(mu, mu2, atol=1e-4) and torch.allclose(logvar, logvar2, atol=1e-4)
        z = torch.randn_like(mu)
        x1, c1 = vae.decode(states[:, :-1], z, rest)
        x2, c2 = vae.decode(moved[:, :-1], z, rest)
    assert torch.allclose(rotate_z(x1, rest, 2.1, (3.0, -1.5)), x2, atol=1e-4)
    assert torch.allclose(c1, c2, atol=1e-5)


# ----------------------------------------------------------------------------- shapes
def test_shapes_and_valid_outputs(vae, data, cfg):
    states, contacts, rest = windows(data, 7, n=3)
    z_dim = cfg.model.latent_dim
    mu, logvar = vae.encode(states[:, :-1], states[:, 1:], rest)
    assert mu.shape == logvar.shape == (3, 6, z_dim)
    x1, logits = vae.decode(states[:, 0], mu[:, 0], rest)
    assert x1.shape == (3, STATE_DIM) and logits.shape == (3, 9)
    roll = vae.rollout(states[:, 0], mu, rest)
    assert roll.states.shape == (3, 6, STATE_DIM) and roll.contacts.shape == (3, 6, 9)
    assert ((roll.contacts >= 0) & (roll.contacts <= 1)).all()
    # decoded 6D rotations are orthonormalised: the 6D part equals its Gram-Schmidt projection
    r6 = roll.states[..., STATE_SLICES["pose_body"]].reshape(3, 6, 21, 6)
    m = r6d_to_mat(r6)
    assert torch.allclose(torch.cat([m[..., :, 0], m[..., :, 1]], -1), r6, atol=1e-5)
    s = vae.sample(states[:, 0], 5, rest, generator=torch.Generator().manual_seed(0))
    assert s.states.shape == (3, 5, STATE_DIM) and s.z.shape == (3, 5, z_dim)
    out = vae(states, rest)
    assert out.pred.shape == out.target.shape == (3, 6, STATE_DIM) and out.mu.shape == (3, 6, z_dim)
    assert sum(p.numel() for p in MotionVAE(PRESETS["small"].model).parameters()) < 3_000_000


def test_bone_projection_sets_rest_lengths_and_keeps_directions():
    rest = torch.tensor(SMPL_NEUTRAL_REST_JOINTS, dtype=torch.float64)
    assert torch.allclose(project_bone_lengths(rest, rest), rest, atol=1e-12)  # on the skeleton: unchanged
    joints = rest + 0.05 * torch.randn(5, 22, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fixed = project_bone_lengths(joints, rest)
    assert torch.allclose(bone_lengths(fixed), bone_lengths(rest).expand(5, 21), atol=1e-9)
    assert torch.equal(fixed[:, 0], joints[:, 0])
    for parent, child in BONES:  # each bone keeps the direction it had
        a, b = fixed[:, child] - fixed[:, parent], joints[:, child] - joints[:, parent]
        assert torch.allclose(torch.nn.functional.cosine_similarity(a, b, dim=-1), torch.ones(5, dtype=torch.float64))


def test_rollouts_keep_the_skeletons_bone_lengths(vae, data):
    states, _, rest = windows(data, 21, n=3)
    z = 3 * torch.randn(3, 20, vae.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        roll = vae.rollout(states[:, 0], z, rest)
        raw = vae.rollout(states[:, 0], z, rest, project_bones=False)  # as the refinement rolls out
        vae.project_bones = False
        assert torch.equal(vae.rollout(states[:, 0], z, rest).states, raw.states)
    dev = lambda x: (bone_lengths(regressed_joints(x)) / bone_lengths(rest)[:, None] - 1).abs().max()  # noqa: E731
    assert dev(roll.states) < 1e-4
    assert dev(raw.states) > 1e-2  # without the projection the untrained decoder drifts off the skeleton


# ----------------------------------------------------------------------------- training
def test_one_training_step_lowers_the_loss_on_a_fixed_batch(vae, data, cfg):
    batch = windows(data, cfg.window, n=16, seed=3)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    step = cfg.steps // 2  # mid-training: KL on, scheduled sampling on

    def loss():
        torch.manual_seed(7)
        with torch.no_grad():
            return float(tv.window_loss(vae, vae, batch, cfg, tv.own_prob_at(step, cfg), tv.kl_weight_at(step, cfg))[0])

    before = loss()
    torch.manual_seed(7)
    terms = tv.train_step(vae, vae, batch, opt, cfg, step)
    after = loss()
    assert terms["skipped"] == 0.0 and math.isfinite(terms["total"])
    assert after < before


def test_scheduled_sampling_feeds_back_own_predictions(vae, data, cfg):
    states, _, rest = windows(data, 5, n=4)
    with torch.no_grad():
        tf = vae(states, rest, p_own=0.0, sample=False)
        own = vae(states, rest, p_own=1.0, sample=False)
    assert torch.allclose(tf.pred[:, 0], own.pred[:, 0], atol=1e-5)  # step 1 always starts from ground truth
    assert not torch.allclose(tf.pred[:, 2], own.pred[:, 2], atol=1e-4)
    assert torch.equal(tf.target, own.target)
    # without detach, the loss at step 3 reaches the weights through the fed-back predictions too
    out = vae(states, rest, p_own=1.0, sample=False, detach=False)
    out.pred[:, 2].sum().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in vae.parameters())


def test_schedules_ramp_as_configured(cfg):
    c = TrainConfig(steps=1000, kl_anneal=(0.0, 0.5), sched_samp=(0.1, 0.3), sched_samp_max=0.8, warmup_steps=10)
    assert tv.kl_weight_at(0, c) == 0.0 and tv.kl_weight_at(250, c) == pytest.approx(c.loss.kl / 2)
    assert tv.kl_weight_at(900, c) == c.loss.kl
    assert tv.own_prob_at(50, c) == 0.0 and tv.own_prob_at(200, c) == pytest.approx(0.4) and tv.own_prob_at(999, c) == 0.8
    assert tv.lr_at(0, c) == pytest.approx(c.lr / 10) and tv.lr_at(10, c) == pytest.approx(c.lr)
    assert tv.lr_at(999, c) == pytest.approx(c.lr * c.lr_min_frac, rel=1e-2)


def test_loss_terms(data, vae):
    states, contacts, rest = windows(data, 4, n=2)
    out = vae(states, rest, sample=False)
    cont = contacts[:, 1:]
    loss, terms = vae_loss(out.pred, out.target, out.contact_logits, cont, out.mu, out.logvar, rest,
                           vae.delta_std, TrainConfig().loss, 0.1)
    assert {"rec", "kl", "joint", "consist", "contact", "contact_vel", "contact_acc"} <= set(terms)
    assert "vertex" not in terms
    # the target scores zero reconstruction / joint / consistency error
    _, perfect = vae_loss(out.target, out.target, out.contact_logits, cont, out.mu, out.logvar, rest,
                          vae.delta_std, TrainConfig().loss, 0.1)
    assert perfect["rec"] == 0 and perfect["joint"] < 1e-6 and perfect["consist"] < 1e-6
    # velocity penalty: only where the weight says contact
    moving = out.target.clone()
    moving[..., STATE_SLICES["joints_vel"]] = 3.0  # m/s on every axis
    assert contact_velocity(moving, torch.zeros_like(cont)) == 0
    w = torch.zeros_like(cont)
    w[..., 5] = 1.0  # left toe
    assert contact_velocity(moving, w) > 0
    # KL identities
    mu, lv = torch.randn(5, 8), torch.randn(5, 8)
    assert torch.allclose(kl_gaussians(mu, lv, mu, lv), torch.zeros(5), atol=1e-6)
    assert torch.allclose(kl_gaussians(mu, lv, torch.zeros(5, 8), torch.zeros(5, 8)), kl_to_standard_normal(mu, lv))
    # a body model's vertices add the vertex term, with gradients
    calls = []

    def vertices(rotmats, trans, rest_joints):
        calls.append(rotmats.shape)
        return rotmats[..., :3, :, :].reshape(*rotmats.shape[:-3], -1, 3) + trans[..., None, :]

    loss_v, terms_v = vae_loss(out.pred, out.target, out.contact_logits, cont, out.mu, out.logvar, rest,
                               vae.delta_std, TrainConfig().loss, 0.1, vertices=vertices)
    assert "vertex" in terms_v and terms_v["vertex"] > 0 and len(calls) == 2
    assert loss_v > loss


def test_contact_velocity_value():
    pred = torch.zeros(1, 1, STATE_DIM)
    v = pred[..., STATE_SLICES["joints_vel"]].view(1, 1, 22, 3)
    v[..., 10, 0] = 0.3  # left toe (contact index 5) at 0.3 m/s = 1 cm per 30 Hz frame
    w = torch.zeros(1, 1, 9)
    w[..., 5] = 1.0
    assert float(contact_velocity(pred, w)) == pytest.approx(1.0 / 9)  # (1 cm/frame)^2, mean over 9 joints


# ----------------------------------------------------------------------------- rollout, prior
def test_rollout_is_differentiable_wrt_the_latents(vae, data, cfg):
    states, _, rest = windows(data, 6, n=2)
    vae = vae.double()
    states, rest = states.double(), rest.double()
    with torch.no_grad():
        mu, _ = vae.encode(states[:, :-1], states[:, 1:], rest)
    z = mu.clone().requires_grad_(True)
    roll = vae.rollout(states[:, 0], z, rest)
    target = fk_joints(roll.states, rest)[:, -1].sum() + roll.contacts.sum()
    (g,) = torch.autograd.grad(target, z)
    assert torch.isfinite(g).all() and g[:, 0].abs().sum() > 0  # the first latent moves the last frame
    # autograd agrees with a finite difference along a random direction
    d = torch.randn_like(z)
    eps = 1e-6
    with torch.no_grad():
        def f(zz):
            r = vae.rollout(states[:, 0], zz, rest)
            return fk_joints(r.states, rest)[:, -1].sum() + r.contacts.sum()
        fd = (f(z + eps * d) - f(z - eps * d)) / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(float(fd), rel=1e-4, abs=1e-6)


def test_fitting_the_prior_beats_the_standard_normal(vae, data, cfg):
    c = preset("tiny", prior_steps=60, prior_lr=3e-3, prior_batch_size=16)
    # make the posterior depend on x_{t-1}: a few VAE steps first
    opt = torch.optim.AdamW(vae.parameters(), lr=3e-3)
    sampler = WindowSampler(data, c.window, seed=0)
    for i in range(10):
        tv.train_step(vae, vae, tv.to_batch(sampler.sample(16), "cpu"), opt, c, 0)
    states, _, rest = windows(data, c.window, n=64, seed=11)
    with torch.no_grad():
        mu, lv = vae.encode(states[:, :-1], states[:, 1:], rest)
        before = kl_gaussians(mu, lv, *vae.prior_params(states[:, :-1], rest)).mean()
        assert torch.allclose(before, kl_to_standard_normal(mu, lv).mean(), rtol=2e-2)  # unfitted = N(0, I)
    tv.fit_prior(vae, sampler, c, torch.device("cpu"))
    with torch.no_grad():
        after = kl_gaussians(mu, lv, *vae.prior_params(states[:, :-1], rest)).mean()
    assert after < 0.9 * before
    assert not any(p.requires_grad for p in vae.parameters())


def test_refitting_the_contacts_learns_the_labels_and_leaves_the_motion_alone(vae, data, cfg):
    states, contacts, rest = windows(data, cfg.window, n=64, seed=5)
    prev_c, cur_c, _ = canonical_pairs(states[:, :-1], states[:, 1:], rest)
    with torch.no_grad():
        mu, _ = vae.posterior_c(prev_c, cur_c)
        motion0, logits0 = vae.decode_c(prev_c, mu)
    labels = contacts[:, 1:]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    tv.refit_contacts(vae, WindowSampler(data, cfg.window, seed=1), 150, torch.device("cpu"), lr=3e-3, batch_size=32)
    with torch.no_grad():
        motion1, logits1 = vae.decode_c(prev_c, mu)
    assert bce(logits1, labels) < 0.7 * bce(logits0, labels)
    assert torch.equal(motion0, motion1)  # only the contact outputs moved
    assert not any(p.requires_grad for p in vae.parameters())


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_save_load_gives_identical_outputs(vae, data, cfg, tmp_path):
    with torch.no_grad():
        for p in vae.prior.parameters():  # a non-trivial prior, to see it round-trip
            p.add_(0.01 * torch.randn_like(p))
    path = save_vae(tmp_path / "m" / "vae.pt", vae, cfg, step=3, prior_fitted=True, metrics={"val": {"kl": 1.0}})
    ckpt = read_vae(path)
    assert set(ckpt) >= {"config", "model", "prior", "norm", "step", "optimizer", "metrics"}
    assert not any(k.startswith("prior.") for k in ckpt["model"])
    loaded = load_vae(path)
    assert loaded.config == vae.config and loaded.prior_fitted and loaded.step == 3
    assert TrainConfig.from_dict(ckpt["config"]) == cfg
    states, _, rest = windows(data, 5, n=2)
    z = torch.randn(2, 4, cfg.model.latent_dim)
    vae.eval()
    with torch.no_grad():
        a, b = vae.rollout(states[:, 0], z, rest), loaded.rollout(states[:, 0], z, rest)
        assert torch.equal(a.states, b.states) and torch.equal(a.contact_logits, b.contact_logits)
        assert all(torch.equal(u, v) for u, v in zip(vae.prior_params(states[:, 0], rest),
                                                     loaded.prior_params(states[:, 0], rest)))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_bad_checkpoints_are_clear_errors(tmp_path):
    from dreamor.errors import DreamorError

    with pytest.raises(DreamorError, match="no such MotionVAE checkpoint"):
        load_vae(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DreamorError, match="not a readable checkpoint"):
        load_vae(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(DreamorError, match="not a MotionVAE checkpoint"):
        load_vae(tmp_path / "other.pt")


def test_config_round_trips_and_rejects_unknown_keys():
    for p in PRESETS.values():
        assert TrainConfig.from_dict(p.to_dict()) == p
    d = PRESETS["small"].to_dict()
    d["model"]["colour"] = 1
    with pytest.raises(ValueError, match="colour"):
        TrainConfig.from_dict(d)


def test_train_then_resume(data, tmp_path):
    out = tmp_path / "vae.pt"
    cfg = preset("tiny", steps=3, prior_steps=2, val_every=3, ckpt_every=2)
    m = tv.train_vae(cfg, out, data=data, quiet=True)
    ckpt = read_vae(out)
    assert ckpt["step"] == 3 and ckpt["prior_fitted"] and ckpt["optimizer"] is not None
    assert m["val_windows"].startswith("validation split, 61-frame")
    for key in ("one_step_joint_cm", "rollout_1s_cm", "rollout_2s_cm", "contact_acc", "prior_kl", "kl"):
        assert math.isfinite(m["val"][key])
    # resume to 5 steps: continues from step 3 with the saved optimiser, refits the prior
    m2 = tv.train_vae(preset("tiny"), out, data=data, resume=True, overrides={"steps": 5}, quiet=True)
    ckpt2 = read_vae(out)
    assert ckpt2["step"] == 5 and ckpt2["prior_fitted"] and ckpt2["config"]["steps"] == 5
    assert ckpt2["config"]["prior_steps"] == 2  # the checkpoint's own config, not the preset's
    assert ckpt2["optimizer"]["state"][0]["step"] == 5  # Adam's step count carried over
    assert [h["step"] for h in m2["history"] if h["stage"] == "vae"] == [3, 5]
    # a finished run resumes to a no-op
    tv.train_vae(preset("tiny"), out, data=data, resume=True, quiet=True)
    assert read_vae(out)["step"] == 5
    # ... or, asked to, refits its contact outputs only and says so in the checkpoint
    m3 = tv.train_vae(preset("tiny"), out, data=data, resume=True, quiet=True, contact_steps=3)
    ckpt3 = read_vae(out)
    assert ckpt3["step"] == 5 and ckpt3["prior_fitted"] and m3["contact_refit_steps"] == 3
    assert [h["stage"] for h in m3["history"]][-2:] == ["before contacts", "contacts"]


# ----------------------------------------------------------------------------- CLI
def test_cli_input_errors(tmp_path, capsys, monkeypatch):
    assert main(["train", "vae", "--preset", "tiny", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "a.pt")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["train", "vae", "--preset", "huge", "--data", str(tmp_path)]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    (tmp_path / "a.pt").write_bytes(b"x")
    assert main(["train", "vae", "--preset", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "a.pt")]) == 2
    assert "--resume" in capsys.readouterr().err
    from dreamor.train import common

    monkeypatch.setattr(common, "REPO_ROOT", tmp_path / "elsewhere" / "repo")
    assert main(["train", "vae", "--preset", "tiny", "--out", str(tmp_path / "b.pt")]) == 2
    assert "default training data not found" in capsys.readouterr().err


def test_data_spec_parsing():
    from pathlib import Path

    from dreamor.train import common

    assert common.parse_data_spec("a/b:4") == (Path("a/b"), 4.0)
    assert common.parse_data_spec("a/b") == (Path("a/b"), 1.0)
    assert common.parse_data_spec("C:/data/x") == (Path("C:/data/x"), 1.0)
    assert common.parse_data_spec("d:0.5") == (Path("d"), 0.5)
    from dreamor.errors import DreamorError

    with pytest.raises(DreamorError, match="weight"):
        common.parse_data_spec("d:0")
