"""The clip: one motion on the SMPL-22 skeleton, and its `.npz` file format.

Keys follow AMASS/HuMoR so their files load as-is (DESIGN.md, "Clip file format"):
``trans`` (T,3) m, ``root_orient`` (T,3) axis-angle, ``pose_body`` (T,63) axis-angle,
``mocap_framerate``, optional ``betas``, ``joints`` (T,22,3), ``contacts`` (T,9),
``rest_joints`` (22,3) and ``visible`` (T,22) bool; for the animator's edits ``pinned`` (T,22) bool
(joints fixed by a key: returned where given) and ``confidence`` (T,22) in [0, 1] (0 hidden, 1 trusted,
between: noisy). Raw AMASS ``poses`` (T,>=66) is accepted in place of ``root_orient`` + ``pose_body``.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..body.skeleton import NUM_JOINTS, SMPL_NEUTRAL_REST_JOINTS
from ..errors import InputFileError
from ..files import atomic_write

#: the farthest a root may be from the origin (metres) for the clip to be a capture, not broken numbers.
MAX_TRAVEL_M = 10_000.0


@dataclass
class Clip:
    """A motion on the SMPL-22 skeleton. T frames at ``fps``; world is Z-up metres."""

    trans: np.ndarray  # (T, 3) metres; world pelvis = rest_joints[0] + trans (at zero root rotation)
    root_orient: np.ndarray  # (T, 3) axis-angle, body (SMPL native, Y-up) -> world (Z-up)
    pose_body: np.ndarray  # (T, 63) axis-angle, joints 1..21 relative to their parents
    fps: float
    rest_joints: np.ndarray = field(default_factory=lambda: SMPL_NEUTRAL_REST_JOINTS.copy())  # (22, 3)
    betas: np.ndarray | None = None  # (B,) SMPL shape, only with a real body model
    joints: np.ndarray | None = None  # (T, 22, 3) world joints, if computed
    contacts: np.ndarray | None = None  # (T, 9) in [0, 1]
    visible: np.ndarray | None = None  # (T, 22) bool: False where the joint was occluded
    pinned: np.ndarray | None = None  # (T, 22) bool: True where the animator fixed the joint (a pose key)
    confidence: np.ndarray | None = None  # (T, 22) in [0, 1]: 0 hidden, 1 trusted, between = noisy
    samples: np.ndarray | None = None  # (N, T, 22, 3) a refined clip's completions, ``joints`` first
    uncertainty: np.ndarray | None = None  # (T, 22) metres: how far a refined joint may be off (0 where seen)
    name: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.trans.shape[0])

    @property
    def local_aa(self) -> np.ndarray:
        """(T, 22, 3) axis-angle of every joint (root orientation first)."""
        return np.concatenate([self.root_orient[:, None], self.pose_body.reshape(-1, 21, 3)], axis=1)

    def with_local_aa(self, aa: np.ndarray, **changes) -> "Clip":
        """A copy with root_orient/pose_body taken from (T, 22, 3) axis-angle."""
        return replace(self, root_orient=aa[:, 0].copy(), pose_body=aa[:, 1:].reshape(len(aa), 63).copy(), **changes)

    def validate(self, allow_nonfinite: bool = False) -> "Clip":
        """Check shapes and finiteness; raise InputFileError with a sentence a user can act on.

        allow_nonfinite: NaN/inf motion values pass (``dreamor clean`` finds and repairs them)."""
        t = self.num_frames
        checks = {
            "trans": (self.trans, (t, 3)),
            "root_orient": (self.root_orient, (t, 3)),
            "pose_body": (self.pose_body, (t, 63)),
            "rest_joints": (self.rest_joints, (NUM_JOINTS, 3)),
        }
        if self.joints is not None:
            checks["joints"] = (self.joints, (t, NUM_JOINTS, 3))
        if self.contacts is not None:
            checks["contacts"] = (self.contacts, (t, 9))
        for key in ("visible", "pinned", "confidence", "uncertainty"):
            if getattr(self, key) is not None:
                checks[key] = (getattr(self, key), (t, NUM_JOINTS))
        if self.samples is not None:
            checks["samples"] = (self.samples, (len(self.samples), t, NUM_JOINTS, 3))
        for key, (arr, shape) in checks.items():  # every shape first: the finiteness checks index with the masks
            if tuple(arr.shape) != shape:
                raise InputFileError(f"clip {self.name or ''} key '{key}' has shape {tuple(arr.shape)}, expected {shape}".replace("  ", " "))
        for key, (arr, shape) in checks.items():
            if key == "joints" and self.visible is not None:
                arr = arr[self.visible]  # occluded observations may be NaN (unknown)
            if arr.dtype != bool and not allow_nonfinite and not np.all(np.isfinite(arr)):
                raise InputFileError(f"clip {self.name} key '{key}' holds NaN or infinite values")
        if not allow_nonfinite:
            far = np.abs(self.trans).max(1)
            if (far > MAX_TRAVEL_M).any():
                f = int(np.argmax(far))
                raise InputFileError(f"clip {self.name} puts the root {far[f]:.3g} m from the origin at frame {f}: "
                                     f"not a capture (over {MAX_TRAVEL_M / 1000:g} km); check the file's values and units")
        if self.confidence is not None and not ((self.confidence >= 0) & (self.confidence <= 1)).all():
            raise InputFileError(f"clip {self.name} key 'confidence' must lie in [0, 1] (0 hidden, 1 trusted)")
        if t == 0:
            raise InputFileError(f"clip {self.name} has no frames")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise InputFileError(f"clip {self.name} has an invalid frame rate {self.fps}")
        return self


def load_clip(path: str | os.PathLike, allow_nonfinite: bool = False) -> Clip:
    """Read a clip `.npz` (our keys, HuMoR keys, or raw AMASS ``poses``); see ``Clip.validate``."""
    path = Path(path)
    if path.is_file():
        with path.open("rb") as f:
            head = f.read(4)
        if head != b"PK\x03\x04":  # every .npz is a zip archive
            why = "the file is empty" if not head else "not a NumPy .npz archive"
            raise InputFileError(f"{path}: not a readable .npz clip ({why})")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputFileError(f"{path}: not a readable .npz clip ({exc.__class__.__name__}: {exc})") from None
    if "root_orient" in data and "pose_body" in data:
        root_orient = data["root_orient"]
        pose_body = data["pose_body"][:, :63]
    elif "poses" in data:
        poses = data["poses"]
        if poses.ndim != 2 or poses.shape[1] < 66:
            raise InputFileError(f"{path}: 'poses' has shape {poses.shape}, expected (T, >=66) axis-angle")
        root_orient, pose_body = poses[:, :3], poses[:, 3:66]
    else:
        raise InputFileError(
            f"{path}: missing pose keys; a clip needs 'root_orient' and 'pose_body' (or AMASS 'poses'); "
            f"found {sorted(data)}"
        )
    missing = [k for k in ("trans",) if k not in data]
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate", "fps") if k in data), None)
    if fps_key is None:
        missing.append("mocap_framerate")
    if missing:
        raise InputFileError(f"{path}: missing key(s) {missing}; found {sorted(data)}")
    betas = data.get("betas")
    clip = Clip(
        trans=np.asarray(data["trans"], np.float64),
        root_orient=np.asarray(root_orient, np.float64),
        pose_body=np.asarray(pose_body, np.float64),
        fps=float(np.asarray(data[fps_key]).reshape(-1)[0]),
        rest_joints=np.asarray(data["rest_joints"], np.float64) if "rest_joints" in data else SMPL_NEUTRAL_REST_JOINTS.copy(),
        betas=np.asarray(betas, np.float64).reshape(-1) if betas is not None else None,
        joints=np.asarray(data["joints"], np.float64) if "joints" in data else None,
        contacts=np.asarray(data["contacts"], np.float64) if "contacts" in data else None,
        visible=np.asarray(data["visible"]).astype(bool) if "visible" in data else None,
        pinned=np.asarray(data["pinned"]).astype(bool) if "pinned" in data else None,
        confidence=np.asarray(data["confidence"], np.float64) if "confidence" in data else None,
        samples=np.asarray(data["samples"], np.float64) if "samples" in data else None,
        uncertainty=np.asarray(data["uncertainty"], np.float64) if "uncertainty" in data else None,
        name=path.stem,
    )
    return clip.validate(allow_nonfinite)


def save_clip(clip: Clip, path: str | os.PathLike, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write a clip `.npz` atomically (a temp file renamed into place: never a half-written file); ``extra``:
    more arrays to store beside the clip's (a refined clip's ``samples``, ``uncertainty``...)."""
    clip.validate()
    path = Path(path)
    arrays = {
        "trans": clip.trans.astype(np.float32),
        "root_orient": clip.root_orient.astype(np.float32),
        "pose_body": clip.pose_body.astype(np.float32),
        "mocap_framerate": np.float64(clip.fps),
        "rest_joints": clip.rest_joints.astype(np.float32),
    }
    for key in ("betas", "joints", "contacts", "samples", "uncertainty"):
        val = getattr(clip, key)
        if val is not None:
            arrays[key] = val.astype(np.float32)
    for key in ("visible", "pinned"):
        if getattr(clip, key) is not None:
            arrays[key] = getattr(clip, key).astype(bool)
    if clip.confidence is not None:
        arrays["confidence"] = clip.confidence.astype(np.float32)
    arrays.update(extra or {})
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)
    return path
