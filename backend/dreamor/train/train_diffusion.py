"""`dreamor train diffusion`: train the latent diffusion prior p(z_t | x_{t-1}) on the
latents of a trained MotionVAE (paper section 3.3).

1. Every transition (x_{t-1}, x_t) of the mocap is encoded once by the frozen VAE; the
   posterior means and log-variances are cached (``cache/latents_<vae>_<data>.npz``).
2. Each step draws transitions (clip weights tilt the draw, as for the VAE), builds the
   condition from x_{t-1} with the VAE's own canonicalisation and normalisation
   (``vae_condition``), and takes the ε-prediction L2 loss at a uniform t' with the
   condition dropped to the null token with probability p_drop. AdamW, warmup + cosine
   decay, gradient clipping, an exponential moving average (EMA) of the weights.
3. Every ``val_every`` steps (EMA weights, held-out takes): ``val_loss`` at fixed t' and ε,
   and ``denoise_<f>``: MSE(ẑ, z) / MSE(z_noised, z) for latents noised to t' = f T and
   brought back by K = 10 DDIM steps with CFG (below 1: denoising helps).
4. Every ``ckpt_every`` steps: ``out`` (the EMA model; small, usable at once) and a resume
   state (raw weights, EMA, optimiser) in the cache folder. ``--resume`` continues from it;
   a larger ``--steps`` extends a finished run.

Presets (``PRESETS``, named like the VAE's): ``small`` (12k steps, under an hour on 2 idle
CPU cores; 2.2 M parameters, ~9 MB), ``gpu`` (wider and deeper, bigger batches; 5.5 M
parameters, ~22 MB), ``tiny`` (tests). The default output is ``models/diffusion-<preset>.pt``;
the refinement engine loads ``models/diffusion-small.pt``.
"""
from __future__ import annotations

import copy
import hashlib
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..body.proportions import BodyAugment
from ..data.dataset import MotionData, WindowSampler, build_motion_data
from ..errors import DreamorError
from ..files import atomic_write
from ..models.configs import _from_dict
from ..models.diffusion import DiffusionConfig, LatentDiffusion, load_diffusion, save_diffusion, vae_condition
from ..models.vae import MotionVAE, load_vae
from .common import REPO_ROOT, body_validation_samplers, lr_at, training_paths

LATENT_CACHE_VERSION = 1
STATE_KIND = "dreamor-latent-diffusion-train-state"
#: noise levels t'/T of the validation denoising check (and of the model card).
DENOISE_LEVELS = (0.2, 0.5, 0.8)


@dataclass
class DiffusionTrainConfig:
    """One training run of the diffusion prior (stored in its checkpoint)."""

    preset: str = "small"
    model: DiffusionConfig = field(default_factory=DiffusionConfig)
    #: the training latents: the encoder's posterior "mean" (what the test-time optimiser
    #: starts from) or a "sample" of the posterior.
    latent_source: str = "mean"
    batch_size: int = 256
    steps: int = 12_000
    lr: float = 5e-4
    lr_min_frac: float = 0.05
    warmup_steps: int = 500
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    val_every: int = 1000
    val_transitions: int = 1024
    ckpt_every: int = 1000
    log_every: int = 20
    seed: int = 0
    #: share of each batch drawn as fresh transitions put on random bodies (``bodies.BodyAugment``) and
    #: encoded by the frozen VAE on the fly; the rest come from the cached latents of the takes' own bodies.
    body_share: float = 0.75
    body_augment: BodyAugment | None = field(default_factory=BodyAugment)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DiffusionTrainConfig":
        return _from_dict(cls, d)


PRESETS: dict[str, DiffusionTrainConfig] = {
    "small": DiffusionTrainConfig(preset="small"),
    "gpu": DiffusionTrainConfig(
        preset="gpu",
        model=DiffusionConfig(d_model=256, n_layers=6, n_heads=8),
        batch_size=1024,
        steps=40_000,
        lr=3e-4,
        warmup_steps=2000,
        ema_decay=0.9995,
        val_every=5000,
        val_transitions=8192,
        ckpt_every=5000,
        log_every=100,
    ),
    "tiny": DiffusionTrainConfig(
        preset="tiny",
        model=DiffusionConfig(d_model=32, n_layers=1, n_heads=2),
        batch_size=16,
        steps=6,
        warmup_steps=0,
        val_every=3,
        val_transitions=32,
        ckpt_every=3,
        log_every=1,
    ),
}


def preset(name: str, **overrides: Any) -> DiffusionTrainConfig:
    """A copy of a named preset, with top-level fields replaced."""
    if name not in PRESETS:
        raise DreamorError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return replace(copy.deepcopy(PRESETS[name]), **overrides)


# ----------------------------------------------------------------------------- latents
@dataclass
class Latents:
    """The VAE posterior of every transition of a MotionData (N transitions).

    rows: (N,) row of x_{t-1} in ``data.states`` (x_t is the next row); clips: (N,) its clip;
    mu, logvar: (N, Z) float32.
    """

    rows: np.ndarray
    clips: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray


def file_sha1(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_key(data: MotionData) -> str:
    """A cheap fingerprint of a MotionData (names, clip bounds, a stride of the states)."""
    h = hashlib.sha1(f"v{LATENT_CACHE_VERSION}".encode())
    h.update("|".join(map(str, data.names)).encode())
    h.update(data.clip_starts.tobytes())
    h.update(np.ascontiguousarray(data.states[::997]).tobytes())
    return h.hexdigest()[:12]


def transitions(data: MotionData) -> tuple[np.ndarray, np.ndarray]:
    """-> rows of every x_{t-1} (N,) and their clips (N,), clip by clip."""
    starts, ends = data.clip_starts[:-1], data.clip_starts[1:]
    rows = np.concatenate([np.arange(s, e - 1) for s, e in zip(starts, ends)]) if len(starts) else np.zeros(0, int)
    clips = np.repeat(np.arange(len(starts)), np.maximum(ends - starts - 1, 0))
    return rows.astype(np.int64), clips.astype(np.int64)


@torch.no_grad()
def encode_latents(vae: MotionVAE, data: MotionData, batch: int = 8192, quiet: bool = True) -> Latents:
    """Encode every transition with the frozen VAE (posterior mean and log-variance)."""
    rows, clips = transitions(data)
    dev = next(vae.parameters()).device
    mu, logvar = [], []
    for i in tqdm(range(0, len(rows), batch), desc="encode latents", unit="batch", disable=quiet, file=sys.stderr):
        r, c = rows[i:i + batch], clips[i:i + batch]
        prev = torch.from_numpy(data.states[r]).to(dev)
        cur = torch.from_numpy(data.states[r + 1]).to(dev)
        m, lv = vae.encode(prev, cur, torch.from_numpy(data.rest_joints[c]).to(dev))
        mu.append(m.float().cpu().numpy())
        logvar.append(lv.float().cpu().numpy())
    z = vae.latent_dim
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros((0, z), np.float32)  # noqa: E731
    return Latents(rows, clips, cat(mu), cat(logvar))


def cached_latents(vae: MotionVAE, vae_sha1: str, data: MotionData, cache_dir: str | os.PathLike,
                   quiet: bool = False) -> Latents:
    """``encode_latents``, cached under the VAE file's hash and the data's fingerprint."""
    path = Path(cache_dir) / f"latents_{vae_sha1[:12]}_{data_key(data)}.npz"
    if path.exists():
        with np.load(path) as f:
            return Latents(**{k: f[k] for k in Latents.__dataclass_fields__})
    lat = encode_latents(vae, data, quiet=quiet)
    with atomic_write(path) as fh:
        np.savez(fh, **asdict(lat))
    return lat


# ----------------------------------------------------------------------------- batches
class TransitionSampler:
    """Random transitions of one split, with probability proportional to their clip's weight."""

    def __init__(self, data: MotionData, lat: Latents, validation: bool, seed: int):
        self.data, self.lat = data, lat
        self.index = np.flatnonzero((data.is_val if validation else data.is_train)[lat.clips])
        if len(self.index) == 0:
            raise DreamorError(f"no {'validation' if validation else 'training'} transitions")
        self.cdf = np.cumsum(data.weights[lat.clips[self.index]].astype(np.float64))
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> np.ndarray:
        pick = np.searchsorted(self.cdf, self.rng.random(n) * self.cdf[-1], side="right")
        return self.index[np.minimum(pick, len(self.index) - 1)]

    def fixed(self, n: int, seed: int = 12345) -> np.ndarray:
        """Up to n distinct transitions, the same every call (for validation)."""
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(self.index, size=min(n, len(self.index)), replace=False))


def clean_latents(lat: Latents, idx: np.ndarray, source: str, device: torch.device | str = "cpu",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Transitions ``idx`` -> clean latents z0 (B, Z): posterior means or posterior samples."""
    mu = torch.from_numpy(lat.mu[idx])
    if source == "sample":
        std = torch.from_numpy(lat.logvar[idx]).mul(0.5).exp()
        mu = mu + std * torch.randn(mu.shape, generator=generator)
    elif source != "mean":
        raise DreamorError(f"latent_source must be 'mean' or 'sample', not {source!r}")
    return mu.to(device)


@torch.no_grad()
def body_batch(vae: MotionVAE, sampler: WindowSampler, n: int, source: str,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n fresh transitions on random bodies (a 2-frame ``sampler`` with ``augment``) -> clean latents
    z0 (n, Z) encoded by the frozen VAE, and conditions (n, 273), on the VAE's device."""
    dev = vae.state_mean.device
    states, _, rest = sampler.sample(n)
    x = torch.from_numpy(states).to(dev)
    r = torch.from_numpy(rest).to(dev)
    mu, logvar = vae.encode(x[:, 0], x[:, 1], r)
    if source == "sample":
        mu = mu + logvar.mul(0.5).exp() * torch.randn(mu.shape, generator=generator).to(dev)
    return mu.float(), vae_condition(vae, x[:, 0], r)


def make_batch(vae: MotionVAE, data: MotionData, lat: Latents, idx: np.ndarray, source: str,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Transitions ``idx`` -> clean latents z0 (B, Z) and conditions (B, 273) on the VAE's device."""
    dev = vae.state_mean.device
    prev = torch.from_numpy(data.states[lat.rows[idx]]).to(dev)
    rest = torch.from_numpy(data.rest_joints[lat.clips[idx]]).to(dev)
    with torch.no_grad():
        cond = vae_condition(vae, prev, rest)
    return clean_latents(lat, idx, source, dev, generator), cond


# ----------------------------------------------------------------------------- validation
@torch.no_grad()
def evaluate(model: LatentDiffusion, z0: torch.Tensor, cond: torch.Tensor, num_steps: int = 10) -> dict[str, float]:
    """Validation metrics on fixed transitions (the module docstring's list); deterministic."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(0)
    n, T = z0.shape[0], model.schedule.num_train_timesteps
    t = torch.randint(0, T, (n,), generator=g).to(z0.device)
    noise = torch.randn(z0.shape, generator=g).to(z0.device)
    eps = model(model.schedule.add_noise(model.normalize(z0), noise, t), t, cond)
    out = {"val_loss": float((eps - noise).square().mean())}
    for f in DENOISE_LEVELS:
        ts = model.schedule.timestep_at(f)
        noised = model.unnormalize(model.schedule.add_noise(model.normalize(z0), noise, ts))
        zhat = model.denoise(z0, cond, ts, num_steps, noise=noise)
        out[f"denoise_{f}"] = float((zhat - z0).square().mean() / (noised - z0).square().mean())
    model.train(was)
    return out


# ----------------------------------------------------------------------------- the run
def resume_path(out: Path, cache_dir: str | os.PathLike) -> Path:
    """Where the resume state of the run writing ``out`` lives (raw weights, EMA, optimiser)."""
    tag = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]
    return Path(cache_dir) / f"{out.stem}-{tag}.resume.pt"


def _ema_update(ema: LatentDiffusion, model: LatentDiffusion, decay: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1.0 - decay)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def train_diffusion(
    cfg: DiffusionTrainConfig,
    out: str | os.PathLike,
    vae_path: str | os.PathLike,
    *,
    sources: list[tuple[str | Path, float]] | None = None,
    data: MotionData | None = None,
    resume: bool = False,
    overrides: dict | None = None,
    device: str = "cpu",
    cache_dir: str | os.PathLike = "cache",
    workers: int = 0,
    quiet: bool = False,
    init: str | os.PathLike | None = None,
) -> dict:
    """Train (or resume) the diffusion prior on the latents of the VAE at ``vae_path``.

    Give ``sources`` (folders/files with sampling weights) or ready ``data``. ``overrides``
    replace top-level fields of ``cfg`` (or, when resuming, of the run's own config).
    ``init``: a diffusion checkpoint of the same architecture whose weights a new run starts
    from (a warm start, e.g. after the VAE was fine-tuned; the latent statistics are the new VAE's).
    Writes ``out`` (EMA weights) and the resume state; returns the final metrics.
    """
    out = Path(out)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DreamorError("--device cuda: no CUDA device is available (use --device cpu)")
    vae = load_vae(vae_path, dev)
    vae_sha1 = file_sha1(vae_path)
    if data is None:
        if sources is None:
            raise DreamorError("no training data given")
        data = build_motion_data(sources, cache_dir, workers=workers, quiet=quiet)
    lat = cached_latents(vae, vae_sha1, data, cache_dir, quiet=quiet)

    state_path = resume_path(out, cache_dir)
    state = None
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=dev, weights_only=True)
        if state.get("kind") != STATE_KIND:
            raise DreamorError(f"{state_path}: not a diffusion training state; delete it to start over")
        if state["vae_sha1"] != vae_sha1:
            raise DreamorError(f"{out} was trained on the latents of another VAE than {vae_path}; "
                               "start a new run (another --out) for this VAE")
        cfg = replace(DiffusionTrainConfig.from_dict(state["config"]), **(overrides or {}))
        step = int(state["step"])
        metrics = dict(state.get("metrics") or {})
        if not quiet:
            print(f"resuming {out} at step {step}/{cfg.steps} (preset {cfg.preset})", file=sys.stderr)
    else:
        if resume and not quiet:
            print(f"no resume state for {out} ({state_path}): starting a new run", file=sys.stderr)
        cfg = replace(cfg, **(overrides or {}))
        step, metrics = 0, {}
    if cfg.model.latent_dim != vae.latent_dim:
        cfg = replace(cfg, model=replace(cfg.model, latent_dim=vae.latent_dim))

    torch.manual_seed(cfg.seed)
    model = LatentDiffusion(cfg.model).to(dev)
    train_sampler = TransitionSampler(data, lat, validation=False, seed=cfg.seed + 7 * step)
    if state is not None:
        model.load_state_dict(state["model"])
    else:
        if init is not None:
            start, _ = load_diffusion(init, dev)
            if start.config != model.config:
                raise DreamorError(f"--init {init}: its architecture differs from the preset's; use a matching preset")
            model.load_state_dict(start.state_dict())
            metrics["init"] = Path(init).name
        model.set_latent_stats(clean_latents(lat, train_sampler.fixed(200_000, seed=cfg.seed), cfg.latent_source,
                                             dev, torch.Generator().manual_seed(cfg.seed)))
    bodies = None
    if cfg.body_augment is not None and cfg.body_share > 0:
        bodies = WindowSampler(data, 2, seed=cfg.seed + 7 * step + 3, augment=cfg.body_augment)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    if state is not None:
        ema.load_state_dict(state["ema"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state is not None:
        opt.load_state_dict(state["optimizer"])

    try:
        val_sampler = TransitionSampler(data, lat, validation=True, seed=0)
        val_note = "validation split"
    except DreamorError:
        val_sampler, val_note = TransitionSampler(data, lat, validation=False, seed=0), "training split (no validation takes)"
    val_z, val_cond = make_batch(vae, data, lat, val_sampler.fixed(cfg.val_transitions), "mean")
    # the same check on transitions put on random bodies: default and unseen-subject splits
    body_vals = {name: body_batch(vae, s, cfg.val_transitions, "mean")
                 for name, s in body_validation_samplers(data, 2, cfg.body_augment).items()}
    metrics.update(preset=cfg.preset, device=dev.type, params=sum(p.numel() for p in model.parameters()),
                   train_transitions=len(train_sampler.index), val_transitions=int(val_z.shape[0]), val_split=val_note,
                   latent_std=float(model.latent_std))
    history = list(metrics.get("history", []))
    vae_info = {"sha1": vae_sha1, "file": Path(vae_path).name, "latent_dim": vae.latent_dim}

    def save(final: bool = False) -> None:
        metrics["history"] = history[-200:]
        save_diffusion(out, ema, train_config=cfg.to_dict(), step=step, vae=vae_info, metrics=metrics)
        with atomic_write(state_path) as fh:
            torch.save({"kind": STATE_KIND, "config": cfg.to_dict(), "step": step, "vae_sha1": vae_sha1,
                        "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                        "metrics": metrics}, fh)

    def validate() -> None:
        m = evaluate(ema, val_z, val_cond)
        metrics["val"] = m
        entry = {"step": step, **m}
        for name, (z, c) in body_vals.items():
            metrics[name] = evaluate(ema, z, c)
            entry.update({f"{name}_{k}": v for k, v in metrics[name].items()})
        history.append(entry)
        if not quiet:
            tqdm.write(f"[val {step}] " + " ".join(f"{k}={v:.4g}" for k, v in entry.items() if k != "step"),
                       file=sys.stderr)

    if step >= cfg.steps:
        if not quiet:
            print(f"{out} is already trained to step {step}; pass --steps N to train longer", file=sys.stderr)
        return metrics
    g = torch.Generator().manual_seed(cfg.seed + 7 * step + 1)
    torch.manual_seed(cfg.seed + 7 * step + 2)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train diffusion ({cfg.preset})", unit="step",
               disable=quiet, file=sys.stderr, dynamic_ncols=True)
    model.train()
    t0, n0 = time.perf_counter(), step
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        n_body = int(round(cfg.batch_size * cfg.body_share)) if bodies is not None else 0
        z0, cond = make_batch(vae, data, lat, train_sampler.sample(cfg.batch_size - n_body), cfg.latent_source, g)
        if n_body:
            zb, cb = body_batch(vae, bodies, n_body, cfg.latent_source, g)
            z0, cond = torch.cat([z0, zb]), torch.cat([cond, cb])
        loss, terms = model.loss(z0, cond)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if torch.isfinite(grad_norm):
            opt.step()
            _ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        step += 1
        bar.update()
        if step % cfg.log_every == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{lr:.2e}", refresh=False)
            metrics["train"] = {**terms, "lr": lr, "grad_norm": float(grad_norm)}
            metrics["sec_per_step"] = (time.perf_counter() - t0) / max(step - n0, 1)
        if step % cfg.val_every == 0 or step == cfg.steps:
            validate()
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save()
    bar.close()
    if not quiet:
        print(f"wrote {out} (resume state: {state_path})", file=sys.stderr)
    return metrics


# ----------------------------------------------------------------------------- CLI glue
def default_vae() -> Path:
    """The shipped VAE: models/vae-*.pt in the repository (the newest, if several)."""
    found = sorted((REPO_ROOT / "models").glob("vae-*.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DreamorError("no MotionVAE checkpoint in models/; train one with `dreamor train vae` or pass --vae PATH")
    return found[-1]


def run_train_diffusion(args) -> int:
    """CLI entry for `dreamor train diffusion` (args from cli.py)."""
    cfg = preset(args.preset)
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("seed", args.seed))
                 if v is not None}
    for k in ("steps", "batch_size"):
        if k in overrides and overrides[k] < 1:
            raise DreamorError(f"--{k.replace('_', '-')} must be at least 1")
    init = getattr(args, "init", None)
    if init is not None and not Path(init).is_file():
        raise DreamorError(f"--init {init}: no such checkpoint")
    vae_path = Path(args.vae) if args.vae else default_vae()
    sources, out, cache = training_paths(args, "diffusion", cfg.preset)
    metrics = train_diffusion(cfg, out, vae_path, sources=sources, resume=args.resume, overrides=overrides,
                              device=args.device, cache_dir=cache, workers=args.workers, quiet=args.quiet, init=init)
    if "val" in metrics:
        v = metrics["val"]
        print("validation: " + ", ".join(f"{k} {v[k]:.3g}" for k in v))
    return 0


def load_prior(path: str | os.PathLike, vae_path: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> LatentDiffusion:
    """A trained diffusion prior; with ``vae_path``, checks it was trained on that VAE's latents."""
    model, ckpt = load_diffusion(path, device)
    if vae_path is not None:
        want = (ckpt.get("vae") or {}).get("sha1")
        if want and want != file_sha1(vae_path):
            print(f"warning: {path} was trained on the latents of {ckpt['vae'].get('file')} "
                  f"(sha1 {want[:12]}), not of {vae_path}", file=sys.stderr)
    return model

