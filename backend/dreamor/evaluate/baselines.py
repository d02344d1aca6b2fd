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

from ..body.fill import held_fill, spline_fill
from ..body.state import contact_labels
from ..data.clip import Clip
from ..errors import DreamorError


@dataclass
class MethodConfig:
    """What every method is run with. ``denoise_steps`` is DREAMoR's K (None: the preset's);
    ``settings``: NAME=VALUE overrides of the refinement config (``refine.config.apply_settings``)."""

    preset: str = "default"
    device: str = "cpu"
    seed: int = 0
    denoise_steps: int | None = None
    settings: tuple[str, ...] = ()
    samples: int = 1


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


def _prediction(observed: Clip, joints: np.ndarray) -> Clip:
    return replace(observed, joints=joints, contacts=contact_labels(joints, observed.fps), visible=None)


def run_input(observed: Clip, config: MethodConfig | None = None) -> Clip:
    """The observation as given: hidden joints held at the last seen value, else the rest pose."""
    return _prediction(observed, held_fill(observed.joints, observed.visible, observed.rest_joints))


def run_interp(observed: Clip, config: MethodConfig | None = None) -> Clip:
    """Per-joint cubic-spline interpolation across gaps with a visible frame on both sides; else ``input``."""
    return _prediction(observed, spline_fill(observed.joints, observed.visible, observed.rest_joints))


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
        overrides = {"denoise_steps": config.denoise_steps} if config.denoise_steps is not None else {}
        cfg = refine_preset(config.preset, config.settings, method=name, device=config.device, seed=config.seed,
                            samples=config.samples if _models(config.device).window_prior is not None else 1,
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
