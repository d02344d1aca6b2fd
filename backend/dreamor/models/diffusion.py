"""DREAMoR's latent diffusion prior p(z_t | x_{t-1}) (paper section 3.3).

A transformer encoder over 1 + 6 tokens: the noisy latent z_t^{t'} and one token per body
part of the previous state x_{t-1}, each made by its own MLP tokeniser. A learned timestep
embedding is added to every token; the output at the latent token predicts the noise ε
(L2 loss). Classifier-free guidance: during training the condition tokens are replaced by a
learned null token with probability ``p_drop``; at sampling the conditional and null passes
run batched in one forward.

Body parts (every one of the 273 state dimensions is in exactly one token):

====== ================================================================== =====
token  state dimensions of x_{t-1}                                        width
====== ================================================================== =====
root   trans, trans_vel, root_orient (6D), root_orient_vel, pelvis J, J̇    21
spine  spine1, spine2, spine3, neck, head: 6D rotation, J, J̇ of each       60
l_arm  left collar, shoulder, elbow, wrist: 6D rotation, J, J̇ of each       48
r_arm  right collar, shoulder, elbow, wrist                                  48
l_leg  left hip, knee, ankle, foot                                           48
r_leg  right hip, knee, ankle, foot                                          48
====== ================================================================== =====

The condition is the MotionVAE's own input representation of x_{t-1}: canonicalised
(heading and horizontal position removed) and normalised by the VAE's statistics
(``vae_condition(vae, x_prev, rest_joints)``, the same view as the VAE's Gaussian prior
gets); the layout stays that of ``dreamor.body.state``. The prior
works on latents rescaled to zero mean and unit variance (``latent_mean``, ``latent_std``,
set from the training latents and saved with the weights); its public methods take and
return the VAE's raw latents.

The model knows nothing of sampling loops beyond ``denoise``/``sample``, which drive a
``NoiseSchedule`` (``models.schedule``) the diffusers way.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..body.frame import canonical_frame, transform_state
from ..body.skeleton import JOINT_GROUPS
from ..body.state import STATE_DIM, STATE_SLICES
from .checkpoint import load_checkpoint, save_checkpoint
from .configs import _from_dict
from .schedule import NoiseSchedule, ScheduleConfig, ddim_reverse, randn
from .vae import MotionVAE

CHECKPOINT_FORMAT = "dreamor-latent-diffusion"
CHECKPOINT_VERSION = 1

#: Body-part tokens: name -> SMPL joints whose rotation (6D), position and velocity it holds.
PART_JOINTS: dict[str, tuple[int, ...]] = {
    "root": (0,),
    "spine": JOINT_GROUPS["spine"],
    "left_arm": JOINT_GROUPS["left_arm"],
    "right_arm": JOINT_GROUPS["right_arm"],
    "left_leg": JOINT_GROUPS["left_leg"],
    "right_leg": JOINT_GROUPS["right_leg"],
}


def _range(name: str, start: int = 0, stop: int | None = None) -> list[int]:
    s = STATE_SLICES[name]
    return list(range(s.start, s.stop))[start:stop]


def part_indices() -> dict[str, list[int]]:
    """Body part -> indices into the 273-D state (see the module docstring's table)."""
    out = {}
    for part, joints in PART_JOINTS.items():
        idx: list[int] = []
        if part == "root":
            idx += _range("trans") + _range("trans_vel") + _range("root_orient") + _range("root_orient_vel")
        for j in joints:
            if j > 0:
                idx += _range("pose_body", 6 * (j - 1), 6 * j)
            idx += _range("joints", 3 * j, 3 * j + 3) + _range("joints_vel", 3 * j, 3 * j + 3)
        out[part] = idx
    return out


_all = sorted(i for v in part_indices().values() for i in v)
assert _all == list(range(STATE_DIM)), "body-part tokens must cover every state dimension once"


@dataclass
class DiffusionConfig:
    """Architecture of the latent diffusion prior (stored in its checkpoint)."""

    latent_dim: int = 48
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    #: probability of replacing the condition by the null token in training (CFG).
    p_drop: float = 0.1
    #: default classifier-free guidance scale ω of ``denoise``/``sample``.
    guidance: float = 2.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DiffusionConfig":
        return _from_dict(cls, d)


def vae_condition(vae: MotionVAE, x_prev: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """The prior's condition: world states x_{t-1} (B, ..., 273) -> the MotionVAE's own input
    view of them (B, ..., 273), canonicalised and normalised exactly as its networks see it.

    rest_joints: (B, 22, 3) or (22, 3), as for the VAE.
    """
    frame = canonical_frame(x_prev, rest_joints)
    return vae.normalize_state(transform_state(x_prev, frame, rest_joints))


class PartTokenizer(nn.Module):
    """Six 2-layer MLPs (one per body part) applied in one batched einsum.

    (B, 273) -> (B, P, d). Parts are gathered into a zero-padded (B, P, W) tensor; each
    part's first-layer weights only see its own width (the padding is zero).
    """

    def __init__(self, d_model: int):
        super().__init__()
        parts = list(part_indices().values())
        width = max(len(p) for p in parts)
        index = torch.full((len(parts), width), STATE_DIM, dtype=torch.long)  # STATE_DIM -> the zero pad
        for i, p in enumerate(parts):
            index[i, : len(p)] = torch.tensor(p)
        self.register_buffer("index", index, persistent=False)
        n = len(parts)
        self.w1 = nn.Parameter(torch.empty(n, width, d_model))
        self.b1 = nn.Parameter(torch.zeros(n, d_model))
        self.w2 = nn.Parameter(torch.empty(n, d_model, d_model))
        self.b2 = nn.Parameter(torch.zeros(n, d_model))
        for i, p in enumerate(parts):  # nn.Linear's default scale, by true fan-in
            nn.init.uniform_(self.w1.data[i], -1 / math.sqrt(len(p)), 1 / math.sqrt(len(p)))
        nn.init.uniform_(self.w2, -1 / math.sqrt(d_model), 1 / math.sqrt(d_model))

    @property
    def num_parts(self) -> int:
        return self.index.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, x.new_zeros(*x.shape[:-1], 1)], dim=-1)[..., self.index]  # (B, P, W)
        h = F.silu(torch.einsum("bpw,pwd->bpd", x, self.w1) + self.b1)
        return torch.einsum("bpd,pde->bpe", h, self.w2) + self.b2


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sinusoidal features (as DDPM / diffusers)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


class LatentDiffusion(nn.Module):
    """ε-prediction transformer D_θ(z_t^{t'} | x_{t-1}, t') with classifier-free guidance.

    Shapes: latents (B, Z) raw VAE latents unless said "normalised"; cond (B, 273) the
    VAE-prepared previous state; t (B,) long in [0, T) or an int.
    """

    def __init__(self, cfg: DiffusionConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or DiffusionConfig()
        d = cfg.d_model
        self.schedule = NoiseSchedule(cfg.schedule)
        self.tokenizer = PartTokenizer(d)
        n_tok = 1 + self.tokenizer.num_parts
        self.latent_in = nn.Sequential(nn.Linear(cfg.latent_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_embed = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.pos_embed = nn.Parameter(torch.randn(n_tok, d) * 0.02)
        self.null_token = nn.Parameter(torch.randn(d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, cfg.n_heads, cfg.ff_mult * d, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.latent_dim)
        nn.init.zeros_(self.out.weight)  # starts by predicting ε = 0
        nn.init.zeros_(self.out.bias)
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("latent_std", torch.ones(()))

    # -- latent scaling ----------------------------------------------------------------
    def set_latent_stats(self, latents: torch.Tensor) -> None:
        """latents: (N, Z) training latents -> per-dimension mean, one overall std.

        One scalar std (as Stable Diffusion's scale factor), so dimensions the VAE left
        unused are not blown up to unit variance.
        """
        self.latent_mean.copy_(latents.mean(0))
        self.latent_std.copy_((latents - latents.mean(0)).pow(2).mean().sqrt().clamp_min(1e-6))

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean) / self.latent_std

    def unnormalize(self, zn: torch.Tensor) -> torch.Tensor:
        return zn * self.latent_std + self.latent_mean

    # -- the network ---------------------------------------------------------------------
    def forward(
        self, zn_t: torch.Tensor, t: torch.Tensor | int, cond: torch.Tensor | None, null_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted noise (B, Z) for normalised noisy latents ``zn_t`` (B, Z).

        null_mask: (B,) bool, True where the condition is replaced by the null token;
        ``cond=None`` means every sample is unconditional.
        """
        b = zn_t.shape[0]
        t = torch.as_tensor(t, device=zn_t.device, dtype=torch.long).expand(b)
        d = self.config.d_model
        null = self.null_token.to(zn_t.dtype).expand(b, self.tokenizer.num_parts, d)
        if cond is None:
            cond_tok = null
        else:
            cond_tok = self.tokenizer(cond.to(zn_t.dtype))
            if null_mask is not None:
                cond_tok = torch.where(null_mask[:, None, None], null, cond_tok)
        tokens = torch.cat([self.latent_in(zn_t)[:, None], cond_tok], dim=1)
        tokens = tokens + self.pos_embed + self.time_embed(timestep_features(t, d).to(zn_t.dtype))[:, None]
        h = self.encoder(tokens)
        return self.out(self.out_norm(h[:, 0]))

    def predict_eps(
        self, zn_t: torch.Tensor, t: torch.Tensor | int, cond: torch.Tensor | None, guidance: float
    ) -> torch.Tensor:
        """CFG noise ε_null + ω (ε_cond - ε_null): both passes in one forward of batch 2B
        (ω = 1 is the conditional pass alone, and runs only that)."""
        b = zn_t.shape[0]
        if cond is None:
            return self(zn_t, t, None)
        if guidance == 1.0:
            return self(zn_t, t, cond)
        t = torch.as_tensor(t, device=zn_t.device, dtype=torch.long).expand(b)
        null_mask = torch.arange(2 * b, device=zn_t.device) >= b
        eps = self(torch.cat([zn_t, zn_t]), torch.cat([t, t]), torch.cat([cond, cond]), null_mask)
        eps_cond, eps_null = eps.chunk(2)
        return eps_null + guidance * (eps_cond - eps_null)

    # -- training ------------------------------------------------------------------------
    def drop_mask(self, batch: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(batch,) bool: which samples train unconditionally (probability ``p_drop`` each)."""
        gdev = generator.device if generator is not None else device
        return (torch.rand(batch, generator=generator, device=gdev) < self.config.p_drop).to(device)

    def loss(
        self, z0: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """L_diff = ||ε - ε̂||² (mean) for raw clean latents z0 (B, Z) and conditions (B, 273).

        t' ~ U[0, T), ε ~ N(0, I), condition dropped to the null token with prob. p_drop.
        """
        b, dev = z0.shape[0], z0.device
        zn0 = self.normalize(z0)
        gdev = generator.device if generator is not None else dev
        t = torch.randint(0, self.schedule.num_train_timesteps, (b,), generator=generator, device=gdev).to(dev)
        noise = randn(zn0.shape, generator, zn0)
        null_mask = self.drop_mask(b, dev, generator)
        eps = self(self.schedule.add_noise(zn0, noise, t), t, cond, null_mask)
        loss = F.mse_loss(eps, noise)
        return loss, {"loss": float(loss.detach()), "null_frac": float(null_mask.float().mean())}

    # -- sampling (the loop is schedule.ddim_reverse) -------------------------------------
    def reverse(
        self,
        zn: torch.Tensor,
        cond: torch.Tensor | None,
        t_start: torch.Tensor | int,
        num_steps: int,
        guidance: float | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        guide=None,
    ) -> torch.Tensor:
        """``num_steps`` DDIM steps of this denoiser from normalised noisy latents ``zn`` (B, Z) at ``t_start``
        (int or (B,)) down to clean; returns normalised ẑ_0 (B, Z). ``guide``: see ``schedule.ddim_reverse``."""
        g = self.config.guidance if guidance is None else guidance
        return ddim_reverse(self.schedule, lambda z, t: self.predict_eps(z, t, cond, g), zn, t_start, num_steps,
                            eta, generator, guide)

    @torch.no_grad()
    def denoise(
        self,
        z: torch.Tensor,
        cond: torch.Tensor,
        t_start: torch.Tensor | int,
        num_steps: int = 10,
        guidance: float | None = None,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        guide=None,
    ) -> torch.Tensor:
        """The test-time target ẑ: noise raw latents ``z`` to ``t_start`` and run K DDIM steps back.

        z: (..., Z) raw VAE latents, any leading dims (e.g. windows x frames), all denoised
        in one batch; cond: (..., 273) VAE-prepared previous states (see the module doc);
        t_start: int or tensor broadcastable to z's leading dims, timesteps in [0, T)
        (``schedule.timestep_at(0.5)`` is the paper's t' = T/2); noise: (..., Z) or drawn
        from ``generator``; ``guide(ẑ_0) -> ẑ_0'`` on raw latents (..., Z) corrects every step's clean
        estimate (observation-guided denoising). Returns ẑ (..., Z) raw latents.
        """
        lead = z.shape[:-1]
        zf = z.reshape(-1, z.shape[-1])
        cf = cond.reshape(-1, cond.shape[-1])
        t = torch.as_tensor(t_start, device=z.device, dtype=torch.long).expand(lead).reshape(-1)
        if noise is None:
            noise = randn(zf.shape, generator, zf)
        zn = self.schedule.add_noise(self.normalize(zf), noise.reshape(zf.shape), t)
        flat_guide = None
        if guide is not None:
            def flat_guide(z0n: torch.Tensor) -> torch.Tensor:
                return self.normalize(guide(self.unnormalize(z0n).reshape(z.shape)).reshape(zf.shape))
        return self.unnormalize(self.reverse(zn, cf, t, num_steps, guidance, eta, generator, flat_guide)).reshape(z.shape)

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor | None,
        num_steps: int = 50,
        guidance: float | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        batch: int | None = None,
    ) -> torch.Tensor:
        """Draw latents z_t ~ p(z_t | x_{t-1}): (..., 273) conditions -> (..., Z) raw latents.

        ``cond=None`` samples the unconditional model (``batch`` samples).
        """
        lead = cond.shape[:-1] if cond is not None else (batch or 1,)
        n = math.prod(lead)
        zn = randn((n, self.config.latent_dim), generator, self.latent_mean)
        cf = None if cond is None else cond.reshape(n, -1)
        t = self.schedule.num_train_timesteps - 1
        zn = self.reverse(zn, cf, t, num_steps, guidance, eta, generator)
        return self.unnormalize(zn).reshape(*lead, -1)


# -- checkpoints --------------------------------------------------------------------------
def save_diffusion(path: str | Path, model: LatentDiffusion, **extra: Any) -> Path:
    """Write a checkpoint that rebuilds its own model: config + weights (+ ``extra``, e.g.
    the training config, the VAE it was trained for)."""
    return save_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, asdict(model.config), model.state_dict(), **extra)


def read_diffusion(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A latent diffusion checkpoint dict; DreamorError says what is wrong."""
    return load_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, what="DREAMoR latent diffusion",
                           train="dreamor train diffusion", device=map_location)


def load_diffusion(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[LatentDiffusion, dict[str, Any]]:
    """-> (model in eval mode, the whole checkpoint dict)."""
    ckpt = read_diffusion(path, map_location)
    model = LatentDiffusion(DiffusionConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(map_location).eval(), ckpt
