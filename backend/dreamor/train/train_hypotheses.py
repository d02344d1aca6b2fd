"""`dreamor train hypotheses`: train the hypotheses network (``models.hypotheses``).

The same windows, occlusions, noise on what stays visible, random bodies and mirror images as the
joint-completion network (``train.train_infill``). Loss, per window: every head's mean distance (m) on
the hidden joints; relaxed winner-takes-all (the closest head weighted 1 - ``epsilon``, every head
``epsilon`` / heads besides, ``epsilon`` falling from ``epsilon_start`` to ``epsilon_end`` over the first
half of training); after ``solo_frac`` of the steps the frozen completion network's mean guess competes
too (a window it wins pulls the heads by ``epsilon`` only: the heads learn what the mean guess misses);
``visible_weight`` x the heads' mean L1 on the visible joints; the score: cross-entropy towards the
winner (the mean guess included), on the trunk's features without bending them.

Validation, lower body hidden (the default split on the takes' own bodies, the unseen-subject split on
random bodies), fixed windows: the mean guess's error, the heads', the best of the mean guess and the
heads per window (the figure the best checkpoint is kept by, on the unseen split), its ratio to the mean
guess, the heads' mean pairwise distance and how often the score's favourite is the closest.
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
from ..models.hypotheses import HypothesesConfig, JointHypotheses, read_hypotheses, save_hypotheses
from ..models.infill import load_infill
from .common import REPO_ROOT, lr_at, preset_config, training_paths
from .train_infill import _window_joints, data_summary, make_batch, random_mask, validation_sets


@dataclass
class HypothesesTrainConfig:
    preset: str = "small"
    model: HypothesesConfig = field(default_factory=HypothesesConfig)
    window: int = 150
    batch_size: int = 32
    steps: int = 6000
    lr: float = 3e-4
    lr_min_frac: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    visible_weight: float = 0.1
    epsilon_start: float = 0.2
    epsilon_end: float = 0.02
    solo_frac: float = 0.2
    score_weight: float = 0.01
    #: train the heads (and the score) only, the trunk kept as warm-started: a winner then pulls its own head alone,
    #: instead of every head through the shared trunk (which makes all of them better predictors, not different ones)
    freeze_trunk: bool = False
    val_every: int = 500
    val_windows: int = 96
    ckpt_every: int = 250
    seed: int = 0
    body_augment: BodyAugment | None = field(default_factory=lambda: BodyAugment(p_mirror=0.5))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HypothesesTrainConfig":
        return _from_dict(cls, d)


PRESETS = {
    "small": HypothesesTrainConfig(),
    # the trunk frozen as warm-started, the heads alone trained (quicker per step; see ``freeze_trunk``)
    "small-heads": HypothesesTrainConfig(preset="small-heads", freeze_trunk=True, steps=3000, lr=1e-3),
    "gpu": HypothesesTrainConfig(preset="gpu", batch_size=256, steps=30_000, val_every=2000, val_windows=512),
    "tiny": HypothesesTrainConfig(preset="tiny", model=HypothesesConfig(
        trunk=HypothesesConfig().trunk.__class__(channels=16, dilations=(1, 2)), heads=2),
        window=32, batch_size=4, steps=4, warmup_steps=0, val_every=2, val_windows=4, ckpt_every=2),
}


def window_errors(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """pred (B, H, T, 22, 3), target (B, T, 22, 3), hidden (B, T, 22) -> (B, H) mean distance (m) on hidden joints."""
    dist = (pred - target[:, None]).square().sum(-1).add(1e-10).sqrt()
    h = hidden[:, None].float()
    return (dist * h).sum((-1, -2)) / h.sum((-1, -2)).clamp(min=1)


def wta_weights(errors: torch.Tensor, mean_error: torch.Tensor | None, epsilon: float) -> torch.Tensor:
    """errors (B, H) of the heads, the mean guess's (B,) or None -> (B, H) relaxed winner-takes-all weights: every
    head ``epsilon`` / H, the closest head 1 - ``epsilon`` more, unless the mean guess is closer still."""
    b, h = errors.shape
    w = torch.full_like(errors, epsilon / h)
    best = errors.argmin(1)
    wins = torch.ones(b, dtype=torch.bool, device=errors.device)
    if mean_error is not None:
        wins = errors.min(1).values < mean_error
    w[torch.arange(b), best] += torch.where(wins, 1 - epsilon, 0.0)
    return w


def epsilon_at(step: int, cfg: HypothesesTrainConfig) -> float:
    frac = min(step / max(0.5 * cfg.steps, 1), 1.0)
    return cfg.epsilon_start + (cfg.epsilon_end - cfg.epsilon_start) * frac


def validate(model: JointHypotheses, infill, val) -> dict[str, float]:
    _, _, _, feat, target, mask = val
    hidden = ~mask
    with torch.no_grad():
        hyps, logits = model(feat)
        mean = infill(feat)
    err = window_errors(hyps, target, hidden)
    mean_err = window_errors(mean[:, None], target, hidden)[:, 0]
    both = torch.cat([mean_err[:, None], err], 1)
    h = hyps.shape[1]
    pair = [window_errors(hyps[:, i : i + 1], hyps[:, j], hidden).mean() for i in range(h) for j in range(i + 1, h)]
    return {"mean_cm": mean_err.mean().item() * 100, "heads_cm": err.mean().item() * 100,
            "best_cm": both.min(1).values.mean().item() * 100,
            "best_ratio": (both.min(1).values.mean() / mean_err.mean()).item(),
            "spread_cm": torch.stack(pair).mean().item() * 100 if pair else 0.0,
            "score_hit": (logits.argmax(1) == both.argmin(1)).float().mean().item()}


def train_hypotheses(cfg: HypothesesTrainConfig, out: Path, sources, init: Path, resume: bool = False,
                     device: str = "cpu", cache_dir: Path | None = None, workers: int = 0,
                     quiet: bool = False) -> dict[str, float]:
    """Train (or resume) and write the checkpoint to ``out``; ``init``: the completion network (warm start and the
    mean guess that competes). Returns the last validation metrics."""
    data = build_motion_data(sources, cache_dir or REPO_ROOT / "cache", workers=workers, quiet=quiet)
    torch.manual_seed(cfg.seed)
    infill = load_infill(init, device)
    model = JointHypotheses(cfg.model)
    step, seconds, metrics, opt_state = 0, 0.0, {}, None
    if resume:
        ckpt = read_hypotheses(out)
        model.load_state_dict(ckpt["model"])
        opt_state = ckpt.get("optimizer")
        step, seconds, metrics = ckpt["step"], ckpt.get("seconds", 0.0), ckpt.get("metrics", {})
    else:
        model.warm_start(infill)
    model.to(device)
    if cfg.freeze_trunk:
        model.inp.requires_grad_(False)
        model.blocks.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    sampler = WindowSampler(data, cfg.window, seed=cfg.seed + step, augment=cfg.body_augment)
    rng = np.random.default_rng(cfg.seed + step)

    vals = validation_sets(data, cfg, device)
    best_key = "unseen_best_cm" if "unseen" in vals else "val_best_cm"
    best_path = out.with_name(out.stem + "-best.pt")
    history = list(metrics.get("history", []))
    best = min((h[best_key] for h in history if best_key in h), default=float("inf"))

    def save(final: bool = False, path: Path = out) -> None:
        extra = {} if final else {"optimizer": opt.state_dict()}
        save_hypotheses(path, model, step=step, seconds=seconds, metrics=metrics, train_config=cfg.to_dict(),
                        data=data_summary(data), **extra)

    bar = tqdm(total=cfg.steps, initial=step, desc="train hypotheses", disable=quiet, unit="step")
    while step < cfg.steps:
        t0 = time.perf_counter()
        model.train()
        states, _, rest = sampler.sample(cfg.batch_size)
        masks = np.stack([random_mask(cfg.window, rng) for _ in states])
        sigma = np.where(rng.random(len(states)) < 0.5, rng.uniform(0.0, 0.04, len(states)), 0.0)
        feat, target, mask = (t.to(device) for t in make_batch(_window_joints(states), rest.astype(np.float64), masks,
                                                                sigma, rng))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        hidden = ~mask
        hyps, logits = model(feat)
        with torch.no_grad():
            mean_err = window_errors(infill(feat)[:, None], target, hidden)[:, 0]
        err = window_errors(hyps, target, hidden)
        solo = step < cfg.solo_frac * cfg.steps
        w = wta_weights(err.detach(), None if solo else mean_err, epsilon_at(step, cfg))
        vis = mask[:, None].float()
        visible_l1 = ((hyps - target[:, None]).abs().sum(-1) * vis).sum() / vis.sum().clamp(min=1) / hyps.shape[1]
        winner = torch.cat([mean_err[:, None], err.detach()], 1).argmin(1)
        score = torch.nn.functional.cross_entropy(logits, winner)
        loss = (w * err).sum(1).mean() + cfg.visible_weight * visible_l1 + cfg.score_weight * score
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
                now.update({f"{name}_{k}": round(x, 4) for k, x in validate(model, infill, v).items()})
            history.append(now)
            metrics = {**now, "history": history}
            bar.write(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in now.items() if k != "step"))
            if now[best_key] < best:
                best = now[best_key]
                save(final=True, path=best_path)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save(final=step == cfg.steps)
    bar.close()
    return metrics


def run_train_hypotheses(args) -> int:
    """CLI entry for `dreamor train hypotheses`."""
    cfg = preset_config(args, PRESETS)
    sources, out, cache = training_paths(args, "hypotheses", cfg.preset)
    init = Path(args.init)
    if not init.is_file():
        raise DreamorError(f"--init {init}: no such completion-network checkpoint")
    m = train_hypotheses(cfg, out, sources, init, resume=args.resume, device=args.device, cache_dir=cache,
                         workers=args.workers, quiet=args.quiet)
    if m:
        print("validation: " + ", ".join(f"{k} {v}" for k, v in m.items() if k != "history"))
    print(f"wrote {out}")
    return 0
