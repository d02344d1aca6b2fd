"""`dreamor train window-prior`: train the window prior (``models.window_prior``).

The same windows, occlusions, noise on what stays visible, random bodies and mirror images as the
joint-completion network (``train.train_infill``: its ``make_batch`` and ``random_mask``). Each
window's clean body-frame joints are normalised, noised to a random timestep of the cosine schedule
and the network predicts them back (x0); loss: squared error in normalised units, hidden joints
weighted 1 and visible ones ``visible_weight``. The condition is replaced by the null vector in a
share ``p_uncond`` of windows (classifier-free guidance). ``--init`` warm-starts the trunk from a
trained completion network (``WindowPrior.warm_start``).

Validation, lower body hidden (the default split on the takes' own bodies, the unseen-subject split
on random bodies): ``samples_per_window`` completions by DDIM (``SampleConfig``) of fixed windows ->
mean error of one sample on the hidden joints, of the samples' mean, of the best sample, the mean
pairwise distance of the samples, the leg-speed ratio (root-relative speed of the hidden joints,
samples / truth) and the energy score (mean error - half the mean pairwise distance, a proper
scoring rule: lower is better, the figure the best checkpoint is kept by, on the unseen split).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..body.proportions import BodyAugment
from ..data.dataset import WindowSampler, build_motion_data
from ..errors import DreamorError
from ..models.configs import _from_dict
from ..models.infill import load_infill
from ..models.window_prior import (SampleConfig, WindowPrior, WindowPriorConfig, denoise_local, read_window_prior,
                                   save_window_prior)
from ..models.schedule import randn
from .common import REPO_ROOT, lr_at, preset_config, training_paths
from .train_infill import _window_joints, data_summary, make_batch, random_mask, validation_sets


@dataclass
class WindowPriorTrainConfig:
    preset: str = "small"
    model: WindowPriorConfig = field(default_factory=WindowPriorConfig)
    window: int = 96
    batch_size: int = 48
    steps: int = 12_000
    lr: float = 5e-4
    lr_min_frac: float = 0.05
    warmup_steps: int = 300
    weight_decay: float = 1e-4
    visible_weight: float = 0.2
    p_uncond: float = 0.1
    val_every: int = 1000
    val_windows: int = 64
    samples_per_window: int = 4
    ckpt_every: int = 250
    seed: int = 0
    body_augment: BodyAugment | None = field(default_factory=lambda: BodyAugment(p_mirror=0.5))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WindowPriorTrainConfig":
        return _from_dict(cls, d)


PRESETS = {
    "small": WindowPriorTrainConfig(),
    # half the windows played at 0.8-1.6 x their speed (``BodyAugment.p_tempo``): for a fine-tune of ``small``
    "small-tempo": WindowPriorTrainConfig(preset="small-tempo",
                                          body_augment=BodyAugment(p_mirror=0.5, p_tempo=0.5, tempo=(0.8, 1.6))),
    "gpu": WindowPriorTrainConfig(preset="gpu", batch_size=256, steps=40_000, val_every=2000, val_windows=512),
    "tiny": WindowPriorTrainConfig(preset="tiny", model=WindowPriorConfig(
        trunk=WindowPriorConfig().trunk.__class__(channels=16, dilations=(1, 2)), time_dim=16),
        window=32, batch_size=4, steps=4, warmup_steps=0, val_every=2, val_windows=4, samples_per_window=2,
        ckpt_every=2),
}


def leg_speed(local: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Mean root-relative speed (m/frame) of the hidden joints: local (..., T, 22, 3), hidden (T, 22) or (..., T, 22)."""
    rel = local - local[..., :1, :]
    speed = (rel[..., 1:, :, :] - rel[..., :-1, :, :]).norm(dim=-1)
    h = (hidden[..., 1:, :] & hidden[..., :-1, :]).expand_as(speed)
    return (speed * h).flatten(-2).sum(-1) / h.flatten(-2).sum(-1).clamp(min=1)


def sample_metrics(samples: torch.Tensor, target: torch.Tensor, visible: torch.Tensor) -> dict[str, float]:
    """samples (N, B, T, 22, 3), target (B, T, 22, 3), visible (B, T, 22) -> the validation figures (cm)."""
    hidden = ~visible
    err = (samples - target).norm(dim=-1)[:, hidden]  # (N, hidden joint-frames)
    n = len(samples)
    pair = [(samples[i] - samples[j]).norm(dim=-1)[hidden].mean() for i in range(n) for j in range(i + 1, n)]
    spread = torch.stack(pair).mean().item() if pair else 0.0
    per_window = (samples - target).norm(dim=-1).masked_fill(visible, 0).sum((-1, -2)) / hidden.sum((-1, -2)).clamp(min=1)
    ratio = (leg_speed(samples, hidden) / leg_speed(target, hidden).clamp(min=1e-6)).mean().item()
    return {"sample_cm": err.mean().item() * 100,
            "mean_cm": (samples.mean(0) - target).norm(dim=-1)[hidden].mean().item() * 100,
            "best_cm": per_window.min(0).values.mean().item() * 100,
            "spread_cm": spread * 100,
            "leg_speed_ratio": ratio,
            "energy_cm": err.mean().item() * 100 - 0.5 * spread * 100}


def validate_samples(model: WindowPrior, val, num: int, cfg: SampleConfig | None = None, seed: int = 0) -> dict:
    """``num`` DDIM samples of every window of a ``_val_batch`` -> ``sample_metrics``."""
    _, _, _, feat, target, mask = val
    gen = torch.Generator().manual_seed(seed)
    t_start = model.schedule.timestep_at((cfg or SampleConfig()).t_start)
    samples = []
    for _ in range(num):
        noise = randn((len(feat), feat.shape[1], target.shape[-2] * 3), gen, feat)
        samples.append(denoise_local(model, feat, noise, t_start, cfg or SampleConfig(), gen))
    return sample_metrics(torch.stack(samples), target, mask)


def train_window_prior(cfg: WindowPriorTrainConfig, out: Path, sources, resume: bool = False, device: str = "cpu",
                       cache_dir: Path | None = None, workers: int = 0, quiet: bool = False,
                       init: Path | None = None) -> dict[str, float]:
    """Train (or resume) and write the checkpoint to ``out``; returns the last validation metrics."""
    data = build_motion_data(sources, cache_dir or REPO_ROOT / "cache", workers=workers, quiet=quiet)
    torch.manual_seed(cfg.seed)
    model = WindowPrior(cfg.model)
    step, seconds, metrics = 0, 0.0, {}
    opt_state = None
    if resume:
        ckpt = read_window_prior(out)
        model.load_state_dict(ckpt["model"])
        opt_state = ckpt.get("optimizer")
        step, seconds, metrics = ckpt["step"], ckpt.get("seconds", 0.0), ckpt.get("metrics", {})
    else:
        rng = np.random.default_rng(cfg.seed)
        states, _, rest = WindowSampler(data, cfg.window, seed=cfg.seed, augment=cfg.body_augment).sample(256)
        masks = np.stack([random_mask(cfg.window, rng) for _ in states])
        feat, target, _ = make_batch(_window_joints(states), rest.astype(np.float64), masks, np.zeros(len(states)), rng)
        if init is not None:
            model.warm_start(load_infill(init))
        else:
            flat = feat.reshape(-1, feat.shape[-1])
            model.feat_mean.copy_(flat.mean(0))
            model.feat_std.copy_(flat.std(0).clamp_min(1e-2))
        joints = target.reshape(-1, target.shape[-2] * 3)
        model.joint_mean.copy_(joints.mean(0))
        model.joint_std.copy_(joints.std(0).clamp_min(0.03))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    sampler = WindowSampler(data, cfg.window, seed=cfg.seed + step, augment=cfg.body_augment)
    rng = np.random.default_rng(cfg.seed + step)
    gen = torch.Generator().manual_seed(cfg.seed + step)

    vals = validation_sets(data, cfg, device)
    best_key = "unseen_energy_cm" if "unseen" in vals else "val_energy_cm"
    best_path = out.with_name(out.stem + "-best.pt")
    history = list(metrics.get("history", []))
    best = min((h[best_key] for h in history if best_key in h), default=float("inf"))

    def save(final: bool = False, path: Path = out) -> None:
        extra = {} if final else {"optimizer": opt.state_dict()}
        save_window_prior(path, model, step=step, seconds=seconds, metrics=metrics, train_config=cfg.to_dict(),
                          data=data_summary(data), **extra)

    bar = tqdm(total=cfg.steps, initial=step, desc="train window prior", disable=quiet, unit="step")
    schedule = model.schedule
    while step < cfg.steps:
        t0 = time.perf_counter()
        model.train()
        states, _, rest = sampler.sample(cfg.batch_size)
        masks = np.stack([random_mask(cfg.window, rng) for _ in states])
        sigma = np.where(rng.random(len(states)) < 0.5, rng.uniform(0.0, 0.04, len(states)), 0.0)
        feat, target, mask = (t.to(device) for t in make_batch(_window_joints(states), rest.astype(np.float64), masks, sigma, rng))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        x0 = model.normalise(target)
        t = torch.randint(0, schedule.num_train_timesteps, (len(x0),), generator=gen).to(device)
        noisy = schedule.add_noise(x0, randn(x0.shape, gen, x0), t)
        uncond = (torch.rand(len(x0), generator=gen) < cfg.p_uncond).to(device)
        pred = model.normalise(model(feat, noisy, t, uncond=uncond))
        err = (pred - x0).square().unflatten(-1, (-1, 3)).sum(-1)
        w = torch.where(mask, torch.full_like(err, cfg.visible_weight), torch.ones_like(err))
        loss = (err * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seconds += time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            model.eval()
            now: dict[str, Any] = {"step": step, "seconds": round(seconds, 1)}
            for name, v in vals.items():
                now.update({f"{name}_{k}": round(x, 4) for k, x in validate_samples(model, v, cfg.samples_per_window).items()})
            history.append(now)
            metrics = {**now, "history": history}
            bar.write(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in now.items() if k not in ("step",)))
            if now[best_key] < best:
                best = now[best_key]
                save(final=True, path=best_path)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save(final=step == cfg.steps)
    bar.close()
    return metrics


def run_train_window_prior(args) -> int:
    """CLI entry for `dreamor train window-prior`."""
    cfg = preset_config(args, PRESETS)
    sources, out, cache = training_paths(args, "window-prior", cfg.preset)
    init = Path(args.init) if args.init else None
    if init is not None and not init.is_file():
        raise DreamorError(f"--init {init}: no such completion-network checkpoint")
    m = train_window_prior(cfg, out, sources, resume=args.resume, device=args.device, cache_dir=cache,
                           workers=args.workers, quiet=args.quiet, init=None if args.resume else init)
    if m:
        print("validation: " + ", ".join(f"{k} {v}" for k, v in m.items() if k != "history"))
    print(f"wrote {out}")
    return 0
