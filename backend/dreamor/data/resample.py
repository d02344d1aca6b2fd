"""Resample a clip in time: translation linearly, rotations by per-joint slerp."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.skeleton import MODEL_FPS
from .clip import Clip


def _slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Slerp between unit quaternions (..., 4) with weights w broadcastable to (..., 1)."""
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-6
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / np.where(small, 1.0, sin))
    b = np.where(small, w, np.sin(w * theta) / np.where(small, 1.0, sin))
    out = a * q0 + b * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def resample_times(num_frames: int, fps_in: float, fps_out: float) -> np.ndarray:
    """Fractional source-frame positions of the output frames, covering the same duration."""
    duration = (num_frames - 1) / fps_in
    n_out = int(np.floor(duration * fps_out + 1e-6)) + 1
    return np.arange(n_out) * (fps_in / fps_out)


def resample_clip(clip: Clip, fps_out: float = MODEL_FPS) -> Clip:
    """The clip at ``fps_out``; per-frame extras (joints, contacts, visible) follow.

    Rotations are slerped per joint; joints/trans/contacts interpolated linearly;
    ``visible``, ``pinned`` and ``confidence`` take the nearer frame (a joint is seen if it was seen there).
    """
    if abs(clip.fps - fps_out) < 1e-6:
        return replace(clip, fps=float(fps_out))
    t = clip.num_frames
    pos = resample_times(t, clip.fps, fps_out)
    i0 = np.clip(np.floor(pos).astype(int), 0, t - 1)
    i1 = np.clip(i0 + 1, 0, t - 1)
    w = (pos - i0)[:, None]
    quat = Rotation.from_rotvec(clip.local_aa.reshape(-1, 3)).as_quat().reshape(t, -1, 4)
    q = _slerp(quat[i0], quat[i1], w[:, :, None])
    aa = Rotation.from_quat(q.reshape(-1, 4)).as_rotvec().reshape(len(pos), -1, 3)

    def lerp(x):
        if x is None:
            return None
        ww = w.reshape((-1,) + (1,) * (x.ndim - 1))
        return (1.0 - ww) * x[i0] + ww * x[i1]

    nearest = np.where(w[:, 0] < 0.5, i0, i1)
    return clip.with_local_aa(
        aa,
        trans=lerp(clip.trans),
        fps=float(fps_out),
        joints=lerp(clip.joints),
        contacts=lerp(clip.contacts),
        visible=None if clip.visible is None else clip.visible[nearest],
        pinned=None if clip.pinned is None else clip.pinned[nearest],
        confidence=None if clip.confidence is None else clip.confidence[nearest],
    )
