"""The window prior: a diffusion model of a whole window of motion, conditioned on what is seen.

The joint-completion network (``models.infill``) regresses the hidden joints: it answers the
conditional *mean*, the best answer for mean joint error and a damped, single one for an animator
(hidden legs moved 28 % less than real ones). This model (issue #28) learns the conditional
*distribution* instead, p(hidden motion | visible motion, mask, body): a denoising diffusion model
over the body-frame joints of every frame of a window, conditioned on the completion network's
per-frame features (visible joints in the body frame, the mask, pelvis velocity and turn rate, the
skeleton's rest offsets). Samples are distinct plausible completions; their spread is the doubt.

Where it departs from the issue's wording (a diffusion over a window of MotionVAE latents): our
MotionVAE's latents are one-frame transitions relative to the previous state, so a window of them
means a motion only together with its start state, through an autoregressive rollout that drifts
(2 s posterior rollouts 17-26 cm off, MODEL_CARD.md); the observation lives in joint space. The
window is therefore a window of joints, the MotionVAE still decoding every refined frame. The prior
enters the refinement through the answer's start, the alternatives and the doubt
(``refine.alternatives``); inside the optimisation the one-transition latent prior still gives the
SDS term (using this prior's denoised targets there is not done yet).

Network: the completion network's trunk (dilated residual temporal convolutions, receptive field
~4 s, fully convolutional, so any length works) with the noisy joints as extra input channels and
the noise level as FiLM on every block; it predicts the clean joints (x0, metres, body frame).
With the new input channels and the FiLM zero-initialised a warm start from a trained completion
network *is* that network, which then learns to use the noisy sample. The noise process runs on
the joints normalised per coordinate (``joint_mean``, ``joint_std``); cosine schedule, T = 1000;
classifier-free guidance by replacing the condition with a learned null vector (``p_uncond``).

Sizes: as the completion network, everything at the reference size (``bodies.body_scale``).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..body.proportions import MIRROR_JOINTS, body_scale
from ..body.skeleton import NUM_JOINTS
from .checkpoint import load_checkpoint, save_checkpoint
from .configs import _from_dict
from .infill import NUM_FEATURES, InfillConfig, JointInfill, features, to_body, to_world
from .schedule import NoiseSchedule, ScheduleConfig, randn

CHECKPOINT_FORMAT = "dreamor-window-prior"
CHECKPOINT_VERSION = 1
NUM_COORDS = NUM_JOINTS * 3


@dataclass
class WindowPriorConfig:
    trunk: InfillConfig = field(default_factory=InfillConfig)
    time_dim: int = 128
    num_train_timesteps: int = 1000
    beta_schedule: str = "cosine"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WindowPriorConfig":
        d = dict(d)
        trunk = InfillConfig.from_dict(d.pop("trunk", {}))
        return _from_dict(cls, {**d, "trunk": trunk})

    def schedule(self) -> NoiseSchedule:
        return NoiseSchedule(ScheduleConfig(num_train_timesteps=self.num_train_timesteps,
                                            beta_schedule=self.beta_schedule))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer timesteps -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    arg = (t.float() + 1.0)[:, None] * freqs[None]
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


class _FiLMBlock(nn.Module):
    """The completion network's residual block, its input scaled and shifted by the noise level."""

    def __init__(self, channels: int, kernel: int, dilation: int, time_dim: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel // 2),
                              padding_mode="replicate")
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.GELU()
        self.film = nn.Linear(time_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(temb)[..., None].chunk(2, dim=1)
        return h + self.mix(self.act(self.conv(self.act(h) * (1 + scale) + shift)))


class WindowPrior(nn.Module):
    """(features (B, T, F), noisy normalised joints (B, T, 66), t (B,)) -> clean body-frame joints (B, T, 22, 3) m."""

    def __init__(self, config: WindowPriorConfig | None = None):
        super().__init__()
        self.config = config or WindowPriorConfig()
        trunk = self.config.trunk
        c, td = trunk.channels, self.config.time_dim
        self.register_buffer("feat_mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("feat_std", torch.ones(NUM_FEATURES))
        self.register_buffer("joint_mean", torch.zeros(NUM_COORDS))
        self.register_buffer("joint_std", torch.ones(NUM_COORDS))
        self.null_cond = nn.Parameter(torch.zeros(NUM_FEATURES))
        self.inp = nn.Conv1d(NUM_FEATURES, c, 1)
        self.inp_noisy = nn.Conv1d(NUM_COORDS, c, 1)
        nn.init.zeros_(self.inp_noisy.weight)
        nn.init.zeros_(self.inp_noisy.bias)
        self.time = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.blocks = nn.ModuleList([_FiLMBlock(c, trunk.kernel, d, td) for d in trunk.dilations])
        self.out = nn.Conv1d(c, NUM_COORDS, 1)
        self.schedule = self.config.schedule()

    def warm_start(self, infill: JointInfill) -> None:
        """Copy a trained completion network's weights (same trunk): the prior then predicts what it predicts."""
        if infill.config.to_dict() != self.config.trunk.to_dict():
            raise ValueError("the completion network's trunk differs from this prior's")
        src = infill.state_dict()
        own = self.state_dict()
        for k, v in src.items():  # same names: feat_mean/std, inp, blocks.i.conv/mix, out
            own[k] = v.clone()
        self.load_state_dict(own)

    def normalise(self, local: torch.Tensor) -> torch.Tensor:
        """Body-frame joints (..., T, 22, 3) m -> (..., T, 66) normalised."""
        return (local.flatten(-2) - self.joint_mean) / self.joint_std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.joint_std + self.joint_mean).unflatten(-1, (NUM_JOINTS, 3))

    def forward(self, feat: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor,
                uncond: torch.Tensor | None = None) -> torch.Tensor:
        cond = (feat - self.feat_mean) / self.feat_std
        if uncond is not None:
            cond = torch.where(uncond[:, None, None], self.null_cond.expand_as(cond), cond)
        h = self.inp(cond.transpose(1, 2)) + self.inp_noisy(noisy.transpose(1, 2))
        temb = self.time(timestep_embedding(t, self.config.time_dim))
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h).transpose(1, 2).unflatten(-1, (NUM_JOINTS, 3))

    def predict_eps(self, feat: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor, guidance: float = 1.0) -> torch.Tensor:
        """The noise the model sees in ``noisy`` (B, T, 66) at ``t`` (B,), with classifier-free guidance
        ``guidance`` (1: the conditional model alone; both passes batched otherwise)."""
        if guidance == 1.0:
            x0 = self.normalise(self(feat, noisy, t))
        else:
            b = len(noisy)
            flags = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(noisy.device)
            both = self.normalise(self(feat.repeat(2, 1, 1), noisy.repeat(2, 1, 1), t.repeat(2), uncond=flags))
            x0 = both[b:] + guidance * (both[:b] - both[b:])
        ab = self.schedule.alpha_bar(t, noisy)
        return (noisy - ab.sqrt() * x0) / (1 - ab).clamp(min=1e-8).sqrt()


# ----------------------------------------------------------------------------- sampling
@dataclass
class SampleConfig:
    """How completions are drawn: ``steps`` DDIM steps from ``t_start`` (a fraction of T; 1 = pure noise),
    ``eta`` (0: deterministic DDIM from the drawn noise), classifier-free ``guidance`` (1: none)."""

    steps: int = 10
    t_start: float = 1.0
    eta: float = 0.0
    guidance: float = 1.0


#: frames per network call when sampling: a long clip is cut into pieces this long, each with the trunk's reach of
#: context either side (the same output; memory and time grow linearly with the clip; ``on_step`` runs per piece)
SAMPLE_PIECE = 1024


def in_pieces(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], feat: torch.Tensor, noisy: torch.Tensor,
              reach: int, piece: int = SAMPLE_PIECE, on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """fn(feat (B, t, F), noisy (B, t, C)) -> (B, t, ...) of a network whose output frame depends on ``reach`` frames
    either side, evaluated ``piece`` frames at a time over (B, T, ...) inputs -> (B, T, ...). ``on_step()`` is called
    before every call (it may raise to stop)."""
    t = feat.shape[1]
    if t == 0:
        return fn(feat, noisy)
    outs = []
    for a in range(0, t, piece if t > piece + 2 * reach else t):
        b = min(a + piece, t) if t > piece + 2 * reach else t
        lo, hi = max(0, a - reach), min(t, b + reach)
        if on_step is not None:
            on_step()
        outs.append(fn(feat[:, lo:hi], noisy[:, lo:hi])[:, a - lo : b - lo])
    return torch.cat(outs, 1)


@torch.no_grad()
def denoise_local(model: WindowPrior, feat: torch.Tensor, noisy: torch.Tensor, t_start: torch.Tensor | int,
                  cfg: SampleConfig, generator: torch.Generator | None = None,
                  on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """DDIM from normalised noisy joints ``noisy`` (B, T, 66) at ``t_start`` down to clean -> (B, T, 22, 3) m body
    frame; ``on_step()`` before every network call (``in_pieces``)."""
    from .schedule import ddim_reverse

    reach = model.config.trunk.reach

    def eps(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return in_pieces(lambda f, x: model.predict_eps(f, x, t, cfg.guidance), feat, z.unflatten(-1, noisy.shape[1:]),
                         reach, on_step=on_step).flatten(1)

    flat = ddim_reverse(model.schedule, eps, noisy.flatten(1), t_start, cfg.steps, eta=cfg.eta, generator=generator)
    return model.denormalise(flat.unflatten(-1, noisy.shape[1:]))


def _features_scaled(joints: np.ndarray, visible: np.ndarray, rest: np.ndarray, mirror: bool):
    s = body_scale(rest)
    if mirror:
        m, flip = list(MIRROR_JOINTS), np.array([-1.0, 1.0, 1.0])
        joints, visible, rest = joints[:, m] * flip, visible[:, m], rest[m] * flip
    feat, origin, yaw = features(np.where(visible[..., None], joints, 0.0) / s, visible, rest / s)
    return feat, origin, yaw, s


@torch.no_grad()
def sample_completions(model: WindowPrior, joints: np.ndarray, visible: np.ndarray, rest: np.ndarray, num: int,
                       seed: int = 0, cfg: SampleConfig | None = None, around: np.ndarray | None = None,
                       on_step: Callable[[], None] | None = None) -> np.ndarray:
    """``num`` completions of a clip: (T, 22, 3) m at 30 Hz, (T, 22) bool, (22, 3) -> (num, T, 22, 3) world joints,
    visible joints exactly as given. Every other sample is drawn for the clip's mirror image and mirrored back
    (the network's own left/right bias then cancels over the samples). ``around`` (T, 22, 3) world joints: start
    from them noised to ``cfg.t_start`` (SDEdit: a completion near them) instead of from pure noise. ``on_step()``
    is called before every network call (it may raise to stop)."""
    cfg = cfg or SampleConfig()
    mirror_pairs = list(MIRROR_JOINTS), np.array([-1.0, 1.0, 1.0])
    p = next(model.parameters())
    out = np.empty((num, *joints.shape))
    gen = torch.Generator().manual_seed(int(seed))
    for mirror in (False, True):
        idx = np.arange(num)[int(mirror)::2]
        if len(idx) == 0:
            continue
        feat, origin, yaw, s = _features_scaled(joints, visible, rest, mirror)
        feat_t = torch.from_numpy(feat).to(p)[None].expand(len(idx), -1, -1)
        t_start = model.schedule.timestep_at(cfg.t_start)
        start = randn((len(idx), len(joints), NUM_COORDS), gen, p)
        if around is not None:
            m, flip = mirror_pairs
            ref = (around[:, m] * flip if mirror else around) / s
            local0 = torch.from_numpy(to_body(ref, origin, yaw)).to(p)
            start = model.schedule.add_noise(model.normalise(local0)[None].expand_as(start), start,
                                             torch.full((len(idx),), t_start, dtype=torch.long))
        local = denoise_local(model, feat_t, start, t_start, cfg, gen, on_step).double().cpu().numpy()
        world = np.stack([to_world(loc, origin, yaw) for loc in local]) * s
        if mirror:
            m, flip = mirror_pairs
            world = world[:, :, m] * flip
        out[idx] = world
    return np.where(visible[None, ..., None], joints[None], out)


# ----------------------------------------------------------------------------- checkpoints
def save_window_prior(path: str | os.PathLike, model: WindowPrior, **extra: Any) -> Path:
    """Write the checkpoint (``models/checkpoint.py``'s format; extra: step, metrics, train config...)."""
    return save_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, model.config.to_dict(), model.state_dict(),
                           **extra)


def read_window_prior(path: str | os.PathLike) -> dict:
    return load_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, what="window-prior",
                           train="dreamor train window-prior")


def load_window_prior(path: str | os.PathLike, device: str | torch.device = "cpu") -> WindowPrior:
    """The trained prior in eval mode, frozen; ``.metrics`` and ``.step`` from the checkpoint."""
    ckpt = read_window_prior(path)
    model = WindowPrior(WindowPriorConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.metrics = ckpt.get("metrics", {})
    model.step = ckpt.get("step", 0)
    return model.to(device).eval().requires_grad_(False)
