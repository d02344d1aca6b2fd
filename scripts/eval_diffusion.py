"""Model-card figures of the latent diffusion prior, on held-out takes, plus a speed benchmark.

Given a MotionVAE and a diffusion checkpoint trained on its latents:

1. Denoising in latent space: validation latents (posterior means) noised to
   t' in {0.2, 0.5, 0.8} T and brought back by K DDIM steps with classifier-free guidance;
   MSE to the clean latents before (the noised latent) and after (ẑ), for guidance 1
   (conditional only) and the model's default ω.
2. Denoising in motion space: joint error (cm, FK of the decoded state vs ground truth) of
   one-step decoding from ground-truth x_{t-1} and of 1 s rollouts from x_0, with the clean,
   the noised and the denoised latents.
3. Plausibility of samples: 10 s VAE-decoder rollouts from held-out start states, with z_t
   drawn by the diffusion prior (K steps, with the checkpoint's CFG ω and with ω = 1,
   conditioned on the rollout's own x_{t-1}), by
   the VAE's fitted Gaussian conditional prior, and by N(0, I); bone lengths of the
   regressed joints vs the skeleton's (share of frames within 2 %), lowest foot (cm, FK and
   regressed joints; share of frames with every foot above -5 cm), root speed and joint
   acceleration (vs the held-out clips themselves), all in the same run.
4. Speed: denoising all latents of a 300-frame clip (299 latents, per-latent random t')
   with K = 10 and CFG in one batched call; the baseline, the same work latent by latent,
   timed in the same run.

    .venv/bin/python scripts/eval_diffusion.py --vae models/vae-small.pt --diffusion models/diffusion-small.pt \\
        [--device cpu] [--threads 2] [--out-md out/diffusion_card.md] [--out-json out/diffusion_card.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dreamor.body.skeleton import bone_lengths
from dreamor.data.dataset import MotionData, WindowSampler, build_motion_data
from dreamor.errors import DreamorError
from dreamor.models.diffusion import LatentDiffusion, vae_condition
from dreamor.models.losses import fk_joints, regressed_joints
from dreamor.models.vae import MotionVAE, load_vae
from dreamor.train.common import REPO_ROOT, default_sources, parse_data_spec
from dreamor.train.train_diffusion import DENOISE_LEVELS, load_prior

FEET = [7, 8, 10, 11]  # ankles, toes


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def val_windows(data: MotionData, length: int, n: int, dev: torch.device, seed: int = 7):
    for validation in (True, False):
        try:
            s = WindowSampler(data, length, validation=validation, seed=seed)
        except DreamorError:
            continue
        x, c, rest = s.sample(n)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
        return t(x), t(c), t(rest), "validation" if validation else "training (no long enough held-out take)"
    raise DreamorError(f"no clip has {length} frames")


# ----------------------------------------------------------------------------- 1 + 2: denoising
@torch.no_grad()
def denoising(vae: MotionVAE, prior: LatentDiffusion, data: MotionData, dev: torch.device, k: int,
              guidances: list[float], n_windows: int) -> dict:
    x, _, rest, split = val_windows(data, 31, n_windows, dev)
    prev, cur = x[:, :-1], x[:, 1:]
    z, _ = vae.encode(prev, cur, rest)  # (W, 30, Z) posterior means
    cond = vae_condition(vae, prev, rest)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(z.shape, generator=g).to(dev)
    gt = regressed_joints(cur)

    def joint_err(zz: torch.Tensor) -> tuple[float, float]:
        one, _ = vae.decode(prev, zz, rest)
        roll = vae.rollout(x[:, 0], zz, rest).states
        e1 = (fk_joints(one, rest) - gt).norm(dim=-1).mean()
        er = (fk_joints(roll, rest) - gt).norm(dim=-1).mean()
        return 100 * float(e1), 100 * float(er)

    rows = []
    clean1, cleanr = joint_err(z)
    for f in DENOISE_LEVELS:
        t = prior.schedule.timestep_at(f)
        noised = prior.unnormalize(prior.schedule.add_noise(prior.normalize(z), noise, t))
        n1, nr = joint_err(noised)
        row = {"t_frac": f, "t": t, "mse_noised": float((noised - z).square().mean()),
               "joint_cm_noised": n1, "rollout_cm_noised": nr}
        for w in guidances:
            zhat = prior.denoise(z, cond, t, k, guidance=w, noise=noise)
            d1, dr = joint_err(zhat)
            row[f"mse_denoised_w{w:g}"] = float((zhat - z).square().mean())
            row[f"joint_cm_denoised_w{w:g}"] = d1
            row[f"rollout_cm_denoised_w{w:g}"] = dr
        rows.append(row)
    return {"split": split, "windows": n_windows, "frames": 30, "K": k, "guidances": guidances,
            "joint_cm_clean": clean1, "rollout_cm_clean": cleanr, "latent_var": float(z.var(dim=(0, 1)).mean()),
            "rows": rows}


# ----------------------------------------------------------------------------- 3: samples
def motion_stats(states: torch.Tensor, rest: torch.Tensor) -> dict:
    """states (B, T, 273) -> plausibility figures (see the module docstring)."""
    reg = regressed_joints(states)
    fk = fk_joints(states, rest)
    ref = bone_lengths(rest)[:, None]  # (B, 1, 21)
    dev = ((bone_lengths(reg) / ref) - 1).abs().amax(-1)  # (B, T) worst bone per frame
    feet_fk = fk[..., FEET, 2].amin(-1)  # (B, T) lowest foot, m
    feet_reg = reg[..., FEET, 2].amin(-1)
    root = fk[..., 0, :2]
    speed = (root[:, 1:] - root[:, :-1]).norm(dim=-1) * 30
    acc = (fk[:, 2:] - 2 * fk[:, 1:-1] + fk[:, :-2]).norm(dim=-1).mean() * 900
    return {
        "bone_dev_pct_mean": 100 * float(dev.mean()), "bone_dev_pct_p95": 100 * float(dev.flatten().quantile(0.95)),
        "frames_bones_within_2pct": float((dev <= 0.02).float().mean()),
        "foot_min_cm_fk": 100 * float(feet_fk.min()), "foot_min_cm_regressed": 100 * float(feet_reg.min()),
        "frames_feet_above_-5cm_fk": float((feet_fk >= -0.05).float().mean()),
        "frames_feet_above_-5cm_regressed": float((feet_reg >= -0.05).float().mean()),
        "root_speed_ms": float(speed.mean()), "accel_ms2": float(acc),
        "frames_pelvis_0.3_1.5m_fk": float(((fk[..., 0, 2] >= 0.3) & (fk[..., 0, 2] <= 1.5)).float().mean()),
        "pelvis_height_m_fk_p5_p95": [float(fk[..., 0, 2].flatten().quantile(q)) for q in (0.05, 0.95)],
        "finite": bool(torch.isfinite(states).all()),
    }


@torch.no_grad()
def diffusion_rollout(vae: MotionVAE, prior: LatentDiffusion, x0: torch.Tensor, rest: torch.Tensor, steps: int,
                      k: int, guidance: float | None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x, out = x0, []
    for _ in range(steps):
        z = prior.sample(vae_condition(vae, x, rest), num_steps=k, guidance=guidance, generator=g)
        x, _ = vae.decode(x, z, rest)
        out.append(x)
    return torch.stack(out, dim=1)


@torch.no_grad()
def samples(vae: MotionVAE, prior: LatentDiffusion, data: MotionData, dev: torch.device, k: int, seconds: float,
            n: int) -> dict:
    steps = int(round(30 * seconds))
    x, _, rest, split = val_windows(data, 1, n, dev, seed=11)
    x0 = x[:, 0]
    res: dict = {"split": split, "rollouts": n, "frames": steps, "K": k, "guidance": prior.config.guidance}
    for key, w in (("diffusion", None), ("diffusion_w1", 1.0)):
        if key == "diffusion_w1" and prior.config.guidance == 1.0:
            continue
        t0 = time.perf_counter()
        res[key] = motion_stats(diffusion_rollout(vae, prior, x0, rest, steps, k, w), rest)
        res[key]["seconds"] = time.perf_counter() - t0
    g = torch.Generator(device=dev).manual_seed(0) if dev.type == "cuda" else torch.Generator().manual_seed(0)
    if getattr(vae, "prior_fitted", False):
        res["vae_prior"] = motion_stats(vae.sample(x0, steps, rest, use_prior=True, generator=g).states, rest)
    res["standard_normal"] = motion_stats(vae.sample(x0, steps, rest, use_prior=False, generator=g).states, rest)
    # the held-out clips themselves (as long as there are such clips)
    for length in (steps + 1, 151, 61):
        try:
            gt, _, gt_rest, _ = val_windows(data, length, n, dev, seed=13)
        except DreamorError:
            continue
        res["ground_truth"] = {**motion_stats(gt, gt_rest), "frames": length}
        break
    return res


# ----------------------------------------------------------------------------- 4: speed
@torch.no_grad()
def speed(vae: MotionVAE, prior: LatentDiffusion, data: MotionData, dev: torch.device, k: int, repeats: int) -> dict:
    x, _, rest, split = val_windows(data, 300, 1, dev, seed=3)
    prev, cur = x[:, :-1], x[:, 1:]
    z, _ = vae.encode(prev, cur, rest)
    cond = vae_condition(vae, prev, rest)
    t = torch.randint(0, prior.schedule.num_train_timesteps, z.shape[:-1], generator=torch.Generator().manual_seed(0))
    t = t.to(dev)
    call = lambda: prior.denoise(z, cond, t, k)  # noqa: E731
    call()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        call()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    _sync(dev)
    t0 = time.perf_counter()
    for i in range(z.shape[1]):  # baseline: latent by latent
        prior.denoise(z[:, i], cond[:, i], t[:, i], k)
    _sync(dev)
    loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    vae_condition(vae, prev, rest)
    vae.encode(prev, cur, rest)
    _sync(dev)
    encode = time.perf_counter() - t0
    batched = statistics.median(times)
    return {"split": split, "latents": int(z.shape[1]), "K": k, "guidance": prior.config.guidance,
            "batched_s": batched, "batched_s_all": times, "per_latent_loop_s": loop, "speedup": loop / batched,
            "vae_encode_and_condition_s": encode}


# ----------------------------------------------------------------------------- report
def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def markdown(r: dict) -> str:
    d, s, sp = r["denoising"], r["samples"], r["speed"]
    ws = d["guidances"]
    out = [f"### Latent diffusion prior ({r['diffusion']}, on {r['vae']})", "",
           f"Device: {r['device']}. Held-out data: {d['split']} split.", "",
           f"**Denoising** ({d['windows']} windows x {d['frames']} latents; K = {d['K']} DDIM steps; "
           f"latent variance {d['latent_var']:.3g}). MSE to the clean latents, and joint error (cm) of one-step "
           f"decoding from ground-truth x_(t-1) / of 1 s rollouts from x_0 "
           f"(clean latents: {d['joint_cm_clean']:.2f} / {d['rollout_cm_clean']:.2f} cm).", "",
           "| t'/T | MSE noised | " + " | ".join(f"MSE ẑ (ω={w:g})" for w in ws)
           + " | joints noised | " + " | ".join(f"joints ẑ (ω={w:g})" for w in ws) + " |",
           "|---" * (2 + 2 * len(ws) + 1) + "|"]
    for row in d["rows"]:
        out.append(f"| {row['t_frac']:g} | {row['mse_noised']:.4f} | "
                   + " | ".join(f"{row[f'mse_denoised_w{w:g}']:.4f}" for w in ws)
                   + f" | {row['joint_cm_noised']:.2f} / {row['rollout_cm_noised']:.2f} | "
                   + " | ".join(f"{row[f'joint_cm_denoised_w{w:g}']:.2f} / {row[f'rollout_cm_denoised_w{w:g}']:.2f}"
                                for w in ws) + " |")
    out += ["", f"**Samples** ({s['rollouts']} rollouts x {s['frames']} frames from held-out start states; diffusion: "
            f"K = {s['K']}, ω = {s['guidance']:g}).", "",
            "| z_t drawn from | bones within 2 % (frames) | worst bone dev. mean / p95 (%) | lowest foot FK / regressed (cm) "
            "| feet above -5 cm FK / regressed (frames) | pelvis 0.3-1.5 m FK (frames) | root speed (m/s) | accel (m/s²) |",
            "|---|---|---|---|---|---|---|---|"]
    names = {"diffusion": f"diffusion prior (ω = {s['guidance']:g})", "diffusion_w1": "diffusion prior (ω = 1, no CFG)",
             "vae_prior": "VAE Gaussian prior", "standard_normal": "N(0, I)",
             "ground_truth": "held-out clips (reference)"}
    for key, name in names.items():
        if key not in s:
            continue
        m = s[key]
        out.append(f"| {name} | {100 * m['frames_bones_within_2pct']:.1f} % | {m['bone_dev_pct_mean']:.2f} / "
                   f"{m['bone_dev_pct_p95']:.2f} | {m['foot_min_cm_fk']:.1f} / {m['foot_min_cm_regressed']:.1f} | "
                   f"{100 * m['frames_feet_above_-5cm_fk']:.1f} % / {100 * m['frames_feet_above_-5cm_regressed']:.1f} % | "
                   f"{100 * m['frames_pelvis_0.3_1.5m_fk']:.1f} % | {m['root_speed_ms']:.2f} | {m['accel_ms2']:.2f} |")
    out += ["", f"**Speed**: denoising all {sp['latents']} latents of a 300-frame clip (K = {sp['K']}, CFG "
            f"ω = {sp['guidance']:g}, per-latent random t') in one batched call: **{sp['batched_s']:.3f} s** (median of "
            f"{len(sp['batched_s_all'])}); latent by latent: {sp['per_latent_loop_s']:.2f} s "
            f"({sp['speedup']:.0f}x slower); VAE encoding + conditions of the clip: {sp['vae_encode_and_condition_s']:.3f} s.",
            ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vae", required=True)
    ap.add_argument("--diffusion", required=True)
    ap.add_argument("--data", action="append", metavar="PATH[:WEIGHT]", help="default: the training data's sources")
    ap.add_argument("--cache", default=str(REPO_ROOT / "cache"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=10, help="DDIM steps K (denoising, sampling, speed)")
    ap.add_argument("--guidance", type=float, default=None, help="CFG scale ω (default: the checkpoint's)")
    ap.add_argument("--windows", type=int, default=64, help="held-out windows of 30 transitions for denoising")
    ap.add_argument("--rollouts", type=int, default=16, help="sampled rollouts")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the sampled rollouts")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the speed benchmark")
    ap.add_argument("--only", choices=("denoising", "samples", "speed"), action="append")
    ap.add_argument("--out-md", default=None)
    ap.add_argument("--out-json", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    vae = load_vae(a.vae, dev)
    prior = load_prior(a.diffusion, a.vae, dev)
    if a.guidance is not None:
        prior.config.guidance = a.guidance
    sources = [parse_data_spec(s) for s in a.data] if a.data else default_sources()
    data = build_motion_data(sources, a.cache)
    parts = a.only or ["denoising", "samples", "speed"]
    r: dict = {"vae": Path(a.vae).name, "diffusion": Path(a.diffusion).name, "device": device_name(dev)}
    torch.manual_seed(0)
    if "denoising" in parts:
        r["denoising"] = denoising(vae, prior, data, dev, a.steps, [1.0, prior.config.guidance], a.windows)
        print(json.dumps(r["denoising"], indent=1), file=sys.stderr)
    if "samples" in parts:
        r["samples"] = samples(vae, prior, data, dev, a.steps, a.seconds, a.rollouts)
        print(json.dumps(r["samples"], indent=1), file=sys.stderr)
    if "speed" in parts:
        r["speed"] = speed(vae, prior, data, dev, a.steps, a.repeats)
        print(json.dumps(r["speed"], indent=1), file=sys.stderr)
    if a.out_json:
        Path(a.out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out_json).write_text(json.dumps(r, indent=1))
    if set(parts) == {"denoising", "samples", "speed"}:
        md = markdown(r)
        print(md)
        if a.out_md:
            Path(a.out_md).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out_md).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
