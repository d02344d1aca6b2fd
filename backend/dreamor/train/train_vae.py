"""`dreamor train vae`: train the MotionVAE, then fit its Gaussian conditional prior.

The loop: sample windows of ``window`` frames (clip weights tilt the draw, so CMU
`extra/` can be weighted up), roll the VAE over each window with scheduled sampling
(HuMoR's curriculum: teacher forcing first, then the model's own predictions with a
probability that ramps to ``sched_samp_max``), anneal the KL weight, AdamW with warmup
and cosine decay, gradient clipping. Every ``val_every`` steps: validation metrics on
fixed held-out windows; every ``ckpt_every`` steps: an atomic, resumable checkpoint
(model, prior, optimiser, step, config, normalisation, metrics). After the VAE: fit
p(z_t | x_{t-1}) to the frozen encoder's posteriors (``fit_prior``), validate, save.

Data parallel: under ``torchrun --nproc_per_node N -m dreamor.cli train vae ...``
(WORLD_SIZE > 1) every process trains on its own windows (batch_size each) with
DistributedDataParallel (NCCL on CUDA, gloo on CPU); rank 0 builds the data cache first,
then validates, checkpoints and shows the progress bar.

Validation metrics (on held-out takes; windows of 61 frames):
- ``one_step_joint_cm``: mean joint error (cm) of FK(x^_t) decoded from x_{t-1} and the
  posterior mean of (x_{t-1}, x_t), ground truth fed in at every step;
- ``rollout_1s_cm``, ``rollout_2s_cm``: the joint error 30 / 60 frames after x_0 when the
  posterior means of the ground-truth transitions are decoded autoregressively from x_0
  (how well "encode, then roll out" reproduces a motion: the refinement's starting point);
- ``contact_acc``: one-step contact accuracy (probability > 0.5 vs labels);
- ``kl``: mean KL(q || N(0, I)); ``z_std``: std of posterior means, averaged over z dims;
  ``active_dims``: z dims whose posterior mean varies (var > 0.01);
- ``prior_kl``: mean KL(q || p(z_t | x_{t-1})) once the prior is fitted.
The same metrics on the validation takes put on random bodies (``val_bodies``) and on the
unseen-subject split on random bodies (``unseen``), where the data has them.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..body.frame import canonical_pairs
from ..data.dataset import MotionData, WindowSampler, build_motion_data
from ..errors import DreamorError
from ..models.configs import PRESETS, TrainConfig, preset
from ..models.losses import VertexFn, fk_joints, kl_gaussians, kl_to_standard_normal, regressed_joints, vae_loss
from ..models.vae import MotionVAE, canonical_norm_stats, read_vae, save_vae, vae_from_checkpoint
from .common import body_validation_samplers, lr_at, training_paths

#: validation windows: x_0 plus 2 s at 30 Hz.
VAL_FRAMES = 61
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # states (B, L, 273), contacts (B, L, 9), rest (B, 22, 3)


# ----------------------------------------------------------------------------- schedules
def _ramp(step: int, total: int, span: tuple[float, float]) -> float:
    """0 before span[0] * total, 1 after span[1] * total, linear in between."""
    a, b = span[0] * total, span[1] * total
    if step >= b:
        return 1.0
    if step < a:
        return 0.0
    return (step - a) / max(b - a, 1e-9)


def kl_weight_at(step: int, cfg: TrainConfig) -> float:
    return cfg.loss.kl * _ramp(step, cfg.steps, cfg.kl_anneal)


def own_prob_at(step: int, cfg: TrainConfig) -> float:
    """Scheduled sampling: probability of feeding back the model's own prediction."""
    return cfg.sched_samp_max * _ramp(step, cfg.steps, cfg.sched_samp)


# ----------------------------------------------------------------------------- steps
def to_batch(arrays: tuple[np.ndarray, np.ndarray, np.ndarray], device: torch.device | str) -> Batch:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device, torch.float32) for a in arrays)  # type: ignore[return-value]


def window_loss(model: torch.nn.Module, vae: MotionVAE, batch: Batch, cfg: TrainConfig, p_own: float, kl_weight: float,
                sample: bool = True, vertices: VertexFn | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one batch of windows. ``model`` is the VAE or its DDP wrapper (it runs the forward)."""
    states, contacts, rest = batch
    out = model(states, rest, p_own=p_own, sample=sample, detach=cfg.detach_rollout)
    return vae_loss(out.pred, out.target, out.contact_logits, contacts[:, 1:], out.mu, out.logvar, rest,
                    vae.delta_std, cfg.loss, kl_weight, vertices)


def train_step(model: torch.nn.Module, vae: MotionVAE, batch: Batch, optimizer: torch.optim.Optimizer,
               cfg: TrainConfig, step: int, vertices: VertexFn | None = None) -> dict[str, float]:
    """One optimiser step; returns the loss terms as floats (plus lr, p_own, kl_w, grad_norm)."""
    vae.train()
    lr = lr_at(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    p_own, kl_w = own_prob_at(step, cfg), kl_weight_at(step, cfg)
    loss, terms = window_loss(model, vae, batch, cfg, p_own, kl_w, vertices=vertices)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in vae.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    skipped = not torch.isfinite(grad_norm)
    if not skipped:  # a non-finite step is dropped (all ranks see the same all-reduced grads)
        optimizer.step()
    out = {k: float(v.detach()) for k, v in terms.items()}
    out.update(lr=lr, p_own=p_own, kl_w=kl_w, grad_norm=float(grad_norm),
               skipped=float(skipped))
    return out


# ----------------------------------------------------------------------------- validation
def validation_batch(data: MotionData, cfg: TrainConfig, device: torch.device | str) -> tuple[Batch | None, str]:
    """Fixed validation windows: held-out takes, VAL_FRAMES long (shorter if no take is).

    Returns (batch or None, a note on where the windows came from).
    """
    for split, validation in (("validation", True), ("training (no usable validation takes)", False)):
        if not (data.is_val if validation else data.is_train).any():
            continue
        for length in (VAL_FRAMES, max(cfg.window, 2)):
            try:
                sampler = WindowSampler(data, length, validation=validation, seed=12345)
            except DreamorError:
                continue
            return to_batch(sampler.sample(cfg.val_windows), device), f"{split} split, {length}-frame windows"
    return None, "no take is long enough for validation"


@torch.no_grad()
def body_validation_batches(data: MotionData, cfg: TrainConfig, device: torch.device | str) -> dict[str, Batch]:
    """Fixed validation windows on random bodies: the default split (``val_bodies``) and the
    unseen-subject split (``unseen``), each where it has takes long enough."""

    return {name: to_batch(s.sample(cfg.val_windows), device)
            for name, s in body_validation_samplers(data, VAL_FRAMES, cfg.body_augment).items()}


@torch.no_grad()
def evaluate(vae: MotionVAE, batch: Batch, cfg: TrainConfig, prior_fitted: bool = False) -> dict[str, float]:
    """Validation metrics (see the module docstring) on windows (B, L, 273)."""
    was_training = vae.training
    vae.eval()
    states, contacts, rest = batch
    n = states.shape[1] - 1
    prev, cur = states[:, :-1], states[:, 1:]
    prev_c, cur_c, _ = canonical_pairs(prev, cur, rest)
    mu, logvar = vae.posterior_c(prev_c, cur_c)
    pred_c, logits = vae.decode_c(prev_c, mu)
    err = (fk_joints(pred_c, rest) - regressed_joints(cur_c)).norm(dim=-1).mean(-1)  # (B, n) m
    m = {
        "one_step_joint_cm": 100 * float(err.mean()),
        "contact_acc": float(((logits > 0) == (contacts[:, 1:] > 0.5)).float().mean()),
        "kl": float(kl_to_standard_normal(mu, logvar).mean()),
        "z_std": float(mu.reshape(-1, mu.shape[-1]).std(0).mean()),
        "active_dims": float((mu.reshape(-1, mu.shape[-1]).var(0) > 0.01).float().sum()),
    }
    roll = vae.rollout(states[:, 0], mu, rest)
    roll_err = (fk_joints(roll.states, rest) - regressed_joints(cur)).norm(dim=-1).mean(-1)  # (B, n)
    for sec in (1, 2):
        if n >= 30 * sec:
            m[f"rollout_{sec}s_cm"] = 100 * float(roll_err[:, 30 * sec - 1].mean())
    w = cfg.window
    loss, terms = window_loss(vae, vae, (states[:, :w], contacts[:, :w], rest), cfg, 0.0, cfg.loss.kl, sample=False)
    m["val_loss"] = float(loss)
    m["val_rec"] = float(terms["rec"])
    if prior_fitted:
        m["prior_kl"] = float(kl_gaussians(mu, logvar, *vae.prior_c(prev_c)).mean())
    vae.train(was_training)
    return m


# ----------------------------------------------------------------------------- prior
def fit_prior(vae: MotionVAE, sampler: WindowSampler, cfg: TrainConfig, device: torch.device, start: int = 0,
              distributed: bool = False, on_step=None, optimizer_state: dict | None = None) -> torch.optim.Optimizer:
    """Fit p(z_t | x_{t-1}) (vae.prior) by minimising KL(q(z_t | x_t, x_{t-1}) || p) with the encoder frozen.

    Runs steps [start, cfg.prior_steps); ``on_step(step, loss, optimizer)`` is called after each.
    """
    vae.requires_grad_(False)
    vae.prior.requires_grad_(True)
    vae.eval()
    vae.prior.train()
    prior = (DistributedDataParallel(vae.prior, device_ids=[device.index] if device.type == "cuda" else None,
                                     broadcast_buffers=False) if distributed else vae.prior)
    opt = torch.optim.AdamW(vae.prior.parameters(), lr=cfg.prior_lr, weight_decay=cfg.weight_decay)
    if optimizer_state:
        opt.load_state_dict(optimizer_state)
    for step in range(start, cfg.prior_steps):
        frac = step / max(cfg.prior_steps - 1, 1)
        for g in opt.param_groups:
            g["lr"] = cfg.prior_lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        states, _, rest = to_batch(sampler.sample(cfg.prior_batch_size), device)
        with torch.no_grad():
            prev_c, cur_c, _ = canonical_pairs(states[:, :-1], states[:, 1:], rest)
            mu_q, logvar_q = vae.posterior_c(prev_c, cur_c)
            prev_n = vae.normalize_state(prev_c)
        mu_p, logvar_p = prior(prev_n)
        loss = kl_gaussians(mu_q, logvar_q, mu_p, logvar_p).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.prior.parameters(), cfg.grad_clip)
        opt.step()
        if on_step is not None:
            on_step(step + 1, float(loss.detach()), opt)
    vae.prior.requires_grad_(False)
    return opt


def refit_contacts(vae: MotionVAE, sampler: WindowSampler, steps: int, device: torch.device, lr: float = 1e-3,
                   batch_size: int = 256, on_step=None) -> None:
    """Fit the decoder's contact outputs (the last 9 rows of ``decoder.out``) to the sampler's contact labels, by
    binary cross-entropy of the one-step decode from x_{t-1} and the posterior mean; every other weight frozen,
    so the decoded motion, the latents and both priors stay as they are. For new contact labels
    (``body.state.contact_labels``) without training the VAE again. ``on_step(step, loss)`` after each step."""
    from ..body.state import STATE_DIM

    vae.requires_grad_(False)
    vae.eval()
    head = vae.decoder.out
    head.requires_grad_(True)
    keep = torch.zeros_like(head.bias, dtype=torch.bool)
    keep[STATE_DIM:] = True
    hooks = [head.weight.register_hook(lambda g: g * keep[:, None]), head.bias.register_hook(lambda g: g * keep)]
    opt = torch.optim.Adam(head.parameters(), lr=lr)  # no weight decay: the motion rows get no update at all
    try:
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / max(steps - 1, 1))))
            states, contacts, rest = to_batch(sampler.sample(batch_size), device)
            with torch.no_grad():
                prev_c, cur_c, _ = canonical_pairs(states[:, :-1], states[:, 1:], rest)
                mu, _ = vae.posterior_c(prev_c, cur_c)
            _, logits = vae.decode_c(prev_c, mu)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, contacts[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step + 1, float(loss.detach()))
    finally:
        for h in hooks:
            h.remove()
        head.requires_grad_(False)


# ----------------------------------------------------------------------------- the run
def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _params_in_sync(vae: MotionVAE) -> float:
    """Max |param - mean over ranks| (0.0 when DDP kept every replica identical)."""
    worst = torch.zeros(())
    for p in vae.parameters():
        mean = p.detach().clone()
        dist.all_reduce(mean)
        mean /= dist.get_world_size()
        worst = torch.maximum(worst, (p.detach() - mean).abs().max().cpu())
    worst = worst.to(next(vae.parameters()).device)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def train_vae(
    cfg: TrainConfig,
    out: str | os.PathLike,
    *,
    sources: list[tuple[str | Path, float]] | None = None,
    data: MotionData | None = None,
    resume: bool = False,
    overrides: dict | None = None,
    device: str = "cpu",
    cache_dir: str | os.PathLike = "cache",
    workers: int = 0,
    quiet: bool = False,
    vertices: VertexFn | None = None,
    contact_steps: int = 0,
) -> dict:
    """Train (or resume) a MotionVAE and its prior; write the checkpoint to ``out``.

    Give ``sources`` (folders/files with sampling weights) or ready ``data``. ``overrides``
    (e.g. ``{"steps": 20000}``) replace top-level fields of ``cfg`` -- or, with ``resume``
    and an existing ``out``, of the checkpoint's own config, from whose step training
    continues (a longer ``steps`` extends a finished run; its prior is then refitted).
    ``contact_steps`` > 0: afterwards, refit the decoder's contact outputs to today's contact labels for that
    many steps (``refit_contacts``) and save again.
    Returns the final metrics dict (also stored in the checkpoint).
    """
    rank, world, local_rank = _dist_env()
    distributed = world > 1
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DreamorError("--device cuda: no CUDA device is available (use --device cpu)")
        dev = torch.device("cuda", local_rank if distributed else (dev.index or 0))
        torch.cuda.set_device(dev)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    main = rank == 0
    out = Path(out)
    try:
        if data is None:
            if sources is None:
                raise DreamorError("no training data given")
            if main:  # rank 0 converts and caches; the others then read the cache
                data = build_motion_data(sources, cache_dir, workers=workers, quiet=quiet)
            if distributed:
                dist.barrier()
            if not main:
                data = build_motion_data(sources, cache_dir, workers=1, quiet=True)
        ckpt = read_vae(out) if resume and out.exists() else None
        if ckpt is not None:
            cfg = replace(TrainConfig.from_dict(ckpt["config"]), **(overrides or {}))
            vae = vae_from_checkpoint(ckpt)
            step, prior_step = int(ckpt["step"]), int(ckpt["prior_step"])
            prior_fitted = bool(ckpt["prior_fitted"]) and step >= cfg.steps and prior_step >= cfg.prior_steps
            if step < cfg.steps:
                prior_step = 0  # the VAE moves on: the prior is refitted afterwards
            metrics = dict(ckpt.get("metrics") or {})
            if main and not quiet:
                print(f"resuming {out} at step {step}/{cfg.steps} (preset {cfg.preset})", file=sys.stderr)
        else:
            if resume and main and not quiet:
                print(f"{out} does not exist yet: starting a new run", file=sys.stderr)
            cfg = replace(cfg, **(overrides or {}))
            torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
            vae = MotionVAE(cfg.model, canonical_norm_stats(data, seed=cfg.seed))
            step = prior_step = 0
            prior_fitted = False
            metrics = {}
        metrics.update(
            preset=cfg.preset, world_size=world, device=str(dev.type),
            params=sum(p.numel() for n, p in vae.named_parameters() if not n.startswith("prior.")),
            train_clips=int(data.is_train.sum()), val_clips=int(data.is_val.sum()), unseen_clips=int(data.is_unseen.sum()),
            train_frames=int(sum(data.clip_starts[c + 1] - data.clip_starts[c] for c in np.flatnonzero(data.is_train))),
        )
        history = list(metrics.get("history", []))
        vae.to(dev)
        torch.manual_seed(cfg.seed + 1000 * rank + 7 * step)
        sampler = WindowSampler(data, cfg.window, validation=False, seed=cfg.seed + 1000 * rank + 7 * step,
                                augment=cfg.body_augment)
        val_batch, val_note = validation_batch(data, cfg, dev) if main else (None, "")
        extra_val = body_validation_batches(data, cfg, dev) if main else {}
        metrics["val_windows"] = val_note

        def save(**extra) -> None:
            metrics["history"] = history[-200:]
            save_vae(out, vae, cfg, step=step, prior_step=prior_step, metrics=metrics, **extra)

        def validate(tag: str) -> None:
            if val_batch is None:
                return
            m = evaluate(vae, val_batch, cfg, prior_fitted=prior_fitted)
            metrics["val"] = m
            entry = {"step": step, "stage": tag, **m}
            for name, batch in extra_val.items():
                e = evaluate(vae, batch, cfg, prior_fitted=prior_fitted)
                metrics[name] = e
                entry.update({f"{name}_{k}": e[k] for k in ("one_step_joint_cm", "rollout_1s_cm", "rollout_2s_cm")})
            history.append(entry)
            if not quiet:
                tqdm.write(f"[{tag} {step}] " + " ".join(f"{k}={v:.4g}" for k, v in entry.items()
                                                         if k not in ("step", "stage")), file=sys.stderr)

        # --- stage 1: the VAE
        if step < cfg.steps:
            vae.requires_grad_(True)
            vae.prior.requires_grad_(False)
            model = (DistributedDataParallel(vae, device_ids=[dev.index] if dev.type == "cuda" else None,
                                             broadcast_buffers=False) if distributed else vae)
            params = [p for p in vae.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            if ckpt is not None and ckpt.get("optimizer"):
                opt.load_state_dict(ckpt["optimizer"])
            bar = tqdm(total=cfg.steps, initial=step, desc=f"train vae ({cfg.preset})", unit="step",
                       disable=quiet or not main, file=sys.stderr, dynamic_ncols=True)
            t0, n0 = time.perf_counter(), step
            while step < cfg.steps:
                terms = train_step(model, vae, to_batch(sampler.sample(cfg.batch_size), dev), opt, cfg, step, vertices)
                step += 1
                if not main:
                    continue
                bar.update()
                if step % cfg.log_every == 0 or step == cfg.steps:
                    bar.set_postfix(loss=f"{terms['total']:.3g}", rec=f"{terms['rec']:.3g}", kl=f"{terms['kl']:.3g}",
                                    joint=f"{terms['joint']:.3g}", p_own=f"{terms['p_own']:.2f}", refresh=False)
                    metrics["train"] = terms
                    metrics["sec_per_step"] = (time.perf_counter() - t0) / max(step - n0, 1)
                if step % cfg.val_every == 0 or step == cfg.steps:
                    validate("vae")
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    save(optimizer=opt.state_dict())
            bar.close()
            del model
            last_opt = opt.state_dict()
        else:
            last_opt = ckpt.get("optimizer") if ckpt is not None else None

        # --- stage 2: the Gaussian conditional prior p(z_t | x_{t-1})
        if not prior_fitted:
            pbar = tqdm(total=cfg.prior_steps, initial=prior_step, desc="fit prior", unit="step",
                        disable=quiet or not main, file=sys.stderr, dynamic_ncols=True)

            def on_prior_step(s: int, loss: float, opt) -> None:
                nonlocal prior_step
                prior_step = s
                if main:
                    pbar.update()
                    pbar.set_postfix(kl_q_p=f"{loss:.3g}", refresh=False)
                    if s % cfg.ckpt_every == 0 and s < cfg.prior_steps:
                        save(optimizer=last_opt, prior_optimizer=opt.state_dict())

            prior_state = ckpt.get("prior_optimizer") if ckpt is not None and prior_step > 0 else None
            popt = fit_prior(vae, sampler, cfg, dev, start=prior_step, distributed=distributed,
                             on_step=on_prior_step, optimizer_state=prior_state)
            pbar.close()
            prior_fitted = cfg.prior_steps > 0  # with 0 steps the prior stays N(0, I)
            if distributed:
                metrics["ddp_param_max_diff"] = _params_in_sync(vae)
            if main:
                validate("final")
                save(optimizer=last_opt, prior_optimizer=popt.state_dict(), prior_fitted=prior_fitted)
                if not quiet:
                    print(f"wrote {out}", file=sys.stderr)
        elif main and not quiet and not contact_steps:
            print(f"{out} is already trained to step {step} with its prior; pass --steps N to train longer",
                  file=sys.stderr)

        # --- stage 3 (on request): the contact outputs refitted to today's labels
        if contact_steps > 0 and main:
            validate("before contacts")
            cbar = tqdm(total=contact_steps, desc="refit contacts", unit="step", disable=quiet, file=sys.stderr,
                        dynamic_ncols=True)

            def on_contact_step(s: int, loss: float) -> None:
                cbar.update()
                cbar.set_postfix(bce=f"{loss:.3g}", refresh=False)

            refit_contacts(vae, sampler, contact_steps, dev, on_step=on_contact_step)
            cbar.close()
            metrics["contact_refit_steps"] = int(metrics.get("contact_refit_steps", 0)) + contact_steps
            validate("contacts")
            save(optimizer=last_opt, prior_fitted=prior_fitted)
            if not quiet:
                print(f"wrote {out}", file=sys.stderr)
        if distributed:
            dist.barrier()
        return metrics
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


# ----------------------------------------------------------------------------- CLI glue
def run_train(args) -> int:
    """CLI entry for `dreamor train vae` (args from cli.py)."""
    if args.preset not in PRESETS:
        raise DreamorError(f"unknown preset '{args.preset}'; choose one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in (("steps", args.steps), ("prior_steps", args.prior_steps),
                                    ("batch_size", args.batch_size), ("seed", args.seed)) if v is not None}
    for k in ("steps", "batch_size"):
        if k in overrides and overrides[k] < 1:
            raise DreamorError(f"--{k.replace('_', '-')} must be at least 1")
    if overrides.get("prior_steps", 0) < 0:
        raise DreamorError("--prior-steps must be >= 0")
    contact_steps = args.contact_steps or 0
    if contact_steps < 0:
        raise DreamorError("--contact-steps must be >= 0")
    cfg = preset(args.preset)
    sources, out, cache = training_paths(args, "vae", cfg.preset)
    metrics = train_vae(cfg, out, sources=sources, resume=args.resume, overrides=overrides, device=args.device, cache_dir=cache,
                        workers=args.workers, quiet=args.quiet, contact_steps=contact_steps)
    if _dist_env()[0] == 0 and "val" in metrics:
        v = metrics["val"]
        print("validation: " + ", ".join(f"{k} {v[k]:.3g}" for k in
                                         ("one_step_joint_cm", "rollout_1s_cm", "rollout_2s_cm", "contact_acc", "prior_kl")
                                         if k in v))
    return 0
