"""Configs for the MotionVAE and its training, as dataclasses (stored inside checkpoints).

A checkpoint holds ``dataclasses.asdict(TrainConfig)``; ``TrainConfig.from_dict`` rebuilds
it (unknown keys are rejected, missing keys take today's defaults), so a checkpoint
rebuilds its own model. Presets are named configs (``PRESETS``), not flags:

- ``small``: trains a useful model on a 2-core CPU in under an hour (2.2 M parameters, plus
  0.23 M for the prior; a ~29 MB checkpoint with the optimiser state for resuming).
- ``gpu``: a wider, deeper model (~14 M parameters) and a longer schedule for one GPU (or
  several, with torchrun).
- ``tiny``: a toy for tests (seconds on a CPU).
"""
from __future__ import annotations

import copy
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from ..body.proportions import BodyAugment


@dataclass
class VAEConfig:
    """Architecture of the MotionVAE (encoder, decoder) and its Gaussian conditional prior.

    All three are residual MLPs (pre-LayerNorm, GELU) on canonicalised, normalised states;
    the decoder feeds z into every block (HuMoR's skip connection, which keeps z in use).
    """

    latent_dim: int = 48
    hidden: int = 448
    enc_blocks: int = 2
    dec_blocks: int = 2
    prior_hidden: int = 256
    prior_blocks: int = 1
    #: log-variances are clamped to [logvar_min, logvar_max] (numerical safety only).
    logvar_min: float = -10.0
    logvar_max: float = 4.0


@dataclass
class LossConfig:
    """Weights of the MotionVAE loss terms (DREAMoR section 3.2; see ``models.losses``).

    Units: ``rec`` is the mean squared error per state dimension in units of that
    dimension's one-step standard deviation; ``kl`` is in nats (summed over z); ``joint``,
    ``vertex`` and ``consist`` are mean squared errors per coordinate in cm^2; ``contact``
    is binary cross-entropy; ``contact_vel`` is the squared speed of contact joints in
    (cm per 30 Hz frame)^2.
    """

    rec: float = 1.0
    kl: float = 5e-4
    joint: float = 0.1
    vertex: float = 0.1
    consist: float = 0.1
    contact: float = 0.1
    contact_vel: float = 0.1
    #: what weights the velocity penalty of each contact joint: "label" (ground-truth
    #: contacts; no incentive to under-predict contacts) or "predicted" (the paper's
    #: sum_j c_hat_j |v_j|^2, as HuMoR).
    contact_vel_weighting: str = "label"


@dataclass
class TrainConfig:
    """One training run: model, losses, data windows, optimiser and schedules.

    Step-based schedules are given as fractions of ``steps``, so ``--steps`` rescales them.
    ``batch_size`` is per process: with torchrun the global batch is batch_size x world size.
    """

    preset: str = "small"
    model: VAEConfig = field(default_factory=VAEConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    #: frames per training window (window - 1 transitions rolled out), 30 Hz.
    window: int = 10
    batch_size: int = 64
    steps: int = 20_000
    lr: float = 1e-3
    lr_min_frac: float = 0.05  # cosine decay to lr * lr_min_frac
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    #: KL weight ramps linearly 0 -> loss.kl between these fractions of training.
    kl_anneal: tuple[float, float] = (0.0, 0.3)
    #: scheduled sampling (HuMoR): the probability of feeding the model its own previous
    #: prediction ramps 0 -> sched_samp_max between these fractions of training.
    sched_samp: tuple[float, float] = (0.1, 0.4)
    sched_samp_max: float = 1.0
    #: detach own predictions before feeding them back (HuMoR's default): no backprop
    #: through time, each step learns to continue from where the rollout got to.
    detach_rollout: bool = True
    val_every: int = 1000
    val_windows: int = 128
    ckpt_every: int = 500
    log_every: int = 20
    #: fitting the Gaussian conditional prior p(z_t | x_{t-1}) after the VAE.
    prior_steps: int = 2000
    prior_lr: float = 1e-3
    prior_batch_size: int = 256
    seed: int = 0
    #: every training window on a random body (``bodies.BodyAugment``); None: each take on its own body
    #: (checkpoints before session 6, whose configs lack the key, load with today's default: on).
    body_augment: BodyAugment | None = field(default_factory=BodyAugment)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, d)


def _from_dict(cls, d: dict[str, Any]):
    known = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config key(s) {sorted(unknown)}")
    kwargs = {}
    for name, value in d.items():
        factory = known[name].default_factory
        if factory is not MISSING and is_dataclass(factory) and isinstance(value, dict):
            value = _from_dict(factory, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


PRESETS: dict[str, TrainConfig] = {
    "small": TrainConfig(preset="small"),
    "gpu": TrainConfig(
        preset="gpu",
        model=VAEConfig(hidden=1024, enc_blocks=3, dec_blocks=3, prior_hidden=512, prior_blocks=2),
        batch_size=256,
        steps=150_000,
        lr=5e-4,
        warmup_steps=2000,
        val_every=2500,
        val_windows=512,
        ckpt_every=2500,
        log_every=50,
        prior_steps=20_000,
        prior_batch_size=1024,
    ),
    "tiny": TrainConfig(
        preset="tiny",
        model=VAEConfig(latent_dim=8, hidden=32, enc_blocks=1, dec_blocks=1, prior_hidden=16, prior_blocks=1),
        window=4,
        batch_size=8,
        steps=6,
        warmup_steps=0,
        val_every=3,
        val_windows=4,
        ckpt_every=3,
        log_every=1,
        prior_steps=3,
        prior_batch_size=8,
    ),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A copy of a named preset, with top-level fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return replace(copy.deepcopy(PRESETS[name]), **overrides)
