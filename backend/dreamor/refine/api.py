"""The refinement engine as a library call: ``refine(clip, visible, config) -> Refined``.

The caller's skeleton (``clip.rest_joints``, from the clip or the armature) is the body. The
networks see it at the reference size (``bodies.body_scale``): the clip is scaled so its legs are
``REFERENCE_LEG_M`` long, refined, and scaled back, so a uniformly scaled body gets the scaled
result. Observations are the clip's joints (``clip.joints``; computed by FK from the clip's
rotations when absent); joints where ``visible`` is False never enter the result (they may
be garbage or NaN). Any frame rate in, the same frames and rate out (the model runs at 30 Hz).
Long clips are cut into overlapping windows, optimised in batches and cross-faded.
"""
from __future__ import annotations

import functools
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..body.fill import short_gaps, spline_fill
from ..body.kinematics import forward_kinematics
from ..body.proportions import body_scale, scale_clip
from ..body.rotations import aa_to_mat, mat_to_aa
from ..body.skeleton import MODEL_FPS, NUM_JOINTS, PARENTS
from ..body.state import contact_labels, motion_to_state, state_rotmats
from ..data.clip import Clip
from ..data.resample import resample_clip
from ..data.retarget import solve_rotations
from ..errors import DreamorError
from .config import RefineConfig, refine_preset
from .alternatives import doubt, draw_completions, engine_guess, farthest_first, recentred
from .foot_lock import lock_feet
from .gap_doubt import bridged, spline_doubt
from .optimize import ProgressFn, RefineCancelled, WindowBatch, optimize_windows
from .reuse import WindowCache, window_inputs
from .visible_fit import meet_observation
from .windows import blend_weights, split_windows

MIN_FRAMES = 8  # at 30 Hz
#: observation weight of a pinned joint (a trusted one has 1): the optimisation bends the motion to it.
PIN_WEIGHT = 10.0
MODELS_DIR_ENV = "DREAMOR_MODELS_DIR"
PartialFn = Callable[[int, "Refined"], None]


@dataclass
class Refined:
    """A refined motion at the input's frame rate. trans (T, 3) m; root_orient (T, 3) and
    pose_body (T, 63) axis-angle; joints (T, 22, 3) m; contacts (T, 9) probabilities."""

    trans: np.ndarray
    root_orient: np.ndarray
    pose_body: np.ndarray
    joints: np.ndarray
    contacts: np.ndarray
    fps: float
    energies: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: how far the result's visible joints are from where they were observed (cm): mean and 95th percentile.
    quality: dict[str, float] = field(default_factory=dict)
    #: sentences for the user when the result should be checked (see ``visible_guard``).
    warnings: list[str] = field(default_factory=list)
    #: the other completions (``RefineConfig.samples`` - 1 of them), each a Refined through the same final stages.
    alternatives: list["Refined"] = field(default_factory=list)
    #: (T, 22) metres: how far each joint may be off (0 where seen; None without the window prior).
    uncertainty: np.ndarray | None = None
    #: what this completion is: ``answer``, ``head`` (a hypotheses-network head), ``draw`` (a window-prior draw) or
    #: ``copy`` (an alternative when nothing was hidden: the answer itself).
    kind: str = "answer"

    def kind_counts(self) -> dict[str, int]:
        """How many of the alternatives are of each kind (the heads come first, then the draws)."""
        return dict(Counter(a.kind for a in self.alternatives))

    def sample_arrays(self) -> dict[str, np.ndarray]:
        """The refined clip's extra keys (float32): ``samples`` (N, T, 22, 3) joints, their poses ``sample_trans``
        (N, T, 3), ``sample_root_orient`` (N, T, 3), ``sample_pose_body`` (N, T, 63), ``sample_contacts`` (N, T, 9),
        and ``uncertainty`` (T, 22) m when known: this answer first, then the alternatives."""
        samples = [self, *self.alternatives]
        out = {f"sample_{k}" if k != "joints" else "samples": np.stack([getattr(s, k) for s in samples]).astype(np.float32)
               for k in ("joints", "trans", "root_orient", "pose_body", "contacts")}
        if self.uncertainty is not None:
            out["uncertainty"] = self.uncertainty.astype(np.float32)
        return out

    def to_clip(self, like: Clip) -> Clip:
        """The refined clip: the answer, with ``samples`` (the answer and the alternatives) and ``uncertainty``."""
        return replace(like, trans=self.trans, root_orient=self.root_orient, pose_body=self.pose_body,
                       joints=self.joints, contacts=self.contacts, fps=self.fps, visible=None,
                       samples=np.stack([self.joints, *(a.joints for a in self.alternatives)]),
                       uncertainty=self.uncertainty)


@dataclass
class Models:
    """The loaded networks: the MotionVAE (with its Gaussian prior), the latent diffusion prior and
    the joint-completion network that gives the first guess for hidden joints (None: splines / rest pose)."""

    vae: torch.nn.Module
    diffusion: torch.nn.Module | None
    ids: dict[str, str] = field(default_factory=dict)
    infill: torch.nn.Module | None = None
    #: the window prior (``models.window_prior``): alternatives, doubt and the answer's start (None: the mean guess)
    window_prior: torch.nn.Module | None = None
    #: the hypotheses network (``models.hypotheses``): the first alternatives (None: the window prior's draws only)
    hypotheses: torch.nn.Module | None = None


def models_dir() -> Path:
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "models"


def check_device(device: str) -> None:
    """DreamorError unless ``device`` is 'cpu', or 'cuda[:i]' with a CUDA device torch can see."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise DreamorError(f"unknown device '{device}'; use cpu or cuda")
    if not torch.cuda.is_available():
        raise DreamorError(f"--device {device} but torch sees no CUDA device (torch {torch.__version__}); use --device cpu")


def load_models(vae_path: str | os.PathLike | None = None, diffusion_path: str | os.PathLike | None = None,
                device: str = "cpu", infill_path: str | os.PathLike | None = None,
                window_prior_path: str | os.PathLike | None = None,
                hypotheses_path: str | os.PathLike | None = None) -> Models:
    """Load the shipped checkpoints (``models/vae-small.pt``, ``models/diffusion-small.pt``,
    ``models/infill-small.pt``, ``models/window-prior-small.pt``, ``models/hypotheses-small.pt``) or given ones; all
    but the VAE are optional."""
    from ..models.diffusion import load_diffusion
    from ..models.hypotheses import load_hypotheses
    from ..models.infill import load_infill
    from ..models.vae import load_vae
    from ..models.window_prior import load_window_prior

    check_device(str(device))
    root = models_dir()
    vae_path = Path(vae_path) if vae_path else root / "vae-small.pt"
    diffusion_path = Path(diffusion_path) if diffusion_path else root / "diffusion-small.pt"
    if not vae_path.exists():
        raise DreamorError(f"no MotionVAE checkpoint at {vae_path}; train one with `dreamor train vae` "
                           f"or set {MODELS_DIR_ENV}")
    vae = load_vae(vae_path, device)
    vae.eval().requires_grad_(False)
    diffusion = None
    if diffusion_path.exists():
        diffusion, _ = load_diffusion(diffusion_path, device)
        diffusion.eval().requires_grad_(False)
    infill_path = Path(infill_path) if infill_path else root / "infill-small.pt"
    infill = load_infill(infill_path, device) if infill_path.exists() else None
    prior_path = Path(window_prior_path) if window_prior_path else root / "window-prior-small.pt"
    prior = load_window_prior(prior_path, device) if prior_path.exists() else None
    hyp_path = Path(hypotheses_path) if hypotheses_path else root / "hypotheses-small.pt"
    hyp = load_hypotheses(hyp_path, device) if hyp_path.exists() else None
    return Models(vae, diffusion, {"vae": vae_path.name, "diffusion": diffusion_path.name if diffusion else "",
                                   "infill": infill_path.name if infill else "",
                                   "window_prior": prior_path.name if prior else "",
                                   "hypotheses": hyp_path.name if hyp else ""}, infill, prior, hyp)


# ----------------------------------------------------------------------------- input checks
def _mark(clip: Clip, key: str, t: int) -> np.ndarray | None:
    arr = getattr(clip, key)
    if arr is None:
        return None
    arr = np.asarray(arr)
    if arr.shape != (t, NUM_JOINTS):
        raise DreamorError(f"the clip's '{key}' has shape {arr.shape}; expected ({t}, {NUM_JOINTS}) (frames x joints)")
    return arr


def _observations(clip: Clip, visible: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> observed joints (T, 22, 3), visible (T, 22) bool, observation weights (T, 22) and pinned (T, 22) bool;
    raises DreamorError on bad input.

    A joint is seen where ``visible`` says so and its ``confidence`` (when given) is above 0, or where it is
    pinned. Its weight is its confidence (1 when none is given), ``PIN_WEIGHT`` where pinned, 0 where unseen."""
    t = clip.num_frames
    if t == 0:
        raise DreamorError("the clip has no frames")
    vis = clip.visible if visible is None else visible
    vis = np.ones((t, NUM_JOINTS), bool) if vis is None else np.asarray(vis)
    if vis.shape != (t, NUM_JOINTS):
        raise DreamorError(f"the visibility mask has shape {vis.shape}; expected ({t}, {NUM_JOINTS}) (frames x joints)")
    conf, pinned = _mark(clip, "confidence", t), _mark(clip, "pinned", t)
    weight = vis.astype(np.float64)
    if conf is not None:
        if not np.all((conf >= 0) & (conf <= 1)):
            raise DreamorError("the clip's confidence must lie in [0, 1] (0 hidden, 1 trusted, between: noisy)")
        weight = weight * conf
    pinned = np.zeros((t, NUM_JOINTS), bool) if pinned is None else pinned.astype(bool)
    weight[pinned] = PIN_WEIGHT
    vis = weight > 0
    if not vis.any():
        raise DreamorError("every joint is marked occluded in every frame: nothing to refine from")
    for key in ("trans", "root_orient", "pose_body", "rest_joints"):
        if not np.all(np.isfinite(getattr(clip, key))):
            raise DreamorError(f"the clip's '{key}' holds NaN or infinite values")
    if clip.joints is not None:
        joints = np.asarray(clip.joints, np.float64)
        if joints.shape != (t, NUM_JOINTS, 3):
            raise DreamorError(f"the clip's joints have shape {joints.shape}; expected ({t}, {NUM_JOINTS}, 3)")
        if not np.all(np.isfinite(joints[vis])):
            raise DreamorError("visible joints hold NaN or infinite values")
    else:
        aa = torch.as_tensor(clip.local_aa, dtype=torch.float64)
        joints = forward_kinematics(aa_to_mat(aa), torch.as_tensor(clip.rest_joints), torch.as_tensor(clip.trans)).joints.numpy()
    if t / clip.fps * MODEL_FPS < MIN_FRAMES:
        frames = f"{t} frame{'' if t == 1 else 's'}"
        raise DreamorError(f"the clip is too short: {frames} at {clip.fps:g} fps; refinement needs at least "
                           f"{MIN_FRAMES / MODEL_FPS:.2f} s ({math.ceil(MIN_FRAMES / MODEL_FPS * clip.fps - 1e-9)} frames at {clip.fps:g} fps)")
    return joints, vis, weight, pinned


def _initial_states(filled: np.ndarray, rest: np.ndarray) -> torch.Tensor:
    """Filled-in joints (T, 22, 3) -> states (T, 273) posed to reach them (see retarget.solve_rotations)."""
    glob = solve_rotations(filled, rest)
    local = glob.copy()
    for j in range(1, NUM_JOINTS):
        local[:, j] = np.swapaxes(glob[:, PARENTS[j]], -1, -2) @ glob[:, j]
    x, _ = motion_to_state(torch.from_numpy(local), torch.from_numpy(filled[:, 0] - rest[0]),
                           torch.from_numpy(rest), MODEL_FPS)
    return x.float()


def _project_rotations(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u[..., -1] *= d[..., None]
    return u @ vt


# ----------------------------------------------------------------------------- the call
def refine(clip: Clip, visible: np.ndarray | None = None, config: RefineConfig | None = None,
           progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
           models: Models | None = None, partial: PartialFn | None = None, cache: WindowCache | None = None) -> Refined:
    """Refine ``clip`` given a (T, 22) visibility mask; see the module docstring.

    progress(stage, fraction, energies) is called while working; should_stop() is polled
    every iteration and raises RefineCancelled (nothing is returned half-done); partial(0, Refined)
    gets a preview of the frames optimised so far, as they stand, every ``cfg.preview_every_s``
    seconds of work and after each finished batch of windows (before the final fit to the observation).
    ``cache`` (``refine.reuse.WindowCache``): windows whose inputs it already holds are reused, not optimised again
    (``timings['windows_reused']`` says how many); it gets the windows optimised now.
    """
    cfg = config or refine_preset("default")

    def check_stop() -> None:  # between the stages and inside the window prior's sampling
        if should_stop is not None and should_stop():
            raise RefineCancelled("refinement cancelled")

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    clip = replace(clip, samples=None, uncertainty=None)  # an earlier refine's completions are not input
    joints, vis, weight, pinned = _observations(clip, visible)
    trusted = weight >= 1.0  # confidence 1 or pinned: put back where observed; noisy ones are smoothed
    try:
        size = body_scale(clip.rest_joints)
    except ValueError as exc:
        raise DreamorError(f"the clip's skeleton is unusable: {exc}") from None
    clip, joints = scale_clip(clip, 1.0 / size), joints / size
    models = models or load_models(device=cfg.device)
    dev = torch.device(cfg.device)
    models.vae.to(dev)
    if models.diffusion is not None:
        models.diffusion.to(dev)

    observed = replace(clip, joints=np.where(vis[..., None], joints, np.nan), visible=vis, contacts=None, pinned=None,
                       confidence=None)
    filled = spline_fill(observed.joints, vis, clip.rest_joints)  # the simple guess: splines across gaps
    at30 = resample_clip(replace(observed, joints=filled, confidence=weight / PIN_WEIGHT), MODEL_FPS)
    obs30, vis30, rest = at30.joints, at30.visible, clip.rest_joints
    weight30 = at30.confidence * PIN_WEIGHT
    n = len(obs30)
    guessed = np.zeros_like(vis30)
    draws = None  # the window prior's completions (M, n, 22, 3): the alternatives and the doubt
    # The networks complete a body around its pelvis, and never saw frames with nothing seen nor gaps shorter than
    # 0.3 s: there the pelvis, whole lost frames and short gaps keep the splines' guess and reach them as seen.
    seen = vis30 | short_gaps(vis30, int(round(cfg.spline_gap_s * MODEL_FPS)))
    seen[:, 0] = True
    seen[~vis30.any(1)] = True
    prior = models.window_prior if (~seen).any() else None
    if prior is not None:
        prior.to(dev)
        draws = draw_completions(prior, obs30, seen, rest, max(cfg.doubt_draws, cfg.samples - 1), cfg.seed + 1,
                                 cfg.prior_steps, on_step=check_stop)
    centre = obs30  # the mean guess: the doubt is the draws' distance from it
    alternatives = draws
    diffusion_start = prior is not None and cfg.method in ("dreamor", "no_opt")  # vae_only: HuMoR's, no diffusion
    mean_guess = heads = None
    if cfg.learned_init and models.infill is not None and (~seen).any():
        from ..models.infill import complete

        check_stop()
        mean_guess = complete(models.infill, obs30, seen, rest, mirror_average=cfg.mirror_guess)  # the network's guess
        if cfg.head_alternatives > 0 and cfg.samples > 1 and models.hypotheses is not None and prior is not None:
            from ..models.hypotheses import hypotheses

            models.hypotheses.to(dev)
            heads = hypotheses(models.hypotheses, obs30, seen, rest)[0][: cfg.head_alternatives]
    elif cfg.prior_init and diffusion_start:  # no completion network: the window prior's own mean
        mean_guess = draws.mean(0)
    if mean_guess is not None:
        obs30 = centre = mean_guess
        guessed = ~seen
        if draws is not None and len(draws) > 1:  # the alternatives move about the mean guess, as the answer
            alternatives = recentred(draws, centre)
            if cfg.farthest_draws:
                chosen = centre[None] if heads is None else np.concatenate([centre[None], heads])
                alternatives = farthest_first(alternatives, chosen, cfg.samples - len(chosen), ~seen)
        if heads is not None:  # the heads first (most likely first), then the window prior's draws
            alternatives = np.concatenate([heads, alternatives])
        if diffusion_start and cfg.prior_t > 0:  # an answer that moves
            check_stop()
            obs30 = engine_guess(prior, centre, seen, rest, cfg.prior_t, cfg.seed, cfg.prior_steps, cfg.guess_draws,
                                 on_step=check_stop)
    if cfg.samples > 1 and models.window_prior is None:
        raise DreamorError(f"{cfg.samples} samples need the window prior (models/window-prior-small.pt); "
                           "train one with `dreamor train window-prior` or ask for 1 sample")
    guess = smoothed_start(obs30, seen, cfg.start_smooth)
    x_init = _initial_states(guess, rest)
    timings["prepare_s"] = time.perf_counter() - t0

    windows = split_windows(n, cfg.window, cfg.window_overlap)
    t1 = time.perf_counter()
    # results[k]: window k's (states (L, 273), contacts (L, 9)), float64 at 30 Hz, once optimised (or reused)
    results: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(windows)
    energies: dict[str, float] = {}
    if cfg.method == "infill":  # the first guess alone: posed to reach the completed joints, nothing optimised
        if models.infill is None:
            raise DreamorError("method 'infill' needs the joint-completion network (models/infill-small.pt)")
        windows = [(0, n)]
        results = [(_initial_states(obs30, rest).double(), torch.from_numpy(contact_labels(obs30, MODEL_FPS)))]
    inputs = None
    if cache is not None and cfg.method != "infill":
        inputs = window_inputs(windows, obs30, [vis30, weight30, guessed], rest, cfg,
                               {**models.ids, "loaded": str(id(models.vae))})
        results = [cache.get(inp) for inp in inputs]
    todo = [k for k, r in enumerate(results) if r is None]
    timings["windows"], timings["windows_reused"] = float(len(windows)), float(len(windows) - len(todo))
    chunks = [todo[i : i + cfg.max_batch_windows] for i in range(0, len(todo), cfg.max_batch_windows)]

    def preview(now: list) -> None:
        """The leading windows that have a result, assembled up to the first frame still to optimise."""
        ready = next((k for k, r in enumerate(now) if r is None), len(now))
        if partial is None or ready == 0:
            return
        done, whole = windows[:ready], ready == len(windows)
        end = n if whole else windows[ready][0]
        out = _assemble(done, [r[0] for r in now[:ready]], [r[1] for r in now[:ready]], rest, end, clip.fps,
                        MODEL_FPS, num_out=clip.num_frames if whole else None)
        partial(0, _scaled(out, size))

    if 0 < len(todo) < len(windows):
        preview(results)  # what an earlier refine optimised shows at once
    for ci, chunk in enumerate(chunks):
        def chunk_progress(stage, fraction, terms, ci=ci):
            if progress is not None:
                progress(stage, (ci + fraction) / len(chunks), terms)

        spans = [windows[k] for k in chunk]
        fixed = _neighbour_targets(windows, chunk, results, vis30, rest) if cfg.weights.overlap > 0 else None
        batch = WindowBatch(
            observed=torch.stack([torch.from_numpy(obs30[s:e]) for s, e in spans]).float().to(dev),
            visible=torch.stack([torch.from_numpy(vis30[s:e]) for s, e in spans]).to(dev),
            rest_joints=torch.from_numpy(rest).float().expand(len(spans), NUM_JOINTS, 3).to(dev),
            x_init=torch.stack([x_init[s:e] for s, e in spans]).to(dev),
            guessed=torch.stack([torch.from_numpy(guessed[s:e]) for s, e in spans]).to(dev),
            weight=torch.stack([torch.from_numpy(weight30[s:e]) for s, e in spans]).float().to(dev),
            starts=[s for s, _ in spans],  # windows that are not neighbours do not overlap: no agreement term
            fixed=None if fixed is None else (fixed[0].float().to(dev), fixed[1].to(dev)),
        )

        def chunk_preview(x, c, chunk=chunk):  # every finished window and this chunk's as they stand
            now = list(results)
            for j, k in enumerate(chunk):
                now[k] = (x[j].cpu().double(), c[j].cpu().double())
            preview(now)

        res = optimize_windows(models.vae, models.diffusion, batch, cfg, chunk_progress, should_stop,
                               chunk_preview if partial is not None else None)
        for j, k in enumerate(chunk):
            results[k] = (res.states[j].cpu().double(), res.contacts[j].cpu().double())
            if inputs is not None:
                cache.put(inputs[k], *results[k])
        energies = res.energies
        if ci + 1 < len(chunks):
            preview(results)
    timings["optimise_s"] = time.perf_counter() - t1
    out = _assemble(windows, [r[0] for r in results], [r[1] for r in results], rest, n, clip.fps, MODEL_FPS,
                    num_out=clip.num_frames)
    finish = functools.partial(_finish, clip=clip, joints=joints, vis=vis, trusted=trusted, pinned=pinned, cfg=cfg,
                               size=size)
    out = finish(out, timings)
    out.energies = energies
    if models.window_prior is not None:  # the doubt: the window prior's where the networks completed, else the splines'
        out.uncertainty = spline_doubt(filled, vis, clip.fps) * size
    if draws is not None:
        t3 = time.perf_counter()
        completed = _at_clip_rate(~seen, clip) & ~vis
        networks = _at_clip_rate(doubt(draws, centre, ~seen, cfg.doubt_scale), clip) * size
        out.uncertainty = bridged(np.where(completed, networks, out.uncertainty), networks, completed, ~vis)
        num_heads = 0 if heads is None else len(heads)
        for k, draw in enumerate(alternatives[: cfg.samples - 1]):
            check_stop()
            posed = _assemble([(0, n)], [_initial_states(draw, rest).double()],
                              [torch.from_numpy(contact_labels(draw, MODEL_FPS)).double()], rest, n, clip.fps,
                              MODEL_FPS, num_out=clip.num_frames)
            out.alternatives.append(replace(finish(posed, {}), kind="head" if k < num_heads else "draw"))
        timings["alternatives_s"] = time.perf_counter() - t3
    elif cfg.samples > 1:
        out.warnings.append(f"nothing was hidden long enough to complete: the {cfg.samples - 1} alternative(s) are "
                            "the answer itself")
        out.alternatives = [replace(out, warnings=[], kind="copy") for _ in range(cfg.samples - 1)]
    timings["total_s"] = time.perf_counter() - t0
    out.timings = timings
    return out


def smoothed_start(guess: np.ndarray, seen: np.ndarray, sigma: float) -> np.ndarray:
    """The joints the initial states are posed to: ``guess`` (n, 22, 3) with its ``seen`` (n, 22) joints smoothed in
    time by a Gaussian of ``sigma`` frames (``RefineConfig.start_smooth``): a noisy capture's noise becomes huge
    velocities in the initial states (and latents the decoder cannot follow); the data term still sees the raw
    capture. The completed (hidden) joints are the networks' own answer and stay as they are."""
    if sigma <= 0:
        return guess
    smooth = gaussian_filter1d(guess, sigma, axis=0, mode="nearest")
    return np.where(seen[..., None], smooth, guess)


def _at_clip_rate(values: np.ndarray, clip: Clip) -> np.ndarray:
    """(n, ...) at 30 Hz -> (T, ...) at the clip's frames (nearest 30 Hz frame)."""
    idx = np.round(np.arange(clip.num_frames) * MODEL_FPS / clip.fps).astype(int)
    return values[np.minimum(idx, len(values) - 1)]


def _finish(out: Refined, timings: dict, *, clip: Clip, joints: np.ndarray, vis: np.ndarray, trusted: np.ndarray,
            pinned: np.ndarray, cfg: RefineConfig, size: float) -> Refined:
    """The final stages every completion goes through (the answer and each alternative): a motion at the reference
    size -> at the body's size, with the captured rotations kept (``keep_visible``), trusted visible joints and pins
    put where observed, feet locked (``lock_feet``) and the visible joints checked (``visible_guard``)."""
    rest = clip.rest_joints
    if cfg.keep_visible:  # trusted joints and pins keep their captured rotations (the pelvis its position)
        out = keep_visible_rotations(out, clip, trusted)
    # kept joints are where they were captured already: in the fit they anchor what hangs from them
    meet = cfg.meet_observation and (cfg.keep_visible or not cfg.noisy)
    fit = pinned | (trusted & meet)
    if fit.any():  # trusted visible joints and pins put where they were observed (refine.visible_fit)
        t2 = time.perf_counter()
        rot = aa_to_mat(torch.from_numpy(np.concatenate([out.root_orient[:, None], out.pose_body.reshape(-1, 21, 3)], 1)))
        rot, trans, fitted = meet_observation(rot.numpy(), out.trans, rest, joints, fit, blend=round(0.2 * clip.fps),
                                              keep=trusted & ~pinned if cfg.keep_visible else None, anchors=vis & ~fit)
        aa = mat_to_aa(torch.from_numpy(rot)).numpy()
        out = replace(out, trans=trans, root_orient=aa[:, 0], pose_body=aa[:, 1:].reshape(-1, 63), joints=fitted)
        timings["fit_s"] = time.perf_counter() - t2
    if cfg.lock_feet:  # feet in contact held in place (refine.foot_lock)
        rot = aa_to_mat(torch.from_numpy(np.concatenate([out.root_orient[:, None], out.pose_body.reshape(-1, 21, 3)], 1)))
        rot, locked = lock_feet(rot.numpy(), out.trans, rest, out.contacts, clip.fps, fixed=fit)
        aa = mat_to_aa(torch.from_numpy(rot)).numpy()
        out = replace(out, root_orient=aa[:, 0], pose_body=aa[:, 1:].reshape(-1, 63), joints=locked)
    out = _scaled(out, size)
    return visible_guard(out, joints * size, trusted & ~pinned, cfg.visible_warn_cm, clip.fps)


def _neighbour_targets(windows: list[tuple[int, int]], chunk: list[int], results: list, visible: np.ndarray,
                       rest: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For the windows ``chunk`` about to be optimised: (targets (B, L, 22, 3), mask (B, L, 22) bool) -- the FK joints
    that neighbouring windows optimised earlier (reused, or in an earlier batch) give the frames they share with
    each, masked to the joints hidden there (as ``windows.overlap_pairs``); None when no window has such a neighbour."""
    length = windows[chunk[0]][1] - windows[chunk[0]][0]
    targets = torch.zeros(len(chunk), length, NUM_JOINTS, 3, dtype=torch.float64)
    mask = torch.zeros(len(chunk), length, NUM_JOINTS, dtype=torch.bool)
    members = set(chunk)
    for i, k in enumerate(chunk):
        s, e = windows[k]
        for nb in (k - 1, k + 1):
            if nb < 0 or nb >= len(windows) or nb in members or results[nb] is None:
                continue
            ns, ne = windows[nb]
            lo, hi = max(s, ns), min(e, ne)
            if hi <= lo:
                continue
            x = results[nb][0][lo - ns : hi - ns]
            joints = forward_kinematics(state_rotmats(x), torch.from_numpy(rest).to(x), x[:, :3]).joints
            targets[i, lo - s : hi - s] = joints
            mask[i, lo - s : hi - s] = torch.from_numpy(~visible[lo:hi])
    return (targets, mask) if mask.any() else None


def visible_guard(out: Refined, observed: np.ndarray, visible: np.ndarray, warn_cm: float, fps: float = MODEL_FPS) -> Refined:
    """Measure how far the result's visible joints are from the observation ((T, 22, 3) m, (T, 22));
    add a warning when the mean is over ``warn_cm`` plus twice the observation's own jitter (its mean
    distance to itself smoothed over ~2 frames at 30 Hz: cleaning jitter off a capture is the job, not
    a failure): then the refinement could not follow this body or motion, and the user should check the
    result (or keep the visible bones as captured)."""
    err = np.linalg.norm(out.joints - observed, axis=-1)[visible] * 100
    if err.size == 0:
        return out
    smooth = gaussian_filter1d(np.where(visible[..., None], observed, 0.0), 2.0 * fps / MODEL_FPS, axis=0, mode="nearest")
    jitter = float(np.linalg.norm(observed - smooth, axis=-1)[visible].mean() * 100) if len(observed) > 4 else 0.0
    mean, p95 = float(err.mean()), float(np.percentile(err, 95))
    out.quality = {"visible_cm": mean, "visible_p95_cm": p95, "observed_jitter_cm": jitter}
    limit = warn_cm + 2.0 * jitter
    if mean > limit:
        out.warnings.append(
            f"the refined motion's visible joints are {mean:.1f} cm (95th percentile {p95:.1f} cm) from where they were "
            f"observed, more than {limit:.1f} cm: unless the capture was marked noisy, the refinement did not follow "
            "this body or motion well; check the result, or keep the visible bones as captured")
    return out


def _scaled(r: Refined, factor: float) -> Refined:
    """A result with its lengths (trans, joints) times ``factor``: back from the reference size."""
    return replace(r, trans=r.trans * factor, joints=r.joints * factor)


def _assemble(windows, states, contacts, rest: np.ndarray, n: int, fps_out: float, fps_in: float,
              num_out: int | None = None) -> Refined:
    """Cross-fade window results over frames [0, n) and resample to ``fps_out``."""
    w = blend_weights(windows, max(e for _, e in windows))[:, :n]
    w = w / np.maximum(w.sum(0, keepdims=True), 1e-12)
    rot = np.zeros((n, NUM_JOINTS, 3, 3))
    trans = np.zeros((n, 3))
    cont = np.zeros((n, 9))
    for k, (s, e) in enumerate(windows):
        e2 = min(e, n)
        if e2 <= s:
            continue
        wk = w[k, s:e2]
        x = states[k][: e2 - s]
        rot[s:e2] += wk[:, None, None, None] * state_rotmats(x).numpy()
        trans[s:e2] += wk[:, None] * x[:, :3].numpy()
        cont[s:e2] += wk[:, None] * contacts[k][: e2 - s].numpy()
    aa = mat_to_aa(torch.from_numpy(_project_rotations(rot))).numpy()
    clip = Clip(trans=trans, root_orient=aa[:, 0], pose_body=aa[:, 1:].reshape(n, 63), fps=fps_in,
                rest_joints=rest, contacts=cont)
    if abs(fps_out - fps_in) > 1e-6:
        clip = resample_clip(clip, fps_out)
    if num_out is not None and clip.num_frames != num_out:  # same frames as the input
        idx = np.minimum(np.arange(num_out), clip.num_frames - 1)
        clip = replace(clip, trans=clip.trans[idx], root_orient=clip.root_orient[idx],
                       pose_body=clip.pose_body[idx], contacts=clip.contacts[idx])
    local = aa_to_mat(torch.from_numpy(clip.local_aa))
    joints = forward_kinematics(local, torch.from_numpy(rest), torch.from_numpy(clip.trans)).joints.numpy()
    return Refined(clip.trans, clip.root_orient, clip.pose_body, joints, np.clip(clip.contacts, 0, 1), fps_out)


def keep_visible_rotations(out: Refined, clip: Clip, visible: np.ndarray) -> Refined:
    """Put back the captured rotation of every joint in every frame where it is visible
    (and the captured root translation where the pelvis is); joints are recomputed by FK.
    ``RefineConfig.keep_visible`` does this inside ``refine``, before the final fit (so pins still hold)."""
    vis = np.asarray(visible, bool)
    aa = np.concatenate([out.root_orient[:, None], out.pose_body.reshape(-1, 21, 3)], axis=1)
    aa = np.where(vis[..., None], clip.local_aa, aa)
    trans = np.where(vis[:, :1], clip.trans, out.trans)
    joints = forward_kinematics(aa_to_mat(torch.from_numpy(aa)), torch.from_numpy(clip.rest_joints),
                                torch.from_numpy(trans)).joints.numpy()
    return replace(out, trans=trans, root_orient=aa[:, 0], pose_body=aa[:, 1:].reshape(-1, 63), joints=joints)
