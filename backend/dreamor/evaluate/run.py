"""`dreamor eval`: methods on clean clips under an occlusion protocol -> pooled metrics + report.

Each motion file (.bvh, .bvh.gz, .npz; folders searched recursively) is read at 30 Hz, given
joints and HuMoR contact labels, and cut into consecutive clips of ``clip_frames`` (a file or
last piece shorter than that is kept when it has at least ``MIN_FRAMES``). Every clip is
occluded once (seeded per clip), every method sees that same observation, and metrics pool
over all points of all clips (see ``metrics``). Unreadable files are reported and skipped.

``bodies`` puts every clip on each of several bodies before it is occluded (``bodies.named_body``:
``native``, ``smpl``, ``xS``; the same local rotations, the root path scaled with leg length, back
on the floor): one report per body in ``DIR/<body>/`` and a summary across bodies in
``DIR/bodies.md`` / ``bodies.json``.
"""
from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..body.proportions import named_body, repose_clip
from ..body.skeleton import NUM_JOINTS
from ..data.clip import Clip
from ..data.convert import BVH_SUFFIXES, clip_stem, read_motion, with_joints_and_contacts
from ..errors import DreamorError, InputFileError
from ..refine.api import check_device
from ..refine.config import refine_preset
from . import metrics as M
from .baselines import Method, MethodConfig, get_methods
from .occlusion import PROTOCOLS, OcclusionConfig, occlude

MIN_FRAMES = 30
MOTION_SUFFIXES = BVH_SUFFIXES + (".npz",)


@dataclass
class EvalSettings:
    paths: list[str]
    out: str
    protocol: str = "lower_body"
    methods: list[str] = field(default_factory=lambda: ["input", "interp"])
    preset: str = "default"
    max_clips: int | None = None
    clips_per_file: int | None = None  # the first N clips of each file (a spread over many takes)
    clip_frames: int = 300
    seed: int = 0
    device: str = "cpu"
    noise_cm: float = 4.0
    denoise_steps: int | None = None  # DREAMoR's K (None: the preset's)
    pin_every: int | None = None  # --pin-every N: a full-body pose key (pins) every N frames, from frame 0
    samples: int = 1  # --samples N: completions per clip of the engine's methods (best-of-N, spread)
    settings: list[str] = field(default_factory=list)  # --set NAME=VALUE refinement overrides
    bodies: list[str] = field(default_factory=lambda: ["native"])  # --bodies: each clip on each of these
    body: str = "native"  # the body of this run (one of ``bodies``)
    plots: bool = True
    quiet: bool = False

    def command(self) -> str:
        parts = ["dreamor", "eval", *self.paths, "--protocol", self.protocol, "--methods", ",".join(self.methods),
                 "--preset", self.preset, "--clip-frames", str(self.clip_frames), "--seed", str(self.seed),
                 "--device", self.device]
        if self.max_clips is not None:
            parts += ["--max-clips", str(self.max_clips)]
        if self.clips_per_file is not None:
            parts += ["--clips-per-file", str(self.clips_per_file)]
        if self.protocol == "noisy":
            parts += ["--noise-cm", f"{self.noise_cm:g}"]
        if self.denoise_steps is not None:
            parts += ["--denoise-steps", str(self.denoise_steps)]
        if self.pin_every is not None:
            parts += ["--pin-every", str(self.pin_every)]
        if self.samples != 1:
            parts += ["--samples", str(self.samples)]
        for item in self.settings:
            parts += ["--set", item]
        if self.bodies != ["native"]:
            parts += ["--bodies", ",".join(self.bodies)]
        return " ".join(shlex.quote(p) for p in parts + ["--out", self.out])


@dataclass
class Showcase:
    """One clip's full arrays, for the time and contact plots."""

    name: str
    gt_joints: np.ndarray  # (T, 22, 3)
    gt_contacts: np.ndarray  # (T, 9)
    visible: np.ndarray  # (T, 22)
    pred_joints: dict[str, np.ndarray] = field(default_factory=dict)
    pred_contacts: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class EvalResult:
    settings: EvalSettings
    device: str
    clip_names: list[str] = field(default_factory=list)
    frames: int = 0
    files: int = 0
    skipped: list[str] = field(default_factory=list)
    methods: dict[str, dict[str, M.Mean]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    per_joint_total_cm: dict[str, np.ndarray] = field(default_factory=dict)  # (22,) error summed over frames
    ground_truth: dict[str, M.Mean] = field(default_factory=dict)
    per_clip: list[dict] = field(default_factory=list)
    showcase: Showcase | None = None
    occluded_fraction: M.Mean = field(default_factory=M.Mean)


def is_motion_file(path: Path) -> bool:
    return path.name.lower().endswith(MOTION_SUFFIXES)


def find_eval_files(paths: list[str | Path]) -> list[Path]:
    """Files given directly, plus every motion file under the folders given (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_motion_file(f))
            if not found:
                raise InputFileError(f"{p}: no .bvh, .bvh.gz or .npz files in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputFileError(f"{p}: no such file or folder")
    return files


def cut_clip(clip: Clip, clip_frames: int, min_frames: int = MIN_FRAMES) -> list[Clip]:
    """Consecutive clips of ``clip_frames``; a shorter last piece is kept if >= ``min_frames``."""
    out = []
    for a in range(0, clip.num_frames, clip_frames):
        b = min(a + clip_frames, clip.num_frames)
        if b - a < min(min_frames, clip_frames):
            continue
        sl = lambda x: None if x is None else x[a:b].copy()  # noqa: E731
        out.append(replace(clip, trans=sl(clip.trans), root_orient=sl(clip.root_orient), pose_body=sl(clip.pose_body),
                           joints=sl(clip.joints), contacts=sl(clip.contacts), visible=None,
                           name=f"{clip.name}@{a}" if clip.num_frames > clip_frames else clip.name))
    return out


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda[:i]' -> a description for the report; DreamorError if CUDA is asked for but absent."""
    check_device(device)
    if device == "cpu":
        return "cpu"
    import torch

    return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"


def _clips(files: list[Path], settings: EvalSettings, result: EvalResult, bar: tqdm) -> Iterator[Clip]:
    for f in files:
        try:
            clip = with_joints_and_contacts(read_motion(f))
        except DreamorError as exc:
            result.skipped.append(str(exc) if str(f) in str(exc) else f"{f}: {exc}")
            bar.write(f"skipped: {result.skipped[-1]}", file=sys.stderr)
            bar.update()
            continue
        clip = replace(clip, name=clip_stem(f))
        if settings.body != "native":
            clip = repose_clip(clip, named_body(settings.body, clip.rest_joints))
        result.files += 1
        yield from cut_clip(clip, settings.clip_frames)[: settings.clips_per_file]
        bar.update()


def _vertices(body, clip: Clip) -> np.ndarray:
    import torch

    t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    betas = None if clip.betas is None else t(clip.betas)
    with torch.no_grad():
        return body(t(clip.root_orient), t(clip.pose_body), t(clip.trans), betas).vertices.double().numpy()


def _smpl_body(methods: list[Method]):
    """A real SMPL body when DREAMOR_SMPL_DIR is set and a method produces poses; else None."""
    from ..body.smpl import SMPLBody, find_model_path

    path = find_model_path()
    return SMPLBody(path) if path is not None and any(m.produces_pose for m in methods) else None


def evaluate(settings: EvalSettings) -> EvalResult:
    """Run every method on every clip; pool the metrics."""
    if settings.protocol not in PROTOCOLS:
        raise DreamorError(f"unknown protocol '{settings.protocol}'; use one of {', '.join(PROTOCOLS)}")
    if settings.clip_frames < 3:
        raise DreamorError(f"--clip-frames {settings.clip_frames} is too short; use at least 3 (default 300)")
    if settings.max_clips is not None and settings.max_clips < 1:
        raise DreamorError(f"--max-clips {settings.max_clips}: give at least 1 (or leave it out for every clip)")
    if settings.pin_every is not None and settings.pin_every < 1:
        raise DreamorError(f"--pin-every {settings.pin_every}: give at least 1 (a pose key every N frames)")
    if not 1 <= settings.samples <= 16:
        raise DreamorError(f"--samples {settings.samples}: choose 1 to 16 completions per clip")
    if settings.clips_per_file is not None and settings.clips_per_file < 1:
        raise DreamorError(f"--clips-per-file {settings.clips_per_file}: give at least 1 (or leave it out for every clip)")
    try:
        refine_preset(settings.preset, settings.settings,
                      **({} if settings.denoise_steps is None else {"denoise_steps": settings.denoise_steps}))
        named_body(settings.body, np.ones((NUM_JOINTS, 3)))
    except ValueError as exc:
        raise DreamorError(str(exc)) from None
    methods = get_methods(settings.methods)
    result = EvalResult(settings, resolve_device(settings.device))
    files = find_eval_files(settings.paths)
    occ_cfg = OcclusionConfig(noise_sigma_m=settings.noise_cm / 100.0)
    # the noisy protocol's observation is marked noisy, as a user marks such a capture (`dreamor refine --noisy`)
    marks = ("noisy=true",) if settings.protocol == "noisy" else ()
    cfg = MethodConfig(preset=settings.preset, device=settings.device, seed=settings.seed,
                       denoise_steps=settings.denoise_steps, settings=marks + tuple(settings.settings),
                       samples=settings.samples)
    body = _smpl_body(methods)
    for m in methods:
        result.methods[m.name] = {k: M.Mean() for k in M.METRIC_COLUMNS}
        result.seconds[m.name] = 0.0
        result.per_joint_total_cm[m.name] = np.zeros(NUM_JOINTS)
    result.ground_truth = {k: M.Mean() for k in M.PLAUSIBILITY}

    bar = tqdm(total=len(files), desc=f"eval {settings.protocol}", unit="file", disable=settings.quiet, file=sys.stderr)
    try:
        for gt in _clips(files, settings, result, bar):
            _evaluate_clip(gt, methods, cfg, occ_cfg, body, result)
            bar.set_postfix(clips=len(result.clip_names))
            if settings.max_clips is not None and len(result.clip_names) >= settings.max_clips:
                break
    finally:
        bar.close()
    if not result.clip_names:
        if result.files == 0:
            raise InputFileError(f"none of the {len(files)} motion file(s) could be read")
        raise InputFileError(f"no clip of at least {MIN_FRAMES} frames in the {result.files} file(s) read")
    return result


def _evaluate_clip(gt: Clip, methods: list[Method], cfg: MethodConfig, occ_cfg: OcclusionConfig, body,
                   result: EvalResult) -> None:
    s = result.settings
    observed = occlude(gt, s.protocol, s.seed, occ_cfg)
    if s.pin_every:  # the animator's pose keys: every joint pinned where the clean clip has it
        pinned = np.zeros_like(observed.visible)
        pinned[:: s.pin_every] = True
        observed = replace(observed, joints=np.where(pinned[..., None], gt.joints, observed.joints), pinned=pinned)
    result.clip_names.append(gt.name)
    result.frames += gt.num_frames
    result.occluded_fraction += M.Mean.of(~observed.visible)
    for k, v in M.plausibility(gt.joints, gt.fps).items():
        result.ground_truth[k] += v
    gt_verts = _vertices(body, gt) if body is not None else None
    show = result.showcase is None or gt.num_frames > len(result.showcase.gt_joints)
    if show:
        result.showcase = Showcase(gt.name, gt.joints, gt.contacts, observed.visible)
    for m in methods:
        obs = replace(observed, joints=observed.joints.copy(), visible=observed.visible.copy())
        start = time.perf_counter()
        pred = m.run(obs, cfg)
        seconds = time.perf_counter() - start
        if pred.joints is None or pred.joints.shape != gt.joints.shape or not np.isfinite(pred.joints).all():
            raise RuntimeError(f"method {m.name} on clip {gt.name}: joints must be finite with shape {gt.joints.shape}, got "
                               f"{None if pred.joints is None else pred.joints.shape}")
        verts = _vertices(body, pred) if gt_verts is not None and m.produces_pose else None
        clip_m = M.clip_metrics(pred.joints, gt.joints, observed.visible, gt.fps, pred.contacts, gt.contacts,
                                verts, gt_verts if verts is not None else None, observed.pinned, pred.samples,
                                pred.uncertainty)
        pooled = result.methods[m.name]
        for k, v in clip_m.items():
            pooled[k] += v
        result.per_joint_total_cm[m.name] += M.joint_errors_cm(pred.joints, gt.joints).sum(axis=0)
        result.seconds[m.name] += seconds
        result.per_clip.append({"clip": gt.name, "method": m.name, "frames": gt.num_frames,
                                **M.values(clip_m), "seconds": seconds})
        if show:
            result.showcase.pred_joints[m.name] = pred.joints
            result.showcase.pred_contacts[m.name] = pred.contacts


def run_eval(settings: EvalSettings) -> int:
    """CLI entry: evaluate and write the report(s). Exit status 1 when some files were skipped."""
    from .report import write_bodies_summary, write_report

    for b in settings.bodies:
        try:
            named_body(b, np.ones((NUM_JOINTS, 3)))
        except ValueError as exc:
            raise DreamorError(f"--bodies: {exc}") from None
    if len(settings.bodies) != len(set(settings.bodies)):
        raise DreamorError(f"--bodies {','.join(settings.bodies)}: a body is listed twice")
    if len(settings.bodies) == 1:
        runs = [replace(settings, body=settings.bodies[0])]
    else:
        runs = [replace(settings, body=b, out=str(Path(settings.out) / b)) for b in settings.bodies]
    results, skipped = [], 0
    for run in runs:
        result = evaluate(run)
        paths = write_report(result, Path(run.out))
        results.append(result)
        skipped = max(skipped, len(result.skipped))
        print(f"evaluated {len(result.clip_names)} clip(s) from {result.files} file(s) with "
              f"{', '.join(settings.methods)}" + (f" on body '{run.body}'" if len(runs) > 1 else "")
              + f"; wrote {', '.join(str(p) for p in paths)}"
              + (f"; skipped {len(result.skipped)} unreadable file(s)" if result.skipped else ""))
    if len(runs) > 1:
        paths = write_bodies_summary(results, Path(settings.out), settings.command())
        print(f"wrote {', '.join(str(p) for p in paths)}")
    return 1 if skipped else 0
