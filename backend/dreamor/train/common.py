"""What the three training loops share: the default data, the learning-rate schedule, validation samplers."""
from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

from ..body.proportions import BodyAugment
from ..data.dataset import WindowSampler
from ..errors import DreamorError

REPO_ROOT = Path(__file__).resolve().parents[3]
#: default training data (relative to the repository): (folder, sampling weight).
#: extra/ (15 min of jumps, stairs, sitting, sports, dance) x4; extra2/ (19 min: salsa, Indian dance, walks) x2.
DEFAULT_DATA = (("../shared/data/mocap/train", 1.0), ("../shared/data/mocap/extra", 4.0),
                ("../shared/data/mocap/extra2", 2.0))


def lr_at(step: int, cfg) -> float:
    """``cfg`` has lr, warmup_steps, steps, lr_min_frac. Linear warmup over warmup_steps, then cosine decay to lr * lr_min_frac at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    frac = min(max(frac, 0.0), 1.0)
    return cfg.lr * (cfg.lr_min_frac + (1 - cfg.lr_min_frac) * 0.5 * (1 + math.cos(math.pi * frac)))


def parse_data_spec(spec: str) -> tuple[Path, float]:
    """'PATH' or 'PATH:WEIGHT' -> (path, weight); a ':' not followed by a number belongs to the path."""
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            return Path(spec), 1.0
        if not weight > 0:
            raise DreamorError(f"--data {spec}: the sampling weight must be > 0")
        return Path(head), weight
    return Path(spec), 1.0


def default_sources() -> list[tuple[Path, float]]:
    """The project's mocap: train/ (weight 1), the rarer motions of extra/ (weight 4) and extra2/ (weight 2)."""
    out = [((REPO_ROOT / rel).resolve(), w) for rel, w in DEFAULT_DATA]
    missing = [str(p) for p, _ in out if not p.is_dir()]
    if missing:
        raise DreamorError(f"default training data not found ({', '.join(missing)}); "
                           "pass --data FOLDER[:WEIGHT] (folders of BVH or clip .npz files), one or more times")
    return out


def training_paths(args, name: str, preset: str) -> tuple[list[tuple[Path, float]], Path, Path]:
    """A ``dreamor train NAME`` command's data sources (``--data`` or the defaults, each checked), output checkpoint
    (``--out`` or ``models/NAME-PRESET.pt``; refused when it exists without ``--resume``, or is missing with it) and
    cache folder (``--cache``, else the checkout's ``cache/`` or ``~/.cache/dreamor`` outside a checkout)."""
    sources = [parse_data_spec(s) for s in args.data] if args.data else default_sources()
    for path, _ in sources:
        if not path.exists():
            raise DreamorError(f"--data {path}: no such file or folder")
    out = Path(args.out or f"models/{name}-{preset}.pt")
    if out.exists() and not args.resume:
        raise DreamorError(f"{out} exists; pass --resume to continue training it, or choose another --out")
    if args.resume and not out.exists():
        raise DreamorError(f"--resume: no checkpoint at {out}")
    cache = Path(args.cache) if args.cache else (REPO_ROOT / "cache" if (REPO_ROOT / "pyproject.toml").exists()
                                                 else Path.home() / ".cache" / "dreamor")
    return sources, out, cache


def body_validation_samplers(data, length: int, augment: BodyAugment | None = None, seed: int = 12345) -> dict:
    """Fixed-seed samplers of ``length``-frame windows on random bodies for validation:
    ``val_bodies`` (the default split) and ``unseen`` (the unseen-subject split), each where the
    data has takes long enough."""
    out = {}
    for name, split in (("val_bodies", "val"), ("unseen", "unseen")):
        try:
            out[name] = WindowSampler(data, length, split=split, seed=seed,
                                      augment=replace(augment or BodyAugment(), p_mirror=0.0, p_tempo=0.0))
        except DreamorError:
            continue
    return out


def preset_config(args, presets: dict):
    """The config of ``args.preset`` (one of ``presets``) with ``--steps`` / ``--seed`` applied; DreamorError for an
    unknown preset or fewer than one step."""
    if args.preset not in presets:
        raise DreamorError(f"unknown preset '{args.preset}'; choose one of {', '.join(presets)}")
    cfg = replace(copy.deepcopy(presets[args.preset]), **{k: v for k, v in (("steps", args.steps), ("seed", args.seed))
                                                          if v is not None})
    if cfg.steps < 1:
        raise DreamorError("--steps must be at least 1")
    return cfg
