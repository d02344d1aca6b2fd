"""Masked joint completion: a learned first guess for hidden joints.

DREAMoR's optimiser starts from an encoding of the observation with "occluded joints filled by
a simple guess". A rest-pose guess for legs hidden over a whole clip starts the optimisation far
from any gait, and the test-time optimisation rarely finds the right stepping phase from there.
This network (our addition, not in the paper) looks at what is visible around each frame
(upper body swing, pelvis speed and turn) and predicts every joint; the optimiser then starts
from its guess for the hidden ones (visible joints keep their observations).

Features are per frame, in a body-centred frame: positions relative to the pelvis on the
ground plane (x, y) and absolute height (z), turned by the heading the visible joints give
(``evaluate.baselines.heading_yaw``), so the net sees neither where nor which way the clip
walks. A hidden joint's features are zero and its mask bit 0. The net is a stack of dilated
residual 1D convolutions over time (receptive field ~4 s at 30 Hz), fully convolutional so
any clip length works.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..body.fill import heading_yaw, hold_last_seen, rest_fill, yaw_matrices
from ..body.proportions import MIRROR_JOINTS, body_scale
from ..body.skeleton import MODEL_FPS, NUM_JOINTS, Y_UP_TO_Z_UP
from .checkpoint import load_checkpoint, save_checkpoint
from .configs import _from_dict

CHECKPOINT_FORMAT = "dreamor-joint-infill"
CHECKPOINT_VERSION = 1
#: canonical joints (66) + mask (22) + pelvis velocity x, y (m/s) and yaw rate (rad/s) (3) + rest offsets (66).
NUM_FEATURES = NUM_JOINTS * 3 + NUM_JOINTS + 3 + NUM_JOINTS * 3


@dataclass
class InfillConfig:
    channels: int = 160
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)

    @property
    def reach(self) -> int:
        """Frames either side that one output frame depends on (the dilated convolutions' half-width)."""
        return sum(d * (self.kernel // 2) for d in self.dilations)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InfillConfig":
        d = dict(d)
        if "dilations" in d:
            d["dilations"] = tuple(d["dilations"])
        return _from_dict(cls, d)


# ----------------------------------------------------------------------------- features
def _pelvis_track(joints: np.ndarray, visible: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """(T, 3) pelvis positions: observed, linearly interpolated across gaps, held at the ends;
    where the pelvis is never seen, where the visible joints' rest offsets put it (``rest_fill``)."""
    seen = np.flatnonzero(visible[:, 0])
    if len(seen) == 0:
        held, placed = hold_last_seen(joints, visible)
        placed = placed.copy()
        placed[:, 0] = False
        return rest_fill(held, placed, visible, rest)[:, 0]
    frames = np.arange(len(joints))
    return np.stack([np.interp(frames, seen, joints[seen, 0, k]) for k in range(3)], axis=-1)


def body_frames(joints: np.ndarray, visible: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> origin (T, 3) (pelvis on the ground plane: z = 0) and yaw (T,) radians, from visible joints only."""
    origin = _pelvis_track(joints, visible, rest) * np.array([1.0, 1.0, 0.0])
    return origin, heading_yaw(joints, visible, rest)


def _unwrap_diff(yaw: np.ndarray) -> np.ndarray:
    d = np.diff(yaw, prepend=yaw[:1])
    return (d + np.pi) % (2 * np.pi) - np.pi


def features(joints: np.ndarray, visible: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """joints (T, 22, 3) m (anything where hidden), visible (T, 22), rest (22, 3) SMPL native ->
    (features (T, NUM_FEATURES) float32, origin (T, 3), yaw (T,))."""
    joints = np.where(visible[..., None], joints, 0.0)
    origin, yaw = body_frames(joints, visible, rest)
    to_body = np.swapaxes(yaw_matrices(yaw), -1, -2)  # world -> body
    local = np.einsum("tij,tkj->tki", to_body, joints - origin[:, None])
    local = np.where(visible[..., None], local, 0.0)
    vel = np.einsum("tij,tj->ti", to_body, np.diff(origin, axis=0, prepend=origin[:1]) * MODEL_FPS)[:, :2]
    yaw_rate = _unwrap_diff(yaw)[:, None] * MODEL_FPS
    offsets = ((rest - rest[0]) @ Y_UP_TO_Z_UP.T).reshape(1, -1).repeat(len(joints), 0)
    feat = np.concatenate([local.reshape(len(joints), -1), visible.astype(np.float64), vel, yaw_rate, offsets], axis=-1)
    return feat.astype(np.float32), origin, yaw


def to_body(joints: np.ndarray, origin: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World joints (..., T, 22, 3) -> body-frame joints, as in ``features``."""
    return np.einsum("...tji,...tkj->...tki", yaw_matrices(yaw), joints - origin[..., None, :])


def to_world(local: np.ndarray, origin: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Body-frame joints (T, 22, 3) -> world."""
    return np.einsum("tij,tkj->tki", yaw_matrices(yaw), local) + origin[:, None]


# ----------------------------------------------------------------------------- the network
class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel // 2),
                              padding_mode="replicate")
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mix(self.act(self.conv(self.act(h))))


class JointInfill(nn.Module):
    """(B, T, NUM_FEATURES) normalised features -> (B, T, 22, 3) body-frame joints (m)."""
    def __init__(self, config: InfillConfig | None = None):
        super().__init__()
        self.config = config or InfillConfig()
        c = self.config.channels
        self.register_buffer("feat_mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("feat_std", torch.ones(NUM_FEATURES))
        self.inp = nn.Conv1d(NUM_FEATURES, c, 1)
        self.blocks = nn.Sequential(*[_Block(c, self.config.kernel, d) for d in self.config.dilations])
        self.out = nn.Conv1d(c, NUM_JOINTS * 3, 1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        h = ((feat - self.feat_mean) / self.feat_std).transpose(1, 2)
        y = self.out(self.blocks(self.inp(h))).transpose(1, 2)
        return y.reshape(*feat.shape[:2], NUM_JOINTS, 3)


@torch.no_grad()
def complete(model: JointInfill, joints: np.ndarray, visible: np.ndarray, rest: np.ndarray,
             mirror_average: bool = False) -> np.ndarray:
    """Fill hidden joints: (T, 22, 3) m at 30 Hz, (T, 22) bool, (22, 3) -> (T, 22, 3) with the
    visible joints exactly as given and the hidden ones from the network.

    The network sees the body at the reference size (``bodies.body_scale``): positions are divided
    by the body's scale on the way in and multiplied on the way out, so a uniformly scaled body gets
    the same, scaled, answer. ``mirror_average``: also complete the mirror image (left <-> right) and
    average the two guesses."""
    s = body_scale(rest)
    guess = _complete_once(model, joints / s, visible, rest / s)
    if mirror_average:
        m, flip = list(MIRROR_JOINTS), np.array([-1.0, 1.0, 1.0])
        image = _complete_once(model, joints[:, m] * flip / s, visible[:, m], rest[m] * flip / s)
        guess = 0.5 * (guess + image[:, m] * flip)
    return np.where(visible[..., None], joints, guess * s)


def _complete_once(model: JointInfill, joints: np.ndarray, visible: np.ndarray, rest: np.ndarray) -> np.ndarray:
    feat, origin, yaw = features(np.where(visible[..., None], joints, 0.0), visible, rest)
    p = next(model.parameters())
    local = model(torch.from_numpy(feat).to(p)[None])[0].double().cpu().numpy()
    return to_world(local, origin, yaw)


# ----------------------------------------------------------------------------- checkpoints
def save_infill(path: str | os.PathLike, model: JointInfill, **extra: Any) -> Path:
    """Write the checkpoint (``models/checkpoint.py``'s format; extra: step, metrics, train config...)."""
    return save_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, model.config.to_dict(), model.state_dict(),
                           **extra)


def read_infill(path: str | os.PathLike) -> dict:
    """A joint-infill checkpoint dict; DreamorError says what is wrong."""
    return load_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, what="joint-infill",
                           train="dreamor train infill")


def load_infill(path: str | os.PathLike, device: str | torch.device = "cpu") -> JointInfill:
    """The trained network in eval mode, frozen; ``.metrics`` and ``.step`` from the checkpoint."""
    ckpt = read_infill(path)
    model = JointInfill(InfillConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.metrics = ckpt.get("metrics", {})
    model.step = ckpt.get("step", 0)
    return model.to(device).eval().requires_grad_(False)
