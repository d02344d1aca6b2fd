"""DREAMoR's MotionVAE (paper section 3.2; after HuMoR): a conditional VAE over one-frame
transitions of the state x_t (``dreamor.body.state``, D = 273).

- Encoder  q(z_t | x_t, x_{t-1}) = N(mu, diag exp(logvar)),  z_t in R^Z (Z = 48).
- Decoder  x^_t = x_{t-1} + G(z_t, x_{t-1}), plus contact logits for the 9 contact joints.
- Gaussian conditional prior p(z_t | x_{t-1}) (``vae_parts.ConditionalPrior``), fitted after
  training for the HuMoR-style baseline; DREAMoR itself uses a diffusion prior over z_t.

Canonical frame (as HuMoR, ``dreamor.body.frame``): before the networks, x_{t-1} and x_t are
expressed in the local frame of x_{t-1} (heading removed, pelvis over the origin); the decoder's
output is taken back to the world.

Normalisation: the encoder sees [(x_{t-1} - m_x) / s_x, (x_t - x_{t-1} - m_d) / s_d] and the
prior sees the first half; the decoder outputs (x_t - x_{t-1} - m_d) / s_d for all 273
dims. m/s are statistics of canonical states and one-frame deltas of the training split
(``canonical_norm_stats``), held as buffers and saved in the checkpoint. The predicted
root and body 6D rotations are re-orthonormalised (Gram-Schmidt) after adding the delta.

Bone projection (our addition, on by default: ``MotionVAE.project_bones``): ``decode`` puts
the regressed joints of x^_t back on the caller's skeleton (``skeleton.project_bone_lengths``:
bone directions kept, lengths set to the rest skeleton's) before they feed the next step, so
bone-length errors cannot compound over long free-running rollouts (sampling). The training
pass (``forward``) does not project, and the refinement turns it off
(``RefineConfig.project_bones``: its rollouts are short and anchored by observations).

Every function is batched over any leading dims (B, T, ...); ``rest_joints`` is (B, 22, 3)
(the clip's skeleton, broadcast over time) or (22, 3).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..body.frame import canonical_frame, canonical_pairs, transform_state
from ..body.kinematics import project_bone_lengths
from ..body.skeleton import NUM_JOINTS
from ..body.state import NUM_CONTACTS, STATE_DIM, STATE_SLICES
from ..data.dataset import MotionData, NormStats
from ..errors import DreamorError
from .checkpoint import load_checkpoint, save_checkpoint
from .configs import TrainConfig, VAEConfig
from .vae_parts import ConditionalPrior, ResMLP

CHECKPOINT_FORMAT = "dreamor-motionvae"
CHECKPOINT_VERSION = 1
#: floors for the normalisation standard deviations (states / one-frame deltas).
STATE_STD_FLOOR = 1e-2
DELTA_STD_FLOOR = 5e-3

_S = STATE_SLICES


def _rest(rest_joints: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Rest joints (B, 22, 3) or (22, 3) -> broadcastable against x's leading dims."""
    r = rest_joints.to(x)
    if r.dim() == 3 and x.dim() > 2:
        r = r.view(r.shape[0], *([1] * (x.dim() - 2)), *r.shape[1:])
    return r


@functools.lru_cache(maxsize=None)
def _r6d_index(device: torch.device) -> torch.Tensor:
    """The 22 6D rotations of a state (root first), as (22 * 6,) indices into its 273 dims, on ``device``."""
    return torch.cat([torch.arange(_S["root_orient"].start, _S["root_orient"].stop),
                      torch.arange(_S["pose_body"].start, _S["pose_body"].stop)]).to(device)


def orthonormalize(x: torch.Tensor) -> torch.Tensor:
    """Project the root and body 6D rotations of states (..., 273) onto valid rotations: Gram-Schmidt on
    each 6D pair of columns (as ``r6d_to_mat`` then ``mat_to_r6d``, without building the third column)."""
    index = _r6d_index(x.device)
    r = x.index_select(-1, index).reshape(*x.shape[:-1], NUM_JOINTS, 2, 3)
    a, b = r[..., 0, :], r[..., 1, :]
    a = a / a.norm(dim=-1, keepdim=True)
    b = b - (a * b).sum(-1, keepdim=True) * a
    b = b / b.norm(dim=-1, keepdim=True)
    return x.index_copy(-1, index, torch.stack([a, b], dim=-2).reshape(*x.shape[:-1], -1))


def project_state_bones(x: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """States (..., 273) -> the same with the regressed joints on the rest skeleton's bone lengths."""
    sl = _S["joints"]
    joints = x[..., sl].reshape(*x.shape[:-1], NUM_JOINTS, 3)
    fixed = project_bone_lengths(joints, _rest(rest_joints, x)).reshape(*x.shape[:-1], -1)
    return torch.cat([x[..., :sl.start], fixed, x[..., sl.stop:]], dim=-1)


def canonical_norm_stats(data: MotionData, max_pairs: int = 200_000, seed: int = 0) -> NormStats:
    """Mean/std of canonical x_{t-1} and of canonical one-frame deltas over the training split.

    Up to ``max_pairs`` transitions, drawn at random (deterministic for a given seed).
    Standard deviations are floored (STATE_STD_FLOOR, DELTA_STD_FLOOR).
    """
    rows, clips = [], []
    for c in np.flatnonzero(data.is_train):
        s, e = data.clip_starts[c], data.clip_starts[c + 1]
        rows.append(np.arange(s, e - 1))
        clips.append(np.full(e - 1 - s, c))
    if not rows or sum(len(r) for r in rows) == 0:
        raise DreamorError("no training transitions to compute normalisation statistics from")
    rows, clips = np.concatenate(rows), np.concatenate(clips)
    if len(rows) > max_pairs:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), max_pairs, replace=False))
        rows, clips = rows[pick], clips[pick]
    prev_c, cur_c, _ = canonical_pairs(
        torch.from_numpy(data.states[rows]).double(), torch.from_numpy(data.states[rows + 1]).double(),
        torch.from_numpy(data.rest_joints[clips]).double(),
    )
    d = cur_c - prev_c
    f = lambda t: t.float().numpy()  # noqa: E731
    return NormStats(
        f(prev_c.mean(0)), f(prev_c.std(0).clamp_min(STATE_STD_FLOOR)),
        f(d.mean(0)), f(d.std(0).clamp_min(DELTA_STD_FLOOR)),
    )


# ----------------------------------------------------------------------------- the model
@dataclass
class Rollout:
    """An autoregressive rollout. states: (B, T, 273) world; contacts: (B, T, 9) probabilities;
    contact_logits: (B, T, 9); z: (B, T, Z) the latents used."""

    states: torch.Tensor
    contacts: torch.Tensor
    contact_logits: torch.Tensor
    z: torch.Tensor


@dataclass
class WindowOutput:
    """The training pass over windows of L frames (L - 1 transitions), all (B, L - 1, ...).

    pred: x^_t in the canonical frame of the x_{t-1} that was fed in (ground truth or the
    model's own rollout); target: ground-truth x_t in the canonical frame of ground-truth
    x_{t-1} (HuMoR's local supervision); contact_logits (9); mu, logvar, z (Z).
    """

    pred: torch.Tensor
    target: torch.Tensor
    contact_logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class MotionVAE(nn.Module):
    """The MotionVAE; see the module docstring. ``config`` is a VAEConfig."""

    #: put decoded joints back on the skeleton's bone lengths (module docstring); not saved
    project_bones: bool = True

    def __init__(self, config: VAEConfig | None = None, norm: NormStats | None = None):
        super().__init__()
        cfg = config or VAEConfig()
        self.config = cfg
        d, z = STATE_DIM, cfg.latent_dim
        self.encoder = ResMLP(2 * d, cfg.hidden, 2 * z, cfg.enc_blocks)
        self.decoder = ResMLP(d + z, cfg.hidden, d + NUM_CONTACTS, cfg.dec_blocks, cond_dim=z)
        nn.init.zeros_(self.decoder.out.weight)  # start from x^_t = x_{t-1} + mean delta
        nn.init.zeros_(self.decoder.out.bias)
        self.prior = ConditionalPrior(d, z, cfg.prior_hidden, cfg.prior_blocks, cfg.logvar_min, cfg.logvar_max)
        for name in ("state_mean", "delta_mean"):
            self.register_buffer(name, torch.zeros(d))
        for name in ("state_std", "delta_std"):
            self.register_buffer(name, torch.ones(d))
        if norm is not None:
            self.set_norm(norm)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def set_norm(self, norm: NormStats) -> None:
        for name in ("state_mean", "state_std", "delta_mean", "delta_std"):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(getattr(norm, name)), dtype=torch.float32))

    def norm_stats(self) -> NormStats:
        return NormStats(*(getattr(self, n).detach().cpu().numpy() for n in ("state_mean", "state_std", "delta_mean", "delta_std")))

    # --- canonical-frame networks (inputs/outputs in the canonical frame, unnormalised)
    def normalize_state(self, prev_c: torch.Tensor) -> torch.Tensor:
        """Canonical x_{t-1} (..., 273) -> the networks' normalised input (..., 273)."""
        return (prev_c - self.state_mean) / self.state_std


    def posterior_c(self, prev_c: torch.Tensor, cur_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical (x_{t-1}, x_t) (..., 273) -> mu, logvar (..., Z)."""
        delta = (cur_c - prev_c - self.delta_mean) / self.delta_std
        mu, logvar = self.encoder(torch.cat([self.normalize_state(prev_c), delta], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(self.config.logvar_min, self.config.logvar_max)

    def decode_c(self, prev_c: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical x_{t-1} (..., 273), z (..., Z) -> canonical x^_t (..., 273), contact logits (..., 9)."""
        out = self.decoder(torch.cat([self.normalize_state(prev_c), z], dim=-1), cond=z)
        delta = out[..., :STATE_DIM] * self.delta_std + self.delta_mean
        return orthonormalize(prev_c + delta), out[..., STATE_DIM:]

    def prior_c(self, prev_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical x_{t-1} (..., 273) -> the conditional prior's mu, logvar (..., Z)."""
        return self.prior(self.normalize_state(prev_c))

    # --- world-frame API
    def encode(self, x_prev: torch.Tensor, x_t: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z_t | x_t, x_{t-1}): world states (B, ..., 273) -> mu, logvar (B, ..., Z).

        For a sequence x_{0:T} (B, T+1, 273): ``encode(x[:, :-1], x[:, 1:], rest)`` gives z_{1:T}.
        """
        prev_c, cur_c, _ = canonical_pairs(x_prev, x_t, rest_joints)
        return self.posterior_c(prev_c, cur_c)

    def decode(self, x_prev: torch.Tensor, z: torch.Tensor, rest_joints: torch.Tensor,
               project_bones: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: world x_{t-1} (B, ..., 273), z_t (B, ..., Z) -> world x^_t (B, ..., 273), contact logits (B, ..., 9).

        ``project_bones``: put x^_t's joints on the skeleton (None: ``self.project_bones``).
        """
        frame = canonical_frame(x_prev, rest_joints)
        x_c, logits = self.decode_c(transform_state(x_prev, frame, rest_joints), z)
        x_t = transform_state(x_c, frame.inverse(), rest_joints)
        project = self.project_bones if project_bones is None else project_bones
        return (project_state_bones(x_t, rest_joints) if project else x_t), logits

    def prior_params(self, x_prev: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z_t | x_{t-1}) for world x_{t-1} (B, ..., 273) -> mu, logvar (B, ..., Z)."""
        frame = canonical_frame(x_prev, rest_joints)
        return self.prior_c(transform_state(x_prev, frame, rest_joints))

    def rollout(self, x0: torch.Tensor, z: torch.Tensor, rest_joints: torch.Tensor,
                project_bones: bool | None = None) -> Rollout:
        """Decode z_{1:T} (B, T, Z) autoregressively from x_0 (B, 273) -> x^_{1:T} (B, T, 273).

        Differentiable w.r.t. z, x0 (and the weights): nothing is detached. ``project_bones``: as ``decode``.
        """
        states, logits = [], []
        x = x0
        for t in range(z.shape[1]):
            x, c = self.decode(x, z[:, t], rest_joints, project_bones)
            states.append(x)
            logits.append(c)
        logits_t = torch.stack(logits, dim=1)
        return Rollout(torch.stack(states, dim=1), torch.sigmoid(logits_t), logits_t, z)

    def sample(self, x0: torch.Tensor, steps: int, rest_joints: torch.Tensor, use_prior: bool = True,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> Rollout:
        """Roll out ``steps`` frames from x_0 (B, 273), drawing z_t ~ p(z_t | x_{t-1}) (the
        fitted conditional prior) or N(0, I) (``use_prior=False``), scaled by ``temperature``."""
        states, logits, zs = [], [], []
        x = x0
        for _ in range(steps):
            eps = torch.randn(x.shape[0], self.latent_dim, generator=generator, device=x.device, dtype=x.dtype)
            if use_prior:
                mu, logvar = self.prior_params(x, rest_joints)
                z = mu + temperature * eps * (0.5 * logvar).exp()
            else:
                z = temperature * eps
            x, c = self.decode(x, z, rest_joints)
            states.append(x)
            logits.append(c)
            zs.append(z)
        logits_t = torch.stack(logits, dim=1)
        return Rollout(torch.stack(states, dim=1), torch.sigmoid(logits_t), logits_t, torch.stack(zs, dim=1))

    def forward(self, states: torch.Tensor, rest_joints: torch.Tensor, p_own: float = 0.0,
                sample: bool = True, detach: bool = True) -> WindowOutput:
        """The training pass over windows ``states`` (B, L, 273) of ground truth (world).

        Each of the L - 1 transitions is encoded and decoded. With ``p_own`` > 0 (scheduled
        sampling, HuMoR), the x_{t-1} fed in at step t > 1 is, per window with probability
        p_own, the model's own previous prediction (``detach``: without backprop through
        it) instead of the ground truth; the encoder then sees (x^_{t-1}, ground-truth x_t)
        and the decoder must land on ground truth from where the rollout got to.
        ``sample``: z from the posterior (reparameterised) or its mean.
        """
        prev_gt, cur_gt = states[:, :-1], states[:, 1:]
        prev_c, target, _ = canonical_pairs(prev_gt, cur_gt, rest_joints)

        def latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
            return mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu

        if p_own <= 0.0:  # teacher forcing: every transition in one batch
            mu, logvar = self.posterior_c(prev_c, target)
            z = latent(mu, logvar)
            pred, logits = self.decode_c(prev_c, z)
            return WindowOutput(pred, target, logits, mu, logvar, z)

        outs = []
        x_prev = states[:, 0]
        for t in range(states.shape[1] - 1):
            if t > 0:
                own = torch.rand(states.shape[0], 1, device=states.device) < p_own
                fed = x_own.detach() if detach else x_own
                x_prev = torch.where(own, fed, states[:, t])
            frame = canonical_frame(x_prev, rest_joints)
            pc = transform_state(x_prev, frame, rest_joints)
            mu, logvar = self.posterior_c(pc, target[:, t])
            z = latent(mu, logvar)
            pred, logits = self.decode_c(pc, z)
            x_own = transform_state(pred, frame.inverse(), rest_joints)
            outs.append((pred, logits, mu, logvar, z))
        pred, logits, mu, logvar, z = (torch.stack(v, dim=1) for v in zip(*outs))
        return WindowOutput(pred, target, logits, mu, logvar, z)


# ----------------------------------------------------------------------------- checkpoints
def save_vae(path: str | os.PathLike, vae: MotionVAE, config: TrainConfig, *, step: int, prior_step: int = 0,
             prior_fitted: bool = False, optimizer: dict | None = None, prior_optimizer: dict | None = None,
             metrics: dict | None = None) -> Path:
    """Write the MotionVAE's checkpoint (``models/checkpoint.py``'s format; the learned prior and the
    normalisation statistics beside the weights, the training state for resuming)."""
    state = vae.state_dict()
    return save_checkpoint(
        path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, config.to_dict(),
        {k: v for k, v in state.items() if not k.startswith("prior.")},
        prior=vae.prior.state_dict(), prior_fitted=bool(prior_fitted),
        norm={k: state[k].clone() for k in ("state_mean", "state_std", "delta_mean", "delta_std")},
        step=int(step), prior_step=int(prior_step), optimizer=optimizer, prior_optimizer=prior_optimizer,
        metrics=metrics or {},
    )


def read_vae(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """A MotionVAE checkpoint dict (safely: tensors and plain data only); DreamorError says what is wrong."""
    return load_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, what="MotionVAE", train="dreamor train vae",
                           device=device)


def vae_from_checkpoint(ckpt: dict) -> MotionVAE:
    """Rebuild the MotionVAE (with its prior) from a checkpoint dict."""
    config = TrainConfig.from_dict(ckpt["config"])
    vae = MotionVAE(config.model)
    state = dict(ckpt["model"])
    state.update({f"prior.{k}": v for k, v in ckpt["prior"].items()})
    vae.load_state_dict(state)
    vae.prior_fitted = bool(ckpt.get("prior_fitted", False))
    vae.train_config = config
    vae.metrics = ckpt.get("metrics", {})
    vae.step = int(ckpt.get("step", 0))
    return vae


def load_vae(path: str | os.PathLike, device: str | torch.device = "cpu", trainable: bool = False) -> MotionVAE:
    """A trained MotionVAE from its checkpoint alone, in eval mode on ``device``.

    The model's parameters are frozen unless ``trainable`` (test-time optimisation needs
    gradients w.r.t. latents and states, not weights). Extra attributes: ``prior_fitted``
    (whether ``sample``/``prior_params`` use a fitted prior), ``train_config``, ``metrics``
    (validation metrics at save time), ``step``.
    """
    vae = vae_from_checkpoint(read_vae(path)).to(device).eval()
    vae.requires_grad_(trainable)
    return vae
