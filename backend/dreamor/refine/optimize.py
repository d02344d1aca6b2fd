"""DREAMoR's test-time optimisation over a batch of windows (paper section 3.4).

For B windows of L frames (30 Hz) with observed joints and a visibility mask:
1. initial states x_{0:L-1} from the filled-in observation; z_{1:L-1} = encoder means;
2. targets z_hat: per latent a random t' in ``t_range`` * T, partial noising and K DDIM steps
   with CFG (one batched call over all latents of all windows), refreshed on a schedule;
3. Adam on z, the initial state x_0 and the ground plane (height, tilt) minimising
   E = w_sds sum||z - sg(z_hat)||^2 + w_obs E_obs(visible joints) + regularisers, where the
   motion is the decoder's rollout from x_0 and the contacts come out of the decoder.
``vae_only`` replaces the SDS term by the Gaussian prior's -log p(z_t | x_{t-1}); ``no_opt``
decodes the first targets without optimising.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..body.kinematics import forward_kinematics
from ..body.state import STATE_SLICES, state_rotmats
from ..errors import DreamorError
from . import energies as E
from .config import RefineConfig
from .windows import overlap_pairs

ProgressFn = Callable[[str, float, dict], None]
#: preview(states (B, L, 273), contacts (B, L, 9)): the windows' motion as it stands mid-optimisation.
PreviewFn = Callable[[torch.Tensor, torch.Tensor], None]


class RefineCancelled(DreamorError):
    """The caller asked to stop (``should_stop`` returned True)."""


@dataclass
class WindowBatch:
    """B windows of L frames. observed: (B, L, 22, 3) m (anything where neither visible nor guessed);
    visible: (B, L, 22) bool; rest_joints: (B, 22, 3); x_init: (B, L, 273) initial states;
    guessed: (B, L, 22) bool, hidden joints whose ``observed`` value is the completion network's guess;
    starts: each window's first frame in the clip (consecutive windows that overlap are made to agree; each
    window's random draws are seeded by it, so a window's result does not depend on its batch);
    weight: (B, L, 22) observation weights of the visible joints (confidence; pins more; None: all 1);
    fixed: (targets (B, L, 22, 3), mask (B, L, 22) bool): the joints that neighbouring windows optimised earlier
    give the frames they share with these, for the agreement energy (None: no such neighbours)."""

    observed: torch.Tensor
    visible: torch.Tensor
    rest_joints: torch.Tensor
    x_init: torch.Tensor
    guessed: torch.Tensor | None = None
    starts: list[int] | None = None
    weight: torch.Tensor | None = None
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class WindowResult:
    """states: (B, L, 273); joints: (B, L, 22, 3) FK; contacts: (B, L, 9); ground: (normal (B, 3), offset (B,))."""

    states: torch.Tensor
    joints: torch.Tensor
    contacts: torch.Tensor
    ground: tuple[torch.Tensor, torch.Tensor]
    energies: dict[str, float]


def _ground(tilt: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.cat([tilt, torch.ones_like(tilt[:, :1])], dim=-1)
    return n / n.norm(dim=-1, keepdim=True), offset


def _decode(vae, x0: torch.Tensor, z: torch.Tensor, rest: torch.Tensor, project_bones: bool):
    """x_0 (B, 273), z (B, L-1, Z) -> states (B, L, 273), FK joints (B, L, 22, 3), contacts (B, L, 9)."""
    roll = vae.rollout(x0, z, rest, project_bones=project_bones)
    x = torch.cat([x0[:, None], roll.states], dim=1)
    contacts = torch.cat([roll.contacts[:, :1], roll.contacts], dim=1)
    joints = forward_kinematics(state_rotmats(x), rest[:, None], x[..., STATE_SLICES["trans"]]).joints
    return x, joints, contacts


def t_range_at(cfg: RefineConfig, progress: float) -> tuple[float, float]:
    """The t' range (fractions of T) at this fraction of the iterations: ``cfg.t_range``, or with
    ``t_anneal`` its upper end moving down to its lower end (high noise first, as DreamFusion anneals)."""
    lo, hi = cfg.t_range
    return (lo, hi - (hi - lo) * progress) if cfg.t_anneal else (lo, hi)


def observation_guide(vae, x_prev: torch.Tensor, observed: torch.Tensor, visible: torch.Tensor, rest: torch.Tensor,
                      scale: float, max_step: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """guide(z (B, L-1, Z) raw latents) -> z moved ``scale`` of the linear (Polyak) step that makes each latent's
    decoded frame meet the visible joints: x_prev (B, L-1, 273) the states before each latent's frame, observed
    (B, L-1, 22, 3) m and visible (B, L-1, 22) those frames' observation; each step at most ``max_step`` long."""
    def guide(z: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            x_t, _ = vae.decode(x_prev, zg, rest, project_bones=False)
            joints = x_t[..., STATE_SLICES["joints"]].reshape(observed.shape)
            miss = (((joints - observed) ** 2).sum(-1) * visible).sum(-1)  # (B, L-1) m^2
            (grad,) = torch.autograd.grad(miss.sum(), zg)
        step = scale * miss.detach()[..., None] / (grad * grad).sum(-1, keepdim=True).clamp(min=1e-12) * grad
        norm = step.norm(dim=-1, keepdim=True)
        return (z - step * (max_step / norm.clamp(min=max_step))).detach()
    return guide


def window_generators(cfg: RefineConfig, starts: list[int] | None, count: int) -> list[torch.Generator]:
    """One random generator per window, seeded by the config's seed and the window's first frame."""
    starts = starts if starts is not None else list(range(count))
    return [torch.Generator().manual_seed(cfg.seed * 1_000_003 + int(s)) for s in starts]


def denoised_targets(vae, diffusion, z: torch.Tensor, x_prev: torch.Tensor, rest: torch.Tensor,
                     cfg: RefineConfig, generators: list[torch.Generator], progress: float = 0.0,
                     guide: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """z_hat (B, L-1, Z): each latent noised to its own random t' and denoised with K DDIM steps + CFG
    (``guide``: see ``observation_guide``); ``generators``: one per window (``window_generators``)."""
    from ..models.diffusion import vae_condition

    t_total = diffusion.schedule.num_train_timesteps
    lo, hi = t_range_at(cfg, progress)
    frac = lo + (hi - lo) * torch.stack([torch.rand(z.shape[1:-1], generator=g) for g in generators])
    t = (frac * t_total).long().clamp(0, t_total - 1).to(z.device)
    cond = vae_condition(vae, x_prev, rest)
    noise = torch.stack([torch.randn(z.shape[1:], generator=g) for g in generators]).to(z)
    return diffusion.denoise(z, cond, t, num_steps=cfg.denoise_steps, guidance=cfg.guidance, noise=noise, guide=guide)


def optimize_windows(vae, diffusion, batch: WindowBatch, cfg: RefineConfig,
                     progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                     preview: PreviewFn | None = None) -> WindowResult:
    """Run the configured method on a batch of windows; see the module docstring. ``preview`` gets the
    current motion every ``cfg.preview_every_s`` seconds of work (a live preview)."""
    gen = window_generators(cfg, batch.starts, len(batch.x_init))
    rest = batch.rest_joints
    w = cfg.weights
    with torch.no_grad():
        z0, _ = vae.encode(batch.x_init[:, :-1], batch.x_init[:, 1:], rest)
    x0 = batch.x_init[:, 0].clone()
    observed = torch.nan_to_num(batch.observed)

    def guide_from(x_prev: torch.Tensor):  # observation-guided targets, given the states before each latent's frame
        if cfg.obs_guidance <= 0:
            return None
        return observation_guide(vae, x_prev, observed[:, 1:], batch.visible[:, 1:].to(observed), rest, cfg.obs_guidance)

    if cfg.method in ("dreamor", "no_opt"):
        if diffusion is None:
            raise DreamorError(f"method '{cfg.method}' needs the latent diffusion model, which is not loaded")
        z_hat = denoised_targets(vae, diffusion, z0, batch.x_init[:, :-1], rest, cfg, gen,
                                 guide=guide_from(batch.x_init[:, :-1]))
    if cfg.method == "no_opt":
        with torch.no_grad():
            x, joints, contacts = _decode(vae, x0, z_hat, rest, cfg.project_bones)
        flat = torch.zeros(len(x0), 2, dtype=x0.dtype)
        return WindowResult(x, joints, contacts, _ground(flat, torch.zeros(len(x0), dtype=x0.dtype)), {})

    z = z0.clone().requires_grad_(True)
    x0 = x0.requires_grad_(True)
    tilt = torch.zeros(len(x0), 2, dtype=x0.dtype, requires_grad=cfg.optimize_ground)
    offset = torch.zeros(len(x0), dtype=x0.dtype, requires_grad=cfg.optimize_ground)
    opt = torch.optim.Adam([{"params": [z, x0], "lr": cfg.lr}] +
                           ([{"params": [tilt, offset], "lr": cfg.lr * 0.1}] if cfg.optimize_ground else []))
    pairs = overlap_pairs(batch.starts, batch.observed.shape[1], batch.visible) if w.overlap > 0 else None
    terms: dict[str, float] = {}
    last_report = 0.0
    last_preview = time.monotonic()
    for it in range(cfg.iters):
        if should_stop is not None and should_stop():
            raise RefineCancelled("refinement cancelled")
        opt.zero_grad(set_to_none=True)
        x, joints, contacts = _decode(vae, x0, z, rest, cfg.project_bones)
        c = contacts.detach()
        ground = _ground(tilt, offset)
        parts = [
            (w.obs, E.observation(joints, observed, batch.visible, cfg.obs_sigma, batch.weight)),
            (w.consistency, E.skeleton_consistency(x[..., STATE_SLICES["joints"]].reshape(joints.shape), joints)),
            (w.penetration, E.penetration(joints, ground)),
            (w.smooth, E.smoothness(joints)),
        ]
        if w.overlap > 0 and (pairs is not None or batch.fixed is not None):
            parts.append((w.overlap, E.window_agreement(joints, pairs, batch.fixed)))
        if w.guess > 0 and batch.guessed is not None:
            fade = 1.0 - (1.0 - cfg.guess_final) * it / max(cfg.iters - 1, 1)  # the guess: a tether, or a start
            parts.append((w.guess * fade, E.guess(joints, observed, batch.guessed, cfg.guess_sigma)))
        if it >= cfg.contacts_from * cfg.iters:
            parts += [(w.contact_vel, E.contact_velocity(joints, c)), (w.contact_height, E.contact_height(joints, c, ground))]
        if cfg.method == "dreamor":
            if it > 0 and it % cfg.refresh_every == 0:
                x_prev = x[:, :-1].detach()
                z_hat = denoised_targets(vae, diffusion, z.detach(), x_prev, rest, cfg, gen, it / cfg.iters,
                                         guide=guide_from(x_prev))
            parts.append((w.sds, E.sds(z, z_hat)))
        else:  # vae_only: HuMoR's learned conditional prior
            parts.append((w.prior, E.prior_nll(z, *vae.prior_params(x[:, :-1], rest))))
        total = sum(weight * e for weight, (e, _) in parts)
        total.backward()
        opt.step()
        terms = {k: v for _, (_, t) in parts for k, v in t.items()}
        terms["total"] = float(total.detach())
        if not all(math.isfinite(v) for v in terms.values()):
            raise DreamorError("the optimisation diverged (non-finite energy): check the input for broken or extreme values "
                              "(`dreamor info IN` shows the root's travel and the frame rate)")
        now = time.monotonic()
        if progress is not None and (now - last_report > 0.2 or it == cfg.iters - 1):
            last_report = now
            progress("optimise", (it + 1) / cfg.iters, terms)
        if preview is not None and now - last_preview >= cfg.preview_every_s and it < cfg.iters - 1:
            preview(x.detach(), contacts.detach())  # the motion of this iteration, before its step
            last_preview = time.monotonic()
    with torch.no_grad():
        x, joints, contacts = _decode(vae, x0, z, rest, cfg.project_bones)
        ground = _ground(tilt, offset)
    return WindowResult(x.detach(), joints.detach(), contacts.detach(), (ground[0].detach(), ground[1].detach()), terms)
