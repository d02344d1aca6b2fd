"""Methods that turn an observation into a motion, and the registry ``dreamor eval`` draws from.

A method is a callable ``(observed: Clip, config: MethodConfig) -> Clip``. The observed clip is
what ``occlusion.occlude`` makes: ``joints`` (T, 22, 3) metres, Z-up, NaN where ``visible``
(T, 22) is False (noisy where the protocol adds noise), zero rotations, no contacts. The
prediction must carry ``joints`` (T, 22, 3) and ``contacts`` (T, 9) in [0, 1]; methods that
also solve for a body pose (``produces_pose``) fill ``trans``/``root_orient``/``pose_body`` so the
vertex error can be measured with a real SMPL model.

- ``input``: the observation as given; a hidden joint is held at its last seen position, or
  placed by the rest pose where it has not been seen yet (hung from its nearest placed
  ancestor, the rest pose upright and turned the way the visible shoulders/hips face).
- ``interp``: per joint, a cubic spline (not-a-knot) through the visible frames fills every gap with a
  visible frame on both sides; elsewhere (clip ends, never-seen joints) as ``input``.
- ``infill``: the joint-completion network alone (``models.infill``), the first guess the refinement
  starts from, posed by IK through the engine (``dreamor refine --method infill``, the same result).
- ``vae_only``, ``no_opt``, ``dreamor``: the refinement engine (``refine.api.refine``) with the
  shipped checkpoints: HuMoR-style optimisation with the VAE's Gaussian prior, DREAMoR's denoised
  latents without optimisation, and the full method (any preset, any K). Unavailable, with the
  reason, while a checkpoint is missing.

Contacts of the joint-space baselines are HuMoR's labelling rule applied to their own joints.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.interpolate import CubicSpline

from ..data.clip import Clip
from ..data.retarget import Y_UP_TO_Z_UP
from ..errors import DreamorError
from ..skeleton import NUM_JOINTS, PARENTS
from ..state import contact_labels
from .occlusion import hold_last_seen

PRESETS = ("fast", "default", "best")
#: Left/right joint pairs that give the body's heading, in order of preference
#: (shoulders, collars, hips, elbows, knees).
_HEADING_PAIRS = ((16, 17), (13, 14), (1, 2), (18, 19), (4, 5))


@dataclass
class MethodConfig:
    """What every method is run with. ``denoise_steps`` is DREAMoR's K (None: the preset's);
    ``settings``: NAME=VALUE overrides of the refinement config (``refine.config.apply_settings``)."""

    preset: str = "default"
    device: str = "cpu"
    seed: int = 0
    denoise_steps: int | None = None
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Method:
    """A registered method. ``unavailable()`` returns None when it can run, else the reason."""

    name: str
    run: Callable[[Clip, MethodConfig], Clip]
    description: str
    produces_pose: bool = False
    unavailable: Callable[[], str | None] = lambda: None


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def get_methods(names: list[str]) -> list[Method]:
    """Look up methods by name; DreamorError for unknown or unavailable ones (before any work)."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise DreamorError(f"unknown method(s) {', '.join(unknown)}; available: {', '.join(METHODS)}")
    if not names:
        raise DreamorError(f"no methods given; choose from {', '.join(METHODS)}")
    for n in names:
        reason = METHODS[n].unavailable()
        if reason:
            raise DreamorError(f"method '{n}' is not available: {reason}")
    return [METHODS[n] for n in names]


def heading_yaw(joints: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3), (T, 22), (22, 3) -> (T,) radians: how far the body is turned about the vertical.

    0 is SMPL's rest facing (-Y world); the first visible pair of ``_HEADING_PAIRS`` gives the
    heading; frames with no pair reuse the last heading (0 before any).
    """
    t = len(joints)
    yaw = np.full(t, np.nan)
    for a, b in reversed(_HEADING_PAIRS):  # preferred pairs overwrite
        ok = visible[:, a] & visible[:, b]
        d = joints[ok, a] - joints[ok, b]
        rest = Y_UP_TO_Z_UP @ (rest_joints[a] - rest_joints[b])
        good = np.hypot(d[:, 0], d[:, 1]) > 1e-6
        yaw[np.flatnonzero(ok)[good]] = np.arctan2(d[good, 1], d[good, 0]) - np.arctan2(rest[1], rest[0])
    known = ~np.isnan(yaw)
    yaw, seen = hold_last_seen(yaw[:, None], known[:, None])
    return np.where(seen[:, 0], yaw[:, 0], 0.0)


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    """(T,) radians -> (T, 3, 3) rotations about world +Z."""
    c, s = np.cos(yaw), np.sin(yaw)
    rz = np.zeros(yaw.shape + (3, 3))
    rz[..., 0, 0], rz[..., 0, 1], rz[..., 1, 0], rz[..., 1, 1], rz[..., 2, 2] = c, -s, s, c, 1.0
    return rz


def upright_frames(joints: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3), (T, 22), (22, 3) -> (T, 3, 3): the rest pose stood upright (SMPL native +Y up ->
    Z-up world) and turned by ``heading_yaw``."""
    return yaw_matrices(heading_yaw(joints, visible, rest_joints)) @ Y_UP_TO_Z_UP


def rest_fill(joints: np.ndarray, placed: np.ndarray, visible: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Place every joint not yet ``placed`` by the rest pose, hung from its nearest placed ancestor.

    joints: (T, 22, 3) with valid values where placed (T, 22); rest_joints: (22, 3) SMPL native frame.
    A pelvis that is not placed is put where the placed joints' rest offsets put it on average.
    """
    out = joints.copy()
    rot = upright_frames(joints, visible, rest_joints)
    off = lambda j, p: rest_joints[j] - rest_joints[p]  # noqa: E731
    miss0 = ~placed[:, 0]
    if miss0.any():
        est = np.zeros((int(miss0.sum()), 3))
        cnt = np.zeros((int(miss0.sum()), 1))
        for k in range(1, NUM_JOINTS):
            ok = placed[miss0, k]
            pos = joints[miss0, k] - rot[miss0] @ off(k, 0)
            est[ok] += pos[ok]
            cnt[ok] += 1
        fallback = np.array([0.0, 0.0, rest_joints[0, 1] - rest_joints[:, 1].min()])  # standing at the origin
        out[miss0, 0] = np.where(cnt > 0, est / np.maximum(cnt, 1), fallback)
    for j in range(1, NUM_JOINTS):
        miss = ~placed[:, j]
        if miss.any():
            p = PARENTS[j]
            out[miss, j] = out[miss, p] + rot[miss] @ off(j, p)
    return out


def _prediction(observed: Clip, joints: np.ndarray) -> Clip:
    return replace(observed, joints=joints, contacts=contact_labels(joints, observed.fps), visible=None)


def run_input(observed: Clip, config: MethodConfig | None = None) -> Clip:
    """The observation as given: hidden joints held at the last seen value, else the rest pose."""
    held, seen = hold_last_seen(observed.joints, observed.visible)
    return _prediction(observed, rest_fill(held, seen, observed.visible, observed.rest_joints))


def run_interp(observed: Clip, config: MethodConfig | None = None) -> Clip:
    """Per-joint cubic-spline interpolation across gaps with a visible frame on both sides; else ``input``."""
    vis = observed.visible
    out = run_input(observed).joints
    frames = np.arange(observed.num_frames)
    for j in range(NUM_JOINTS):
        seen = np.flatnonzero(vis[:, j])
        if len(seen) < 2:
            continue
        gap = frames[(~vis[:, j]) & (frames > seen[0]) & (frames < seen[-1])]
        if len(gap):
            out[gap, j] = CubicSpline(seen, observed.joints[seen, j], axis=0)(gap)
    return _prediction(observed, out)


_MODELS: dict[str, object] = {}


def _models(device: str):
    """The shipped checkpoints, loaded once per device."""
    from ..refine.api import load_models

    if device not in _MODELS:
        _MODELS[device] = load_models(device=device)
    return _MODELS[device]


def _learned(name: str, what: str) -> Method:
    """A refinement-engine method (``refine.config.METHODS``) run through ``refine.api.refine``."""

    def unavailable() -> str | None:
        from ..refine.api import models_dir

        need = {"infill": ["vae-small.pt", "infill-small.pt"], "vae_only": ["vae-small.pt"]}.get(
            name, ["vae-small.pt", "diffusion-small.pt"])
        missing = [f for f in need if not (models_dir() / f).exists()]
        if missing:
            return (f"trained checkpoint(s) {', '.join(missing)} not found in {models_dir()}; train them with "
                    f"`dreamor train vae` / `dreamor train diffusion`, or evaluate --methods input,interp")
        return None

    def run(observed: Clip, config: MethodConfig) -> Clip:
        from ..refine.api import refine
        from ..refine.config import refine_preset

        reason = unavailable()
        if reason:
            raise DreamorError(f"method '{name}' is not available: {reason}")
        overrides = {"denoise_steps": config.denoise_steps} if config.denoise_steps else {}
        cfg = refine_preset(config.preset, config.settings, method=name, device=config.device, seed=config.seed,
                            **overrides)
        out = refine(observed, observed.visible, cfg, models=_models(config.device))
        return out.to_clip(observed)

    return Method(name, run, what, produces_pose=True, unavailable=unavailable)


register(Method("input", run_input, "observation as given (hidden joints held at last seen, else rest pose)"))
register(Method("interp", run_interp, "per-joint cubic interpolation across gaps, else as input"))
register(_learned("infill", "the joint-completion network alone, posed by IK (the refinement's first guess)"))
register(_learned("vae_only", "HuMoR-style: the same optimisation with the MotionVAE Gaussian prior instead of the diffusion target"))
register(_learned("no_opt", "VAE latents noised and denoised by the diffusion prior, no optimisation (Table 3, w/o opt. diff.)"))
register(_learned("dreamor", "DREAMoR: SDS + observation + regularisers test-time optimisation (any preset, any K)"))
