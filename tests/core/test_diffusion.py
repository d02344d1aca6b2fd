"""The noise schedule (closed-form DDPM/DDIM on hand-made numbers) and the latent diffusion
prior (body-part tokens, classifier-free guidance, null-token dropout, denoise, checkpoints)."""
import math

import pytest
import torch

from dreamor.body.state import STATE_DIM, STATE_SLICES
from dreamor.models.diffusion import DiffusionConfig, LatentDiffusion, PartTokenizer, load_diffusion, part_indices, save_diffusion
from dreamor.models.schedule import NoiseSchedule, ScheduleConfig


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models on a shared 2-core machine: one thread avoids OpenMP spin-waiting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# betas 0.1, 0.2, 0.3, 0.4 -> alpha_bar 0.9, 0.72, 0.504, 0.3024
AB = [0.9, 0.72, 0.504, 0.3024]


def _toy_schedule() -> NoiseSchedule:
    return NoiseSchedule(ScheduleConfig(num_train_timesteps=4, beta_schedule="linear", beta_start=0.1, beta_end=0.4))


def test_alpha_bar_is_the_cumulative_product():
    s = _toy_schedule()
    assert torch.allclose(s.alphas_cumprod, torch.tensor(AB, dtype=torch.float64))
    for name in ("cosine", "scaled_linear"):
        ab = NoiseSchedule(ScheduleConfig(beta_schedule=name)).alphas_cumprod
        assert len(ab) == 1000 and (ab.diff() < 0).all() and ab[0] > 0.99 and ab[-1] < 0.01
    with pytest.raises(ValueError, match="beta_schedule"):
        NoiseSchedule(ScheduleConfig(beta_schedule="quadratic"))


def test_add_noise_per_sample_t_matches_closed_form():
    s = _toy_schedule()
    z0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    noise = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    out = s.add_noise(z0, noise, torch.tensor([1, 3]))
    a1, a3 = AB[1], AB[3]
    expected = torch.tensor([
        [math.sqrt(a1) * 1 + math.sqrt(1 - a1) * 0.5, math.sqrt(a1) * 2 - math.sqrt(1 - a1)],
        [math.sqrt(a3) * 3 + math.sqrt(1 - a3) * 2, math.sqrt(a3) * 4],
    ])
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(s.add_noise(z0, noise, 2), math.sqrt(AB[2]) * z0 + math.sqrt(1 - AB[2]) * noise)


def test_ddim_step_matches_closed_form():
    s = _toy_schedule()
    z = torch.tensor([[0.7, -1.2]])
    eps = torch.tensor([[0.3, 0.9]])
    prev, z0 = s.step(eps, 3, z, prev_t=1)
    a, ap = AB[3], AB[1]
    z0_ref = [(z[0, i].item() - math.sqrt(1 - a) * eps[0, i].item()) / math.sqrt(a) for i in range(2)]
    prev_ref = [math.sqrt(ap) * z0_ref[i] + math.sqrt(1 - ap) * eps[0, i].item() for i in range(2)]
    assert torch.allclose(z0, torch.tensor([z0_ref]), atol=1e-6)
    assert torch.allclose(prev, torch.tensor([prev_ref]), atol=1e-6)
    # the last step (to t = -1, alpha_bar = 1) lands on the predicted clean sample
    last, z0_last = s.step(eps, 0, z, prev_t=-1)
    assert torch.allclose(last, z0_last) and torch.allclose(z0_last, (z - math.sqrt(1 - AB[0]) * eps) / math.sqrt(AB[0]))


def test_stochastic_step_with_eta_1_is_the_ddpm_posterior():
    s = _toy_schedule()
    z = torch.tensor([[0.7, -1.2]])
    eps = torch.tensor([[0.3, 0.9]])
    noise = torch.tensor([[1.0, -2.0]])
    prev, z0 = s.step(eps, 2, z, prev_t=1, eta=1.0, noise=noise)
    a, ap, beta = AB[2], AB[1], 0.3
    var = (1 - ap) / (1 - a) * beta  # DDPM's beta tilde
    expected = math.sqrt(ap) * z0 + math.sqrt(1 - ap - var) * eps + math.sqrt(var) * noise
    assert torch.allclose(prev, expected, atol=1e-6)
    # ... and it equals DDPM's posterior mean + sigma * noise
    mean = (math.sqrt(ap) * beta / (1 - a)) * z0 + (math.sqrt(1 - beta) * (1 - ap) / (1 - a)) * z
    assert torch.allclose(prev, mean + math.sqrt(var) * noise, atol=1e-6)


def test_exact_noise_recovers_the_clean_sample_per_sample_t():
    s = NoiseSchedule()
    g = torch.Generator().manual_seed(0)
    z0, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    t = torch.tensor([0, 10, 250, 600, 900])
    prev, z0_pred = s.step(eps, t, s.add_noise(z0, eps, t), prev_t=torch.tensor([-1, 5, 100, 599, 0]))
    assert torch.allclose(z0_pred, z0, atol=1e-4)
    # per-sample t equals one call per sample
    for i in range(5):
        p_i, _ = s.step(eps[i:i + 1], int(t[i]), s.add_noise(z0[i:i + 1], eps[i:i + 1], int(t[i])), prev_t=[-1, 5, 100, 599, 0][i])
        assert torch.allclose(prev[i], p_i[0], atol=1e-5)


def test_set_timesteps_and_trajectories():
    s = NoiseSchedule()
    s.set_timesteps(10)
    assert s.timesteps.tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert s.previous_timestep(torch.tensor([999, 99])).tolist() == [899, -1]
    traj = s.trajectory(torch.tensor([999, 499, 3]), 4)  # (K + 1, B)
    assert traj.shape == (5, 3)
    assert traj[:, 0].tolist() == [999, 749, 499, 249, -1] and traj[:, 1].tolist() == [499, 374, 249, 124, -1]
    assert traj[0, 2] == 3 and traj[-1, 2] == -1 and (traj.diff(dim=0) <= 0).all()
    assert s.timestep_at(0.5) == 499 and s.timestep_at(1.0) == 999
    with pytest.raises(ValueError):
        s.trajectory(1000, 10)


# -- the model ---------------------------------------------------------------------------
def _tiny(p_drop: float = 0.1, **kw) -> LatentDiffusion:
    torch.manual_seed(0)
    m = LatentDiffusion(DiffusionConfig(latent_dim=6, d_model=32, n_layers=2, n_heads=2, dropout=0.0, p_drop=p_drop, **kw))
    torch.nn.init.normal_(m.out.weight, std=0.5)  # the zero-initialised head would hide everything
    return m.eval()


def test_body_part_tokens_cover_the_state_and_see_only_their_part():
    parts = part_indices()
    assert sorted(i for v in parts.values() for i in v) == list(range(STATE_DIM))
    assert [len(v) for v in parts.values()] == [21, 60, 48, 48, 48, 48]
    tok = PartTokenizer(16)
    x = torch.randn(2, STATE_DIM)
    x2 = x.clone()
    left_knee_pos = STATE_SLICES["joints"].start + 3 * 4  # joint 4 = left_knee
    x2[:, left_knee_pos] += 1.0
    changed = (tok(x2) - tok(x)).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [False, False, False, False, True, False]  # only left_leg


def test_cfg_guidance_1_is_the_conditional_prediction_and_batched_cfg_is_exact():
    m = _tiny()
    g = torch.Generator().manual_seed(1)
    z, cond = torch.randn(5, 6, generator=g), torch.randn(5, STATE_DIM, generator=g)
    t = torch.tensor([0, 100, 500, 900, 999])
    with torch.no_grad():
        eps_cond = m(z, t, cond)
        eps_null = m(z, t, None)
        assert (eps_cond - eps_null).abs().max() > 1e-3  # the condition matters
        assert torch.allclose(m.predict_eps(z, t, cond, 1.0), eps_cond, atol=1e-5)  # (runs the conditional pass only)
        assert torch.allclose(m.predict_eps(z, t, cond, 1.0 + 1e-6), eps_cond, atol=1e-5)  # the batched CFG path agrees
        assert torch.allclose(m.predict_eps(z, t, cond, 3.0), eps_null + 3.0 * (eps_cond - eps_null), atol=1e-5)
        assert torch.allclose(m.predict_eps(z, t, cond, 0.0), eps_null, atol=1e-5)
        # a null mask makes the output independent of the condition
        all_null = torch.ones(5, dtype=torch.bool)
        assert torch.allclose(m(z, t, cond, all_null), m(z, t, cond * 7 + 1, all_null), atol=1e-6)


def test_null_token_dropout_happens_at_the_configured_rate():
    m = _tiny(p_drop=0.2)
    g = torch.Generator().manual_seed(2)
    rate = m.drop_mask(200_000, generator=g).float().mean().item()
    assert abs(rate - 0.2) < 0.005  # 5.6 standard deviations
    # the training loss drops the condition at that rate: with p_drop = 1 the condition is unseen
    z0, cond = torch.randn(64, 6), torch.randn(64, STATE_DIM)
    for p, same in ((1.0, True), (0.0, False)):
        m = _tiny(p_drop=p)
        l1, terms = m.loss(z0, cond, generator=torch.Generator().manual_seed(3))
        l2, _ = m.loss(z0, cond + 1.0, generator=torch.Generator().manual_seed(3))
        assert terms["null_frac"] == p
        assert torch.isclose(l1, l2).item() is same


class _Oracle(LatentDiffusion):
    """Predicts the exact noise towards a known clean (normalised) latent."""

    target: torch.Tensor

    def forward(self, zn_t, t, cond, null_mask=None):
        ab = self.schedule.alpha_bar(torch.as_tensor(t).expand(zn_t.shape[0]), zn_t)
        target = self.normalize(self.target).expand_as(zn_t)
        return (zn_t - ab.sqrt() * target) / (1 - ab).sqrt()


def test_denoise_with_an_exact_model_returns_the_clean_latent_batched_over_windows():
    m = _Oracle(DiffusionConfig(latent_dim=4, d_model=16, n_layers=1, n_heads=2)).eval()
    m.set_latent_stats(torch.randn(100, 4) * 3 + 1)
    m.target = torch.tensor([0.5, -2.0, 1.0, 3.0])
    z = m.target + 0.3 * torch.randn(3, 7, 4)  # 3 windows x 7 frames
    cond = torch.randn(3, 7, STATE_DIM)
    t_start = torch.randint(0, 1000, (3, 7))
    for eta in (0.0, 1.0):
        out = m.denoise(z, cond, t_start, num_steps=10, guidance=2.0, eta=eta, generator=torch.Generator().manual_seed(0))
        assert out.shape == z.shape and torch.allclose(out, m.target.expand_as(out), atol=1e-3)
    assert torch.allclose(m.denoise(z, cond, 500, 5), m.target.expand_as(z), atol=1e-3)  # scalar t_start


def test_denoise_per_sample_t_start_equals_separate_calls():
    m = _tiny()
    m.set_latent_stats(torch.randn(50, 6) * 2)
    g = torch.Generator().manual_seed(4)
    z, cond, noise = torch.randn(4, 6, generator=g), torch.randn(4, STATE_DIM, generator=g), torch.randn(4, 6, generator=g)
    t = torch.tensor([5, 199, 499, 799])
    batched = m.denoise(z, cond, t, num_steps=10, guidance=2.5, noise=noise)
    for i in range(4):
        one = m.denoise(z[i:i + 1], cond[i:i + 1], int(t[i]), num_steps=10, guidance=2.5, noise=noise[i:i + 1])
        assert torch.allclose(batched[i], one[0], atol=1e-4)
    assert m.sample(cond[:2], num_steps=4).shape == (2, 6) and m.sample(None, num_steps=2, batch=3).shape == (3, 6)


def test_checkpoint_round_trip(tmp_path):
    m = _tiny(schedule=ScheduleConfig(beta_schedule="cosine"), guidance=1.5)
    m.set_latent_stats(torch.randn(40, 6) * 2 + 1)
    path = tmp_path / "diffusion-test.pt"
    save_diffusion(path, m, vae_sha1="abc", step=7)
    m2, ckpt = load_diffusion(path)
    assert ckpt["step"] == 7 and ckpt["vae_sha1"] == "abc"
    assert m2.config == m.config and m2.schedule.config.beta_schedule == "cosine" and not m2.training
    z, cond, noise = torch.randn(3, 6), torch.randn(3, STATE_DIM), torch.randn(3, 6)
    assert torch.equal(m2.latent_std, m.latent_std) and torch.equal(m2.latent_mean, m.latent_mean)
    assert torch.allclose(m2.denoise(z, cond, 300, 4, noise=noise), m.denoise(z, cond, 300, 4, noise=noise))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="junk.pt"):
        load_diffusion(tmp_path / "junk.pt")


def test_train_tiny_run_resumes_and_rebuilds_its_model(tmp_path, mocap_dir):
    from dreamor.data.dataset import build_motion_data
    from dreamor.models.configs import preset as vae_preset
    from dreamor.models.vae import MotionVAE, canonical_norm_stats, load_vae, save_vae
    from dreamor.train.train_diffusion import preset, resume_path, train_diffusion

    src = tmp_path / "mocap"
    src.mkdir()
    (src / "run.bvh").write_bytes((mocap_dir / "dataset-2_run_normal_001.bvh").read_bytes())
    data = build_motion_data([(src, 1.0)], tmp_path / "cache", workers=1, quiet=True)
    vcfg = vae_preset("tiny")
    torch.manual_seed(0)
    vae = MotionVAE(vcfg.model, canonical_norm_stats(data))
    torch.nn.init.normal_(vae.encoder.out.weight, std=0.1)  # an untrained encoder would give z = 0
    save_vae(tmp_path / "vae.pt", vae, vcfg, step=0)
    out = tmp_path / "diffusion-tiny.pt"
    kw = dict(data=data, cache_dir=tmp_path / "cache", quiet=True)
    m1 = train_diffusion(preset("tiny"), out, tmp_path / "vae.pt", **kw)
    assert m1["val"]["val_loss"] > 0 and len(m1["history"]) == 2 and list((tmp_path / "cache").glob("latents_*.npz"))
    model, ckpt = load_diffusion(out)
    assert ckpt["step"] == 6 and model.config.latent_dim == vcfg.model.latent_dim == 8
    assert ckpt["train_config"]["preset"] == "tiny" and ckpt["vae"]["latent_dim"] == 8
    assert resume_path(out, tmp_path / "cache").exists()
    m2 = train_diffusion(preset("tiny"), out, tmp_path / "vae.pt", resume=True, overrides={"steps": 8}, **kw)
    assert [h["step"] for h in m2["history"]] == [3, 6, 8]
    # the prior runs on the VAE's conditions, batched over windows x frames
    from dreamor.models.diffusion import vae_condition

    v = load_vae(tmp_path / "vae.pt")
    x = torch.from_numpy(data.states[:11]).reshape(1, 11, STATE_DIM)
    rest = torch.from_numpy(data.rest_joints[:1])
    z, _ = v.encode(x[:, :-1], x[:, 1:], rest)
    zhat = load_diffusion(out)[0].denoise(z, vae_condition(v, x[:, :-1], rest), torch.tensor([[100] * 10]), 3)
    assert zhat.shape == (1, 10, 8) and torch.isfinite(zhat).all()


def test_cli_train_diffusion(tmp_path, mocap_dir, capsys):
    from dreamor.cli import main
    from dreamor.models.configs import preset as vae_preset
    from dreamor.models.vae import MotionVAE, save_vae

    src = tmp_path / "mocap"
    src.mkdir()
    (src / "run.bvh").write_bytes((mocap_dir / "dataset-2_run_normal_001.bvh").read_bytes())
    vcfg = vae_preset("tiny")
    save_vae(tmp_path / "vae.pt", MotionVAE(vcfg.model), vcfg, step=0)
    args = ["train", "diffusion", "--preset", "tiny", "--vae", str(tmp_path / "vae.pt"), "--data", str(src),
            "--out", str(tmp_path / "d.pt"), "--cache", str(tmp_path / "cache"), "--workers", "1", "--quiet"]
    assert main(args) == 0 and "validation:" in capsys.readouterr().out
    assert main(args) == 2 and "--resume" in capsys.readouterr().err  # never overwrites silently
    assert main(args + ["--resume", "--steps", "7"]) == 0 and load_diffusion(tmp_path / "d.pt")[1]["step"] == 7
    assert main(args[:-1] + ["--preset", "huge"]) == 2 and "unknown preset" in capsys.readouterr().err
    # a warm start from d.pt: a new run whose first weights are d.pt's
    warm = [a if a != str(tmp_path / "d.pt") else str(tmp_path / "warm.pt") for a in args]
    assert main(warm + ["--init", str(tmp_path / "d.pt"), "--steps", "1"]) == 0
    assert load_diffusion(tmp_path / "warm.pt")[1]["metrics"]["init"] == "d.pt"
    assert main(warm + ["--init", str(tmp_path / "nothing.pt")]) == 2 and "no such checkpoint" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_a_cpu_generator():
    m = _tiny()
    m.set_latent_stats(torch.randn(50, 6) * 2)
    z, cond = torch.randn(8, 6), torch.randn(8, STATE_DIM)
    t = torch.tensor([5, 99, 199, 299, 499, 699, 899, 999])
    cpu = m.denoise(z, cond, t, 10, eta=1.0, generator=torch.Generator().manual_seed(0))
    mc = m.to("cuda")
    gpu = mc.denoise(z.cuda(), cond.cuda(), t.cuda(), 10, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-3)
    assert mc.sample(cond.cuda(), 4, generator=torch.Generator().manual_seed(1)).device.type == "cuda"
    loss, _ = mc.train().loss(z.cuda(), cond.cuda(), generator=torch.Generator().manual_seed(2))
    assert torch.isfinite(loss)
