"""The hypotheses network: warm start, winner-takes-all weights, completion of a clip, training CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dreamor.cli import main
from dreamor.models.hypotheses import HypothesesConfig, JointHypotheses, hypotheses, load_hypotheses
from dreamor.models.infill import InfillConfig, JointInfill, features, load_infill, save_infill
from dreamor.train.train_hypotheses import wta_weights
from tests.core.test_infill import walk  # noqa: F401  (fixtures)
from tests.core.test_window_prior import models_with_prior  # noqa: F401

TINY = InfillConfig(channels=16, dilations=(1, 2))


def test_warm_start_heads_begin_near_the_completion_network(walk):
    clip, vis = walk
    torch.manual_seed(0)
    infill = JointInfill(TINY)
    model = JointHypotheses(HypothesesConfig(trunk=TINY, heads=3))
    model.warm_start(infill)
    feat = torch.from_numpy(features(clip.joints, vis, clip.rest_joints)[0])[None]
    hyps, logits = model(feat)
    assert hyps.shape == (1, 3, clip.num_frames, 22, 3) and logits.shape == (1, 4)
    mean = infill(feat)
    gaps = (hyps - mean[:, None]).norm(dim=-1).mean((0, 2, 3))
    assert (gaps > 0).all() and (gaps < 0.2 * mean.norm(dim=-1).mean()).all()  # near, but each its own
    assert (hyps[0, 0] - hyps[0, 1]).abs().max() > 0


def test_wta_weights_pull_the_winner_unless_the_mean_guess_wins():
    err = torch.tensor([[0.3, 0.1, 0.2], [0.3, 0.1, 0.2]])
    w = wta_weights(err, torch.tensor([0.5, 0.05]), epsilon=0.3)
    assert torch.allclose(w[0], torch.tensor([0.1, 0.8, 0.1]))
    assert torch.allclose(w[1], torch.tensor([0.1, 0.1, 0.1]))  # the mean guess is closer: only epsilon
    assert torch.allclose(wta_weights(err, None, 0.3)[1], torch.tensor([0.1, 0.8, 0.1]))


def test_hypotheses_keep_visible_joints_and_order_by_score(walk):
    clip, vis = walk
    torch.manual_seed(1)
    model = JointHypotheses(HypothesesConfig(trunk=TINY, heads=3)).eval()
    torch.nn.init.normal_(model.score.weight, std=1.0)
    out, prob = hypotheses(model, clip.joints, vis, clip.rest_joints)
    assert out.shape == (3, *clip.joints.shape) and prob.shape == (4,)
    assert np.allclose(out[:, vis], clip.joints[vis]) and np.isfinite(out).all()
    assert np.isclose(prob.sum(), 1.0) and np.all(np.diff(prob[1:]) <= 0)
    assert not np.allclose(out[0][~vis], out[1][~vis])


def test_train_cli_tiny_then_resume(mocap_dir, tmp_path, capsys):
    from tests.core.test_vae import copy_takes

    infill = tmp_path / "infill.pt"
    save_infill(infill, JointInfill(TINY))
    out = tmp_path / "hyp.pt"
    args = ["train", "hypotheses", "--preset", "tiny", "--data", str(copy_takes(mocap_dir, tmp_path / "takes")),
            "--out", str(out), "--init", str(infill), "--cache", str(tmp_path / "cache"), "--workers", "1", "--quiet"]
    assert main(args) == 0
    assert "val_best_cm" in capsys.readouterr().out
    model = load_hypotheses(out)
    assert model.step == 4 and model.metrics["val_best_cm"] <= model.metrics["val_mean_cm"] + 1e-6
    assert main(args + ["--resume", "--steps", "6"]) == 0
    assert load_hypotheses(out).step == 6
    missing = [a if a != str(infill) else str(tmp_path / "none.pt") for a in args]
    missing[missing.index(str(out))] = str(tmp_path / "x.pt")
    assert main(missing) == 2
    assert "no such completion-network checkpoint" in capsys.readouterr().err


def test_a_frozen_trunk_stays_the_completion_networks_and_the_heads_learn(mocap_dir, tmp_path):
    from dataclasses import replace

    from dreamor.train.train_hypotheses import PRESETS, train_hypotheses
    from tests.core.test_vae import copy_takes

    infill = tmp_path / "infill.pt"
    save_infill(infill, JointInfill(TINY))
    out = tmp_path / "hyp.pt"
    cfg = replace(PRESETS["tiny"], freeze_trunk=True)
    train_hypotheses(cfg, out, [(copy_takes(mocap_dir, tmp_path / "takes"), 1.0)], infill, cache_dir=tmp_path / "cache",
                     workers=1, quiet=True)
    trained, start = load_hypotheses(out).state_dict(), JointHypotheses(cfg.model)
    start.warm_start(load_infill(infill))
    trunk = [k for k in trained if k.startswith(("inp.", "blocks."))]
    assert trunk and all(torch.equal(start.state_dict()[k], trained[k]) for k in trunk)
    assert not torch.equal(start.state_dict()["outs.0.weight"], trained["outs.0.weight"])


def test_refine_puts_the_heads_first_among_the_alternatives(models_with_prior, walk, monkeypatch):
    from dreamor.refine import api
    from dreamor.refine.config import refine_preset

    clip, vis = walk
    torch.manual_seed(2)
    model = JointHypotheses(HypothesesConfig(trunk=TINY, heads=3))
    for out in model.outs:  # heads far apart: each alternative is recognisably its head
        torch.nn.init.normal_(out.bias, std=0.3)
    from dreamor.models.hypotheses import save_hypotheses

    save_hypotheses(models_with_prior / "hypotheses-small.pt", model)
    models = api.load_models()
    assert models.ids["hypotheses"] == "hypotheses-small.pt"
    seen_heads = {}
    real = hypotheses

    def spy(*a, **k):
        seen_heads["heads"] = real(*a, **k)[0]
        return real(*a, **k)

    monkeypatch.setattr("dreamor.models.hypotheses.hypotheses", spy)
    cfg = refine_preset("fast", iters=1, samples=4, prior_steps=2, doubt_draws=3)
    r = api.refine(clip, vis, cfg, models=models)
    assert len(r.alternatives) == 3 and len(seen_heads["heads"]) == 3
    without = api.refine(clip, vis, refine_preset("fast", iters=1, samples=4, prior_steps=2, doubt_draws=3,
                                                  head_alternatives=0), models=models)
    hid = ~vis
    for k in range(2):  # the first two alternatives are the heads (posed), the third a draw as without heads
        assert not np.allclose(r.alternatives[k].joints[hid], without.alternatives[k].joints[hid], atol=1e-3)
    np.testing.assert_allclose(r.alternatives[2].joints, without.alternatives[0].joints, atol=1e-5)
    assert [a.kind for a in r.alternatives] == ["head", "head", "draw"] and r.kind_counts() == {"head": 2, "draw": 1}
    assert without.kind_counts() == {"draw": 3}
    from dreamor.server.engine_runner import doubt_metrics

    assert doubt_metrics(r)["alternative_heads"] == 2.0 and doubt_metrics(without)["alternative_heads"] == 0.0
    for alt in r.alternatives:
        np.testing.assert_allclose(alt.joints[vis], clip.joints[vis], atol=0.02)


TRAINED = Path(__file__).resolve().parents[2] / "models" / "hypotheses-small.pt"


@pytest.mark.skipif(not TRAINED.exists(), reason="no trained hypotheses checkpoint")
def test_the_trained_heads_load_differ_and_condition_on_what_is_seen(walk):
    clip, vis = walk
    model = load_hypotheses(TRAINED)
    heads, prob = hypotheses(model, clip.joints, vis, clip.rest_joints)
    assert heads.shape[0] == model.config.heads >= 2 and np.isclose(prob.sum(), 1.0)
    hid = ~vis
    assert np.linalg.norm(heads[0] - heads[1], axis=-1)[hid].mean() > 0.005  # distinct completions
    moved = clip.joints.copy()
    moved[:, 16:] += np.array([0.0, 0.0, 0.15])  # the arms raised: the answer for the hidden legs changes
    other = hypotheses(model, moved, vis, clip.rest_joints)[0]
    assert np.abs(other[:, hid] - heads[:, hid]).max() > 0.01
