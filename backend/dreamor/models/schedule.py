"""The noise schedule of the latent diffusion prior, shaped like diffusers' DDIM scheduler.

Timesteps are integers ``t`` in ``[0, T)`` as in diffusers (``t = 0`` is the least noisy;
the paper's ``t' in [1, T]`` is ``t + 1``); ``t = -1`` stands for the clean sample
(``alpha_bar = 1``). The forward process is ``z_t = sqrt(ab_t) z_0 + sqrt(1 - ab_t) eps``.

``step`` is DDIM (Song et al. 2020, eq. 12) with ``eta``: 0 is deterministic DDIM,
1 is DDPM-like ancestral sampling. Every method takes a per-sample ``t`` (a tensor), so one
call can move each sample along its own trajectory (``trajectory(t_start, K)``), which is
what the test-time optimiser needs: every latent starts from its own noise level.

    sched = NoiseSchedule()
    sched.set_timesteps(10)
    z = torch.randn(B, 48)
    for t in sched.timesteps:
        z, z0_pred = sched.step(model(z, t), t, z)
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

BETA_SCHEDULES = ("cosine", "scaled_linear", "linear")


@dataclass
class ScheduleConfig:
    """The forward process. Default: Stable Diffusion's scaled-linear betas (a latent-space
    schedule; alpha_bar falls to 0.0047 at t = T - 1). The capped cosine schedule ends at
    alpha_bar ~ 2e-9, where eps-prediction errors are amplified ~2e4-fold in the first
    steps from pure noise: fine for denoising from t' <= 0.8 T, not for ``sample``."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"  # one of BETA_SCHEDULES
    beta_start: float = 0.00085  # (scaled_)linear only
    beta_end: float = 0.012


@dataclass
class StepOutput:
    """``prev_sample``: z at the previous (less noisy) timestep; ``pred_original_sample``: ẑ_0."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor

    def __iter__(self):  # so that ``prev, z0 = sched.step(...)`` works
        return iter((self.prev_sample, self.pred_original_sample))


def randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped ``shape`` on ``like``'s device and dtype, drawn on the
    generator's own device (so a CPU generator seeds CUDA work too)."""
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def make_betas(cfg: ScheduleConfig) -> torch.Tensor:
    """-> (T,) float64 betas."""
    n = cfg.num_train_timesteps
    if cfg.beta_schedule == "cosine":  # Nichol & Dhariwal 2021, as diffusers' squaredcos_cap_v2
        def ab(s: float) -> float:
            return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - ab((i + 1) / n) / ab(i / n), 0.999) for i in range(n)], dtype=torch.float64)
    if cfg.beta_schedule == "scaled_linear":  # Stable Diffusion's
        return torch.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, n, dtype=torch.float64) ** 2
    if cfg.beta_schedule == "linear":
        return torch.linspace(cfg.beta_start, cfg.beta_end, n, dtype=torch.float64)
    raise ValueError(f"unknown beta_schedule {cfg.beta_schedule!r}; use one of {BETA_SCHEDULES}")


class NoiseSchedule:
    """DDPM forward process + DDIM reverse steps; holds no model, knows nothing of sampling loops.

    ``alphas_cumprod``: (T,) float64 on the CPU; values are gathered, cast to the sample's
    dtype and moved to its device at use.
    """

    def __init__(self, cfg: ScheduleConfig | None = None):
        self.config = cfg or ScheduleConfig()
        self.betas = make_betas(self.config)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.num_train_timesteps = self.config.num_train_timesteps
        self.timesteps = self.trajectory(self.num_train_timesteps - 1, self.num_train_timesteps)[:-1]
        self._ab_cache: dict[tuple, torch.Tensor] = {}

    # -- helpers -----------------------------------------------------------------------
    def alpha_bar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar at timesteps ``t`` (int or (B,) long; -1 = clean -> 1), shaped (B, 1, ...) like ``like``."""
        key = (like.device, like.dtype)
        table = self._ab_cache.get(key)
        if table is None:  # index 0 is t = -1 (clean)
            table = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod]).to(like.device, like.dtype)
            self._ab_cache[key] = table
        t = torch.as_tensor(t, device=like.device, dtype=torch.long)
        if ((t < -1) | (t >= self.num_train_timesteps)).any():
            raise ValueError(f"timesteps must lie in [-1, {self.num_train_timesteps}), got {t.min()}..{t.max()}")
        a = table[t + 1]
        if a.ndim == 0:
            return a
        if a.shape[0] != like.shape[0]:
            raise ValueError(f"{a.shape[0]} timesteps for a batch of {like.shape[0]}")
        return a.reshape(-1, *([1] * (like.ndim - 1)))

    def trajectory(self, t_start: torch.Tensor | int, num_steps: int) -> torch.Tensor:
        """Per-sample DDIM trajectories from ``t_start`` to clean in ``num_steps`` steps.

        t_start: int or (B,) long in [0, T). Returns (K + 1,) or (K + 1, B) long, decreasing,
        row 0 = ``t_start``, last row = -1 (clean); "trailing" spacing
        ``t_k = round(k (t_start + 1) / K) - 1``, so ``trajectory(T - 1, 10)`` is
        999, 899, ..., 99, -1. With fewer noise levels than steps, steps repeat a timestep
        (a no-op).
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        t = torch.as_tensor(t_start, dtype=torch.long)
        if ((t < 0) | (t >= self.num_train_timesteps)).any():
            raise ValueError(f"t_start must lie in [0, {self.num_train_timesteps}), got {t.min()}..{t.max()}")
        k = torch.arange(num_steps, -1, -1, dtype=torch.float64).reshape(-1, *([1] * t.ndim))
        return (torch.round(k * (t.double() + 1) / num_steps) - 1).long().to(t.device)

    def timestep_at(self, fraction: float) -> int:
        """The timestep of noise level ``fraction`` * T (the paper's t' = fraction * T), e.g. 0.5 -> 499."""
        return int(min(max(round(fraction * self.num_train_timesteps) - 1, 0), self.num_train_timesteps - 1))

    # -- diffusers-shaped API ----------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        """Sets ``self.timesteps`` to K decreasing timesteps from T - 1 (trailing spacing)."""
        self.num_inference_steps = num_inference_steps
        self.timesteps = self.trajectory(self.num_train_timesteps - 1, num_inference_steps)[:-1].to(device or "cpu")

    def previous_timestep(self, t: torch.Tensor | int) -> torch.Tensor:
        """The timestep after ``t`` in ``self.timesteps`` (-1 after the last one)."""
        asc = self.timesteps.flip(0).cpu()
        t = torch.as_tensor(t, dtype=torch.long)
        i = torch.searchsorted(asc, t.cpu())
        if (i >= len(asc)).any() or (asc[i.clamp(max=len(asc) - 1)] != t.cpu()).any():
            raise ValueError(f"timestep {t.tolist()} is not in set_timesteps' schedule; pass prev_t")
        return torch.where(i > 0, asc[(i - 1).clamp(min=0)], torch.full_like(i, -1)).to(t.device)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """z0, noise: (B, ...); t: int or (B,) long -> z_t = sqrt(ab_t) z0 + sqrt(1 - ab_t) noise."""
        ab = self.alpha_bar(t, z0)
        return ab.sqrt() * z0 + (1 - ab).sqrt() * noise

    def pred_original(self, eps: torch.Tensor, t: torch.Tensor | int, z: torch.Tensor) -> torch.Tensor:
        """ẑ_0 = (z_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)."""
        ab = self.alpha_bar(t, z)
        return (z - (1 - ab).sqrt() * eps) / ab.sqrt()

    def step(
        self,
        eps: torch.Tensor,
        t: torch.Tensor | int,
        z: torch.Tensor,
        prev_t: torch.Tensor | int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> StepOutput:
        """One DDIM step from ``t`` to ``prev_t`` (default: the next of ``set_timesteps``).

        eps: (B, ...) predicted noise at z = z_t. eta = 0: deterministic; eta > 0 adds
        ``sigma = eta sqrt((1 - ab_prev)/(1 - ab_t)) sqrt(1 - ab_t/ab_prev)`` times ``noise``
        (drawn from ``generator`` unless given).
        """
        if prev_t is None:
            prev_t = self.previous_timestep(t)
        ab = self.alpha_bar(t, z)
        ab_prev = self.alpha_bar(prev_t, z)
        z0 = (z - (1 - ab).sqrt() * eps) / ab.sqrt()
        if eta > 0:
            sigma = eta * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).clamp(min=0).sqrt()
            if noise is None:
                noise = randn(z.shape, generator, z)
        else:
            sigma = torch.zeros_like(ab)
            noise = torch.zeros_like(z)
        prev = ab_prev.sqrt() * z0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps + sigma * noise
        return StepOutput(prev, z0)


@torch.no_grad()
def ddim_reverse(schedule: NoiseSchedule, predict_eps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 zn: torch.Tensor, t_start: torch.Tensor | int, num_steps: int, eta: float = 0.0,
                 generator: torch.Generator | None = None,
                 guide: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The DDIM sampling loop: ``num_steps`` steps from noisy latents ``zn`` (B, Z) at ``t_start`` (int or
    (B,)) down to clean, along :meth:`NoiseSchedule.trajectory`; ``predict_eps(z_t, t) -> eps`` is the
    denoiser (t: (B,) long). ``guide(ẑ_0) -> ẑ_0'`` (normalised (B, Z)) corrects each step's clean estimate
    (e.g. towards an observation) and the step continues from the corrected one, its noise re-derived.
    Returns ẑ_0 (B, Z)."""
    traj = schedule.trajectory(torch.as_tensor(t_start, device=zn.device).expand(zn.shape[0]), num_steps)
    for k in range(num_steps):
        eps = predict_eps(zn, traj[k])
        if guide is not None:
            ab = schedule.alpha_bar(traj[k], zn)
            z0 = guide(schedule.pred_original(eps, traj[k], zn))
            eps = (zn - ab.sqrt() * z0) / (1 - ab).clamp(min=1e-8).sqrt()
        zn, _ = schedule.step(eps, traj[k], zn, prev_t=traj[k + 1], eta=eta, generator=generator)
    return zn
