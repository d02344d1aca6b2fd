"""The one checkpoint format of every model (nanoGPT's habit: a checkpoint rebuilds its own model).

A checkpoint is a dict saved with ``torch.save`` that loads with ``weights_only=True`` (tensors, numbers,
strings, lists, dicts): ``{"format": FORMAT, "version": int, "config": dict, "model": state_dict, **extra}``
(extra: step, metrics, the training config, optimiser state, ...). Each model module names its format
(``dreamor-motionvae``, ``dreamor-latent-diffusion``, ``dreamor-joint-infill``) and turns the dict back into
its network. Diffusion checkpoints written before this module call the format ``kind``; they still load.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import DreamorError
from ..files import atomic_write


def save_checkpoint(path: str | os.PathLike, format: str, version: int, config: dict, model: dict,
                    **extra: Any) -> Path:
    """Write ``{format, version, config, model, **extra}`` atomically; returns the path."""
    path = Path(path)
    with atomic_write(path) as fh:
        torch.save({"format": format, "version": int(version), "config": config, "model": model, **extra}, fh)
    return path


def load_checkpoint(path: str | os.PathLike, format: str, version: int, *, what: str, train: str,
                    device: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at ``path``, checked to be ``format`` and no newer than ``version``.

    what: the model's name for messages ('MotionVAE'); train: the command that makes one. A missing,
    unreadable, foreign or too-new file raises DreamorError with a sentence saying what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise DreamorError(f"{path}: no such {what} checkpoint (train one with `{train}`)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise DreamorError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from exc
    found = ckpt.get("format", ckpt.get("kind")) if isinstance(ckpt, dict) else None
    if found != format:
        raise DreamorError(f"{path}: not a {what} checkpoint (no format '{format}')")
    if ckpt.get("version", 0) > version:
        raise DreamorError(f"{path}: checkpoint version {ckpt['version']} is newer than this dreamor; update dreamor")
    return ckpt
