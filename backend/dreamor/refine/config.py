"""Refinement configs: energy weights, stages and the named presets (fast, default, best).

Methods in the same code path (for the evaluation's baselines):
- ``dreamor``: SDS towards the latent diffusion prior's denoised targets (the paper);
- ``vae_only``: HuMoR-style, the MotionVAE's Gaussian conditional prior -log p(z_t | x_{t-1})
  in place of the diffusion target;
- ``no_opt``: the diffusion-denoised latents of the initial encoding, decoded without optimisation;
- ``infill``: the first guess alone (the joint-completion network, posed by IK), nothing optimised.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace

METHODS = ("dreamor", "vae_only", "no_opt", "infill")


@dataclass
class EnergyWeights:
    """Weights of the energy terms (see ``refine.energies``); units there."""

    sds: float = 0.05  # sum_z ||z - sg(z_hat)||^2 per latent (dreamor)
    prior: float = 0.002  # -log p(z_t | x_{t-1}) per latent (vae_only)
    obs: float = 2000.0  # robust joint distance (m^2, saturates at obs_sigma^2)
    guess: float = 500.0  # the same distance for hidden joints to the completion network's guess
    #: m^2 between the joints two overlapping windows give the same frame (else the cross-fade shows toe pops);
    #: off in ``fast``, where it cost accuracy. Measurements: docs/benchmarks/refine.md, "Why the defaults".
    overlap: float = 300.0
    consistency: float = 100.0  # regressed joints vs FK joints (m^2)
    contact_vel: float = 300.0  # (m/frame)^2 of joints in contact
    contact_height: float = 100.0  # m^2 above the contact threshold
    penetration: float = 1000.0  # m^2 below the ground
    smooth: float = 300.0  # (m/frame^2)^2 joint acceleration


@dataclass
class RefineConfig:
    """One refinement run. Frames are at the model rate (30 Hz)."""

    preset: str = "default"
    method: str = "dreamor"
    weights: EnergyWeights = field(default_factory=EnergyWeights)
    iters: int = 120
    lr: float = 0.03
    #: windows of ``window`` frames overlapping by ``window_overlap`` frames, optimised as one batch.
    #: 1 s windows: the decoder's rollout drifts less over 30 frames than 60, so the latents can follow the observations.
    window: int = 30
    window_overlap: int = 8
    #: windows per optimisation batch (bounds memory for long clips; each batch can be previewed).
    max_batch_windows: int = 24
    #: a live preview (``refine(partial=...)``) of the motion as it stands, at most this many seconds apart.
    preview_every_s: float = 1.5
    #: DDIM steps K per denoised target, the t' range (fractions of T) and CFG guidance ω.
    #: K = 2 (the paper: 10): as accurate as K = 5 and 10 and ~1.3 x quicker under `default`; ω = 1 (no CFG; the paper
    #: uses CFG): closer targets, one pass instead of two, and no worse refinements. Measurements: refine.md.
    denoise_steps: int = 2
    t_range: tuple[float, float] = (0.2, 0.5)
    guidance: float = 1.0
    #: anneal t': the range's upper end moves down to its lower end over the iterations (coarse to fine).
    t_anneal: bool = False
    #: observation-guided denoising (issue #17): every DDIM step's clean latent estimate is moved this fraction of
    #: the linear step that would make its decoded frame meet the visible joints (0 = off, the paper's targets).
    obs_guidance: float = 0.0
    #: recompute the denoised targets every this many iterations.
    refresh_every: int = 20
    #: contact terms only after this fraction of the iterations (first fit the observations).
    contacts_from: float = 0.3
    #: start hidden joints from the joint-completion network's guess (when loaded) instead of splines/rest pose.
    learned_init: bool = True
    #: without the completion network's guess (``learned_init`` off, as the paper preset, or no such model) the mean
    #: of the window prior's draws is the mean guess the answer starts from; off: splines / the rest pose. Only for
    #: ``dreamor`` and ``no_opt``: the window prior is a diffusion prior, and ``vae_only`` is HuMoR's setting.
    prior_init: bool = True
    #: the guess is the mean of the network's answers for the clip and for its mirror image (left <-> right).
    mirror_guess: bool = True
    #: hidden gaps up to this long (seconds) with seen frames on both sides keep the splines' guess, not the
    #: network's: it was trained on gaps of 0.3 s and more, and the poses either side pin a short gap.
    spline_gap_s: float = 0.2
    #: put the rollout's regressed joints back on the skeleton after every step (``MotionVAE.project_bones``,
    #: which free-running samples need). Off: the refinement's rollouts are short and anchored, and it cost accuracy.
    project_bones: bool = False
    #: Gaussian sigma (frames at 30 Hz) smoothing the seen joints of the initial guess in time; 0 = off. Off for a
    #: clean capture: at 2 frames it took 7-8 % of the hidden legs' motion (docs/benchmarks/prior12); a capture
    #: marked ``noisy`` is smoothed by ``noisy_init_smooth`` (its noise is huge velocities in the initial states).
    init_smooth: float = 0.0
    noisy_init_smooth: float = 2.0
    optimize_ground: bool = True
    obs_sigma: float = 0.1  # metres, Geman-McClure scale
    #: Geman-McClure scale of the pull towards the guess, metres: at 0.1 the pull faded for joints far off the
    #: guess (the penalty saturates) and hidden joints could drift away for good.
    guess_sigma: float = 1.0
    #: the pull towards the guess at the last iteration, as a fraction of ``weights.guess`` (linear fade; 1 = constant,
    #: 0 = the guess is only the start where the prior disagrees).
    guess_final: float = 1.0
    #: warn (``Refined.warnings``) when the result's visible joints are on average further than this
    #: from the observation, centimetres (the product must never silently make a capture worse).
    visible_warn_cm: float = 2.0
    #: the capture's visible joints are noisy (e.g. from video): the result follows the motion, not every
    #: observed position -- the final stage that makes visible joints meet the observation is skipped.
    noisy: bool = False
    #: the final stage (``refine.visible_fit``): visible joints put where they were observed by IK on the result,
    #: hidden ones carried by their corrected parents. Skipped when ``noisy``.
    meet_observation: bool = True
    #: trusted visible joints (and pins) keep their captured rotations, the pelvis its captured position where
    #: seen (the add-on's Keep Visible Bones); the final fit then only moves what was not seen.
    keep_visible: bool = False
    #: feet in contact (the result's own contact flags) held in place by IK on the legs (``refine.foot_lock``).
    lock_feet: bool = False
    #: completions returned (``Refined.sample_arrays``): the answer first, then ``samples - 1`` alternatives (the
    #: hypotheses network's heads, then the window prior's draws: ``refine.alternatives``), each posed by IK and put
    #: through the same final stages.
    samples: int = 1
    #: the first this many alternatives are the hypotheses network's heads (``models.hypotheses``: each trained to
    #: be the closest where the mean guess is not), likeliest first; the window prior's draws after them. 0: the
    #: draws only. Best of 5 before the optimisation, 12 clips per split: draws only 0.951 / 0.976 x the mean guess,
    #: 4 heads 0.951 / 0.963, 2 heads + 2 draws 0.944 / 0.961 (docs/benchmarks/hypotheses/).
    head_alternatives: int = 2
    #: the draws among the alternatives: of all ``doubt_draws``, each the farthest from the mean guess, the heads
    #: and the draws chosen before (``refine.alternatives.farthest_first``); off: the first ones. All 24 clips per
    #: split, 5 completions: spread 2.98 -> 3.10 / 4.10 -> 4.40 cm, best of 5 0.938 -> 0.939 / 0.969 -> 0.971 x
    #: ``infill`` (docs/benchmarks/hypotheses/, session 21).
    farthest_draws: bool = True
    #: window-prior draws behind the doubt (``Refined.uncertainty``); the alternatives' draws are chosen among them.
    doubt_draws: int = 6
    #: the doubt is this times the draws' RMS distance from the mean guess: on the training's validation windows
    #: that distance was 0.74 (default split) and 0.51 (unseen subjects) of the real error (MODEL_CARD.md).
    doubt_scale: float = 1.6
    #: the answer starts from the completion network's mean guess plus the deviation of one of ``guess_draws``
    #: completions drawn from the mean guess noised to this fraction of T (SDEdit) from their mean, so hidden limbs
    #: move as real ones (``refine.alternatives.engine_guess``); 0: the mean guess itself (before issue #28).
    prior_t: float = 0.5
    guess_draws: int = 4
    #: DDIM steps of the window prior's draws.
    prior_steps: int = 10
    seed: int = 0
    device: str = "cpu"

    @property
    def start_smooth(self) -> float:
        """The Gaussian sigma (frames at 30 Hz) smoothing the initial guess's seen joints."""
        return max(self.init_smooth, self.noisy_init_smooth) if self.noisy else self.init_smooth


PRESETS: dict[str, RefineConfig] = {
    # The guess pull is 500 here too since its scale is 1 m.
    "fast": RefineConfig(preset="fast", iters=40, refresh_every=10, weights=EnergyWeights(overlap=0.0)),
    "default": RefineConfig(preset="default"),
    # K = 10 as the paper, for whoever wants its targets; no measurement has shown K to matter
    "best": RefineConfig(preset="best", iters=300, lr=0.02, refresh_every=25, window_overlap=10, denoise_steps=10),
    # The paper's configuration (section 3.4): hidden joints start from splines / the rest pose (no completion
    # network), t' ~ U[1, T], K = 10 DDIM steps with classifier-free guidance, no final fit to the observation.
    "paper": RefineConfig(preset="paper", learned_init=False, t_range=(0.0, 1.0), guidance=2.0, denoise_steps=10,
                          meet_observation=False),
}


def refine_preset(name: str = "default", settings: list[str] | tuple[str, ...] = (), **overrides) -> RefineConfig:
    """A copy of a named preset with fields replaced, then ``settings`` applied (see ``apply_settings``);
    ValueError names the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    cfg = apply_settings(replace(copy.deepcopy(PRESETS[name]), **overrides), settings)
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method '{cfg.method}'; choose one of {', '.join(METHODS)}")
    check_ranges(cfg)
    return cfg


#: settings that count something: at least 1 (``iters`` may be 0: the first guess, through the final stages).
_COUNTS = ("window", "max_batch_windows", "denoise_steps", "refresh_every", "samples", "doubt_draws", "guess_draws",
           "prior_steps")
#: settings that are shares of something: 0 to 1.
_SHARES = ("obs_guidance", "contacts_from", "guess_final", "prior_t")


def check_ranges(cfg: RefineConfig) -> None:
    """ValueError naming the first setting out of its range (a count under 1, a negative weight, ...)."""
    for name in _COUNTS:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} = {getattr(cfg, name)}: must be at least 1")
    for name in _SHARES:
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name} = {getattr(cfg, name)}: must lie in 0..1")
    if cfg.iters < 0:
        raise ValueError(f"iters = {cfg.iters}: must be 0 or more")
    if not 0 <= cfg.window_overlap < cfg.window:
        raise ValueError(f"window_overlap = {cfg.window_overlap}: must be 0 or more and under window ({cfg.window})")
    lo, hi = cfg.t_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"t_range = {lo},{hi}: must be LOW,HIGH with 0 <= LOW <= HIGH <= 1")
    for name in ("lr", "obs_sigma", "guess_sigma", "guidance"):
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} = {getattr(cfg, name)}: must be above 0")
    for name in ("spline_gap_s", "init_smooth", "noisy_init_smooth", "visible_warn_cm", "doubt_scale", "preview_every_s"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} = {getattr(cfg, name)}: must be 0 or more")
    for f in fields(cfg.weights):
        if getattr(cfg.weights, f.name) < 0:
            raise ValueError(f"weights.{f.name} = {getattr(cfg.weights, f.name)}: must be 0 or more")


def _parse_value(text: str, like, name: str):
    """``text`` as the type of ``like`` (the field's current value): bool, int, float or a tuple of floats."""
    text = text.strip()
    try:
        if isinstance(like, bool):
            if text.lower() not in ("true", "false", "1", "0", "on", "off"):
                raise ValueError
            return text.lower() in ("true", "1", "on")
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        if isinstance(like, tuple):
            parts = tuple(float(v) for v in text.split(","))
            if len(parts) != len(like):
                raise ValueError
            return parts
    except ValueError:
        raise ValueError(f"--set {name}={text}: expected {type(like).__name__} like {like!r}") from None
    raise ValueError(f"--set {name}: this setting cannot be changed here")


#: fields that --set leaves alone (each has its own option or is not a tuning knob).
_NOT_SETTABLE = {"preset", "method", "weights", "device"}


#: nested settings groups: ``weights.TERM``.
_GROUPS = ("weights",)


def apply_settings(cfg: RefineConfig, settings: list[str] | tuple[str, ...]) -> RefineConfig:
    """Apply ``NAME=VALUE`` strings (the CLI's ``--set``): NAME is a RefineConfig field (``iters``,
    ``t_range=0.2,0.5``, ``learned_init=false``) or ``weights.TERM`` (``weights.sds=0``), for ablations. Returns a new config; ValueError says what was wrong, naming the choices."""
    cfg = replace(cfg, weights=replace(cfg.weights))
    settable = [f.name for f in fields(RefineConfig) if f.name not in _NOT_SETTABLE]
    for item in settings:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--set {item!r}: write NAME=VALUE, e.g. weights.sds=0 or iters=200")
        group, dot, term = name.partition(".")
        if dot and group in _GROUPS:
            sub = getattr(cfg, group)
            if term not in {f.name for f in fields(sub)}:
                choices = ", ".join(f.name for f in fields(sub))
                raise ValueError(f"--set {name}: no such {group} setting; choose one of {choices}")
            setattr(cfg, group, replace(sub, **{term: _parse_value(value, getattr(sub, term), name)}))
        elif name in settable:
            cfg = replace(cfg, **{name: _parse_value(value, getattr(cfg, name), name)})
        else:
            raise ValueError(f"--set {name}: no such setting; choose one of {', '.join(settable)} or weights.TERM")
    return cfg
