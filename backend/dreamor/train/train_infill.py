"""`dreamor train infill`: train the joint-completion network (``models.infill``).

Windows of ``window`` frames from the training split (the same data, split and clip weights
as the MotionVAE). Each window gets a random occlusion as users and the evaluation make them:
the lower body for the whole window, limb gaps of 0.3-2 s, or a random joint group over a
random span; half the windows also get Gaussian noise (sigma up to 4 cm) on what stays visible.
Loss: L1 distance of the predicted body-frame joints to the clean ones, hidden joints weighted
1 and visible ones ``visible_weight``. AdamW, warmup + cosine decay, resumable checkpoints.

Every window is put on a random body (``bodies.BodyAugment``, ``body_augment`` in the config):
the network must work on any proportions; sizes are normalised before it sees them.

Validation, lower body hidden, mean error of the completed hidden joints: ``val_hidden_cm`` (the
default split, each take on its own body), ``val_bodies_hidden_cm`` (the same takes on random
bodies) and ``unseen_hidden_cm`` (the unseen-subject split on random bodies, the figure the best
checkpoint is chosen by), next to ``val_rest_cm``, the rest-pose guess the refinement used
before (``evaluate.baselines.run_input``). The best checkpoint so far is kept beside the output
as ``<name>-best.pt``.
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
from ..body.skeleton import JOINT_GROUPS, MODEL_FPS, NUM_JOINTS
from ..body.state import STATE_SLICES
from ..data.dataset import MotionData, WindowSampler, build_motion_data
from ..errors import DreamorError
from ..evaluate.occlusion import OcclusionConfig, visibility_mask
from ..models.configs import _from_dict
from ..models.infill import InfillConfig, JointInfill, features, read_infill, save_infill, to_body
from .common import REPO_ROOT, lr_at, preset_config, training_paths

_RANDOM_GROUPS = ("left_leg", "right_leg", "legs", "lower_body", "left_arm", "right_arm", "feet", "spine")


@dataclass
class InfillTrainConfig:
    preset: str = "small"
    model: InfillConfig = field(default_factory=InfillConfig)
    window: int = 96
    batch_size: int = 48
    steps: int = 4000
    lr: float = 1e-3
    lr_min_frac: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    visible_weight: float = 0.2
    val_every: int = 500
    val_windows: int = 256
    ckpt_every: int = 250
    seed: int = 0
    #: random bodies per window (None: each take on its own body, as before session 6); half the
    #: windows mirrored left/right first (session 7).
    body_augment: BodyAugment | None = field(default_factory=lambda: BodyAugment(p_mirror=0.5))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InfillTrainConfig":
        return _from_dict(cls, d)


PRESETS = {
    "small": InfillTrainConfig(),
    "gpu": InfillTrainConfig(preset="gpu", model=InfillConfig(channels=256), batch_size=256, steps=30_000,
                             val_every=2000, val_windows=2048, ckpt_every=2000),
    "tiny": InfillTrainConfig(preset="tiny", model=InfillConfig(channels=16, dilations=(1, 2)), window=32,
                              batch_size=4, steps=4, warmup_steps=0, val_every=2, val_windows=4, ckpt_every=2),
}


def random_mask(length: int, rng: np.random.Generator) -> np.ndarray:
    """(L, 22) bool visibility: lower body (40 %), limb gaps (30 %) or a random group over a random span."""
    r = rng.random()
    if r < 0.4:
        return visibility_mask("lower_body", length, MODEL_FPS, rng)
    if r < 0.7:
        return visibility_mask("limb_gaps", length, MODEL_FPS, rng, OcclusionConfig(gaps_per_second=1.0))
    vis = np.ones((length, NUM_JOINTS), bool)
    span = min(length, int(rng.uniform(0.3, 3.0) * MODEL_FPS))
    start = int(rng.integers(length - span + 1))
    vis[start:start + span, list(JOINT_GROUPS[_RANDOM_GROUPS[rng.integers(len(_RANDOM_GROUPS))]])] = False
    return vis


def make_batch(joints: np.ndarray, rest: np.ndarray, masks: np.ndarray, noise_sigma: np.ndarray,
               rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean joints (B, L, 22, 3), rest (B, 22, 3), masks (B, L, 22), sigma (B,) ->
    features (B, L, F), body-frame targets (B, L, 22, 3), masks (B, L, 22) as tensors."""
    feats, targets = [], []
    for j, r, vis, s in zip(joints, rest, masks, noise_sigma):
        noisy = j + rng.normal(0.0, s, j.shape) if s > 0 else j
        f, origin, yaw = features(noisy, vis, r)
        feats.append(f)
        targets.append(to_body(j, origin, yaw))
    return (torch.from_numpy(np.stack(feats)), torch.from_numpy(np.stack(targets)).float(), torch.from_numpy(masks))


def _window_joints(states: np.ndarray) -> np.ndarray:
    return states[..., STATE_SLICES["joints"]].reshape(*states.shape[:-1], NUM_JOINTS, 3).astype(np.float64)


def _val_batch(data: MotionData, cfg: InfillTrainConfig, split: str = "val", bodies: bool = False):
    """Fixed validation windows of one split (on random bodies when ``bodies``), lower body hidden."""
    sampler = WindowSampler(data, cfg.window, split=split, seed=1234, augment=BodyAugment() if bodies else None)
    rng = np.random.default_rng(1234)
    states, _, rest = sampler.sample(cfg.val_windows)
    joints = _window_joints(states)
    masks = np.stack([visibility_mask("lower_body", cfg.window, MODEL_FPS, rng) for _ in joints])
    feat, target, mask = make_batch(joints, rest.astype(np.float64), masks, np.zeros(len(joints)), rng)
    return joints, rest.astype(np.float64), masks, feat, target, mask


def on_device(val, device) -> tuple:
    """A ``_val_batch`` with its tensors on ``device``."""
    return (*val[:3], *(t.to(device) for t in val[3:]))


def validation_sets(data: MotionData, cfg, device) -> dict:
    """The fixed validation windows of the sampling models, lower body hidden: ``val`` (the default split on the
    takes' own bodies) and ``unseen`` (the unseen-subject split on random bodies, where it has long enough takes)."""
    vals = {"val": on_device(_val_batch(data, cfg), device)}
    if data.is_unseen.any():
        try:
            vals["unseen"] = on_device(_val_batch(data, cfg, "unseen", bodies=True), device)
        except DreamorError:  # no unseen take is long enough
            pass
    return vals


def data_summary(data: MotionData) -> dict[str, int]:
    """What a checkpoint records of its training data: clips per split and frames."""
    return {"train_clips": int(data.is_train.sum()), "val_clips": int(data.is_val.sum()),
            "unseen_clips": int(data.is_unseen.sum()), "frames": int(len(data.states))}


def hidden_error_cm(model: JointInfill, val) -> float:
    """Mean error (cm) of the hidden joints of a validation batch (``_val_batch``)."""
    _, _, _, feat, target, mask = val
    with torch.no_grad():
        pred = model(feat)
    return (pred - target).norm(dim=-1)[~mask].mean().item() * 100


def validate(model: JointInfill, val) -> dict[str, float]:
    from ..data.clip import Clip
    from ..evaluate.baselines import run_input

    joints, rest, masks, feat, target, mask = val
    err = hidden_error_cm(model, val)
    rest_err = []
    for j, r, vis in zip(joints, rest, masks):
        obs = Clip(trans=j[:, 0] - r[0], root_orient=np.zeros((len(j), 3)), pose_body=np.zeros((len(j), 63)), fps=MODEL_FPS,
                   rest_joints=r, joints=np.where(vis[..., None], j, np.nan), visible=vis)
        guess = run_input(obs).joints
        rest_err.append(np.linalg.norm(guess - j, axis=-1)[~vis])
    return {"val_hidden_cm": err, "val_rest_cm": float(np.concatenate(rest_err).mean() * 100)}


def train_infill(cfg: InfillTrainConfig, out: Path, sources, resume: bool = False, device: str = "cpu",
                 cache_dir: Path | None = None, workers: int = 0, quiet: bool = False) -> dict[str, float]:
    """Train (or resume) and write the checkpoint to ``out``; returns the last validation metrics."""
    data = build_motion_data(sources, cache_dir or REPO_ROOT / "cache", workers=workers, quiet=quiet)
    torch.manual_seed(cfg.seed)
    model = JointInfill(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, seconds, metrics = 0, 0.0, {}
    if resume:
        ckpt = read_infill(out)
        model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:  # the final checkpoint drops it (size); resuming then restarts Adam's moments
            opt.load_state_dict(ckpt["optimizer"])
        step, seconds, metrics = ckpt["step"], ckpt.get("seconds", 0.0), ckpt.get("metrics", {})
    else:  # feature normalisation from a sample of training windows
        rng = np.random.default_rng(cfg.seed)
        states, _, rest = WindowSampler(data, cfg.window, seed=cfg.seed, augment=cfg.body_augment).sample(256)
        masks = np.stack([random_mask(cfg.window, rng) for _ in states])
        feat, _, _ = make_batch(_window_joints(states), rest.astype(np.float64), masks, np.zeros(len(states)), rng)
        flat = feat.reshape(-1, feat.shape[-1])
        model.feat_mean.copy_(flat.mean(0))
        model.feat_std.copy_(flat.std(0).clamp_min(1e-2))
    model.to(device)
    sampler = WindowSampler(data, cfg.window, seed=cfg.seed + step, augment=cfg.body_augment)
    rng = np.random.default_rng(cfg.seed + step)

    val = on_device(_val_batch(data, cfg), device)
    extra_vals = {"val_bodies_hidden_cm": on_device(_val_batch(data, cfg, "val", bodies=True), device)}
    if data.is_unseen.any():
        try:
            extra_vals["unseen_hidden_cm"] = on_device(_val_batch(data, cfg, "unseen", bodies=True), device)
        except DreamorError:  # no unseen take is long enough
            pass
    best_key = "unseen_hidden_cm" if "unseen_hidden_cm" in extra_vals else "val_bodies_hidden_cm"
    best_path = out.with_name(out.stem + "-best.pt")
    history = list(metrics.get("history", []))
    best = min((h[best_key] for h in history if best_key in h), default=float("inf"))

    def save(final: bool = False, path: Path = out) -> None:
        extra = {} if final else {"optimizer": opt.state_dict()}
        save_infill(path, model, step=step, seconds=seconds, metrics=metrics, train_config=cfg.to_dict(),
                    data=data_summary(data), **extra)

    bar = tqdm(total=cfg.steps, initial=step, desc="train infill", disable=quiet, unit="step")
    while step < cfg.steps:
        t0 = time.perf_counter()
        model.train()
        states, _, rest = sampler.sample(cfg.batch_size)
        masks = np.stack([random_mask(cfg.window, rng) for _ in states])
        sigma = np.where(rng.random(len(states)) < 0.5, rng.uniform(0.0, 0.04, len(states)), 0.0)
        feat, target, mask = (t.to(device) for t in make_batch(_window_joints(states), rest.astype(np.float64), masks, sigma, rng))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        err = (model(feat) - target).abs().sum(-1)
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
            now = {**validate(model, val), **{k: hidden_error_cm(model, v) for k, v in extra_vals.items()},
                   "step": step, "seconds": round(seconds, 1)}
            history.append(now)
            metrics = {**now, "history": history}
            bar.write(f"step {step}: hidden joints {now['val_hidden_cm']:.2f} cm, on random bodies "
                      f"{now['val_bodies_hidden_cm']:.2f}, unseen subjects {now.get('unseen_hidden_cm', float('nan')):.2f} "
                      f"(rest-pose guess {now['val_rest_cm']:.2f} cm)")
            if now[best_key] < best:
                best = now[best_key]
                save(final=True, path=best_path)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save(final=step == cfg.steps)
    bar.close()
    return metrics


def run_train_infill(args) -> int:
    """CLI entry for `dreamor train infill`."""
    cfg = preset_config(args, PRESETS)
    sources, out, cache = training_paths(args, "infill", cfg.preset)
    m = train_infill(cfg, out, sources, resume=args.resume, device=args.device, cache_dir=cache, workers=args.workers,
                     quiet=args.quiet)
    if m:
        print(f"validation: hidden joints {m['val_hidden_cm']:.2f} cm (rest-pose guess {m['val_rest_cm']:.2f} cm)")
    print(f"wrote {out}")
    return 0
