"""Occlusion protocols: turn a clean clip into the observation a method is given.

Three protocols, each seeded and reproducible (the same seed and clip name give the same mask
and noise, whatever other clips are evaluated alongside):

- ``lower_body``: hips, knees, ankles and feet (SMPL joints 1, 2, 4, 5, 7, 8, 10, 11) hidden for
  the whole clip, as in RoHM's setup that the DREAMoR paper follows (Table 1).
- ``limb_gaps``: random limb occlusions of 0.3-2 s, as an animator marks them: a limb (arm or
  leg), from a random joint of its chain down to its end (e.g. elbow + wrist), over a frame range.
- ``noisy``: Gaussian noise on every joint coordinate (sigma 4 cm by default, as in HuMoR);
  nothing hidden.

The observation keeps only what a capture would give. ``joints`` hold NaN where a joint is not
visible (so a method cannot peek at the clean value), ``visible`` marks what is seen; the body
shape (``rest_joints``) is kept, since the product takes it from the user's armature. The paper's
input is 3D keypoints, so the rotations are *not* observed: ``root_orient``/``pose_body`` are zero
(they would leak the hidden joints through forward kinematics) and ``trans`` is the observed
pelvis minus the rest pelvis (held where the pelvis is hidden). ``contacts`` is None: the labels
are ground truth.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from ..body.fill import hold_last_seen
from ..body.skeleton import JOINT_GROUPS, NUM_JOINTS
from ..data.clip import Clip
from ..errors import DreamorError

PROTOCOLS = ("lower_body", "limb_gaps", "noisy")
#: Limb chains (root to tip) an animator marks in ``limb_gaps``.
LIMB_CHAINS: tuple[tuple[int, ...], ...] = tuple(JOINT_GROUPS[k] for k in ("left_arm", "right_arm", "left_leg", "right_leg"))


@dataclass
class OcclusionConfig:
    """Protocol parameters. Defaults follow the paper (lower body) and HuMoR (noise)."""

    noise_sigma_m: float = 0.04  # ``noisy``: per-coordinate Gaussian sigma, metres
    gap_seconds: tuple[float, float] = (0.3, 2.0)  # ``limb_gaps``: gap duration range
    gaps_per_second: float = 0.4  # ``limb_gaps``: number of gaps = max(1, round(rate * seconds))


def clip_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on (seed, clip name): reproducible clip by clip."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])


def visibility_mask(protocol: str, num_frames: int, fps: float, rng: np.random.Generator,
                    config: OcclusionConfig | None = None) -> np.ndarray:
    """(T, 22) bool, False where the protocol hides a joint."""
    cfg = config or OcclusionConfig()
    vis = np.ones((num_frames, NUM_JOINTS), dtype=bool)
    if protocol == "lower_body":
        vis[:, list(JOINT_GROUPS["lower_body"])] = False
    elif protocol == "limb_gaps":
        lo, hi = cfg.gap_seconds
        n_gaps = max(1, int(round(cfg.gaps_per_second * num_frames / fps)))
        for _ in range(n_gaps):
            chain = LIMB_CHAINS[rng.integers(len(LIMB_CHAINS))]
            first = int(rng.integers(len(chain)))
            length = min(num_frames, max(1, int(round(rng.uniform(lo, hi) * fps))))
            start = int(rng.integers(num_frames - length + 1))
            vis[start:start + length, list(chain[first:])] = False
    elif protocol != "noisy":
        raise DreamorError(f"unknown protocol '{protocol}'; use one of {', '.join(PROTOCOLS)}")
    return vis


def observe(clip: Clip, visible: np.ndarray, noise: np.ndarray | None = None) -> Clip:
    """The observation of a clean clip with ``joints``: (T, 22) ``visible``, optional (T, 22, 3) noise (m)."""
    if clip.joints is None:
        raise DreamorError(f"clip {clip.name}: an observation needs the clip's joints (use with_joints_and_contacts)")
    vis = np.asarray(visible, dtype=bool)
    t = clip.num_frames
    joints = clip.joints.astype(np.float64).copy()
    if noise is not None:
        joints += noise
    joints[~vis] = np.nan
    pelvis, seen = hold_last_seen(joints[:, :1], vis[:, :1])
    pelvis = pelvis[:, 0]
    if seen[:, 0].any():  # before the first sighting, the first seen value
        pelvis[~seen[:, 0]] = pelvis[np.argmax(seen[:, 0])]
    else:
        pelvis = np.tile(clip.rest_joints[0], (t, 1))
    return replace(
        clip,
        trans=pelvis - clip.rest_joints[0],
        root_orient=np.zeros((t, 3)),
        pose_body=np.zeros((t, 63)),
        betas=None if clip.betas is None else clip.betas.copy(),
        joints=joints,
        contacts=None,
        visible=vis.copy(),
    )


def occlude(clip: Clip, protocol: str, seed: int = 0, config: OcclusionConfig | None = None) -> Clip:
    """A clean clip with ``joints`` -> the observed clip under ``protocol`` (see the module docstring)."""
    cfg = config or OcclusionConfig()
    rng = clip_rng(seed, clip.name)
    vis = visibility_mask(protocol, clip.num_frames, clip.fps, rng, cfg)
    noise = None
    if protocol == "noisy":
        noise = rng.normal(0.0, cfg.noise_sigma_m, size=(clip.num_frames, NUM_JOINTS, 3))
    return observe(clip, vis, noise)
