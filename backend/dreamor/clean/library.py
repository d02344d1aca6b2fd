"""Cleaning one take and finding the takes of a library: what `dreamor clean` runs on every worker.

A take is one motion file (.bvh, .bvh.gz, .npz) under a PATH given on the command line; its outputs are
``DIR/<name>.npz`` (the clip format: joints, contacts and the ``visible`` mask that was used),
``DIR/<name>.bvh`` (SMPL-22) and ``DIR/.dreamor-clean/<name>.json`` (its report row and the fingerprint of
input and settings), where ``<name>`` is the file's path below PATH without its suffix. The row is written
last: a take is done when it is there with the same fingerprint and both outputs exist, so an interrupted
run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..body.skeleton import parse_joints
from ..data.clip import save_clip
from ..data.convert import BVH_SUFFIXES, clip_stem, read_motion, with_joints_and_contacts, write_clip_bvh
from ..errors import DreamorError
from ..files import atomic_write
from ..refine.fades import runs
from .detect import DetectConfig, Faults, detect_faults, fill_nonfinite, nonfinite, world_joints

STATE_DIR = ".dreamor-clean"
#: a repair is in doubt where some joint may be this far off (metres), as the engine's ``uncertainty`` says.
DOUBT_M = 0.10
SUFFIXES = (*BVH_SUFFIXES, ".npz")
#: bump when the outputs of the same input and settings would change
FORMAT = 3  # 3: glitches found on fast limbs (session 17), a doubt for spline-filled joints (18)


@dataclass(frozen=True)
class Take:
    source: Path
    name: str  # posix path below the PATH it was found under, without suffix

    def outputs(self, out_dir: Path) -> tuple[Path, Path, Path]:
        """(clip .npz, SMPL-22 .bvh, state .json) under ``out_dir``."""
        return out_dir / f"{self.name}.npz", out_dir / f"{self.name}.bvh", out_dir / STATE_DIR / f"{self.name}.json"


@dataclass(frozen=True)
class CleanSettings:
    occlude: str = "auto"  # 'auto' (find the faults) or joints/groups hidden on every frame
    preset: str = "default"
    device: str = "cpu"
    settings: tuple[str, ...] = ()  # --set NAME=VALUE overrides of the refinement preset
    detect: DetectConfig = field(default_factory=DetectConfig)

    def refine_config(self):
        from ..refine.config import refine_preset

        return refine_preset(self.preset, self.settings, device=self.device)

    def check(self) -> None:
        """DreamorError for settings that cannot work (before any take is read)."""
        from ..refine.config import refine_preset

        if self.occlude != "auto":
            try:
                parse_joints(self.occlude)
            except ValueError as exc:
                raise DreamorError(f"--occlude: {exc}") from None
        try:
            refine_preset(self.preset, self.settings)
        except ValueError as exc:
            raise DreamorError(str(exc)) from None


def is_motion_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SUFFIXES)


def find_takes(paths: list[Path], out_dir: Path | None = None) -> list[Take]:
    """Every motion file under ``paths`` (files or folders, searched recursively; ``out_dir`` left out),
    sorted; DreamorError for a path that does not exist or two takes with the same output name."""
    takes: list[Take] = []
    for root in paths:
        if not root.exists():
            raise DreamorError(f"{root}: no such file or folder")
        if root.is_file():
            if not is_motion_file(root):
                raise DreamorError(f"{root}: not a motion file (expected .bvh, .bvh.gz or .npz)")
            takes.append(Take(root, clip_stem(root)))
            continue
        skip = out_dir.resolve() if out_dir is not None else None
        for path in sorted(root.rglob("*")):
            if not is_motion_file(path) or (skip is not None and skip in path.resolve().parents):
                continue
            rel = path.relative_to(root)
            takes.append(Take(path, (rel.parent / clip_stem(path)).as_posix()))
    seen: dict[str, Path] = {}
    for take in takes:
        if take.name in seen:
            raise DreamorError(f"{seen[take.name]} and {take.source} would both be written as {take.name}.npz; "
                               "rename one or clean them separately")
        seen[take.name] = take.source
    return takes


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def settings_key(settings: CleanSettings, models_dir: Path) -> dict:
    """What the outputs depend on besides the input: settings, detector thresholds, the model files."""
    models = {p.name: file_sha1(p)[:12] for p in sorted(models_dir.glob("*.pt"))} if models_dir.is_dir() else {}
    return {"format": FORMAT, "occlude": settings.occlude, "preset": settings.preset, "set": list(settings.settings),
            "detect": asdict(settings.detect), "models": models}


def fingerprint(take: Take, key: dict) -> str:
    return hashlib.sha1((file_sha1(take.source) + json.dumps(key, sort_keys=True)).encode()).hexdigest()


def finished_row(take: Take, out_dir: Path, print_: str) -> dict | None:
    """The take's report row from an earlier run if its outputs are there and up to date, else None."""
    npz, bvh, state = take.outputs(out_dir)
    if not (npz.is_file() and bvh.is_file() and state.is_file()):
        return None
    try:
        row = json.loads(state.read_text())
    except (OSError, ValueError):
        return None
    return row if row.get("fingerprint") == print_ and row.get("status") == "ok" else None


def visibility(clip, settings: CleanSettings) -> tuple[np.ndarray, Faults]:
    """The (T, 22) mask the refinement gets and what was found: every detector (``auto``), or the named
    joints hidden on every frame (plus any non-finite values, which cannot be refined as they are)."""
    if settings.occlude == "auto":
        faults = detect_faults(clip, settings.detect)
        return faults.visible, faults
    bad = nonfinite(clip)
    vis = ~bad
    vis[:, list(parse_joints(settings.occlude))] = False
    return vis, Faults(vis, {"nonfinite": bad}, world_joints(fill_nonfinite(clip, ~bad)))


def _quality(joints: np.ndarray, fps: float) -> dict[str, float | None]:
    from ..evaluate.metrics import plausibility

    return {k: m.value for k, m in plausibility(joints, fps).items()}


#: a held pose "meets" the capture after it when it jumps at most this (m) plus 3 x the joints' step just after:
#: a still dancer's legs held 1.3 s drift 2.1-2.6 cm by the release (the kept pose is bridged over it by
#: ``edge_ramp``); a lost walking leg's snap is 11-17 cm (the six faulty takes of docs/benchmarks/clean.md).
RELEASE_M = 0.03
#: ... and the limb moves slower than this (m/s, its joints' mean speed relative to the pelvis) over the 0.2 s
#: before the hold and after it: a walk's legs held for about one stride let go near where they were held.
STILL_MS = 0.3


def released_in_place(source, joints: np.ndarray, a: int, b: int) -> bool:
    """Was the limb ``joints`` held over frames a..b-1 of ``source`` (a clip with joints) really held still: slow
    (``STILL_MS``) over the 0.2 s before the hold and after it, and letting go where the capture goes on (the mean
    jump of its joints in the pelvis frame from frame b-1 to b at most ``RELEASE_M`` plus 3 steps after)? A
    solver holding a lost limb that moved snaps at the release. False when the hold touches either end."""
    t = source.num_frames
    k = max(2, round(0.2 * source.fps))
    if b >= t - 1 or a < 2:
        return False
    from scipy.spatial.transform import Rotation

    world = source.joints[:, joints] - source.joints[:, :1]  # in the pelvis frame: a turning body is not a moving limb
    rel = np.einsum("tji,tkj->tki", Rotation.from_rotvec(source.root_orient).as_matrix(), world)
    step = lambda x: np.linalg.norm(np.diff(x, axis=0), axis=-1).mean()  # noqa: E731  (m per frame)
    before, after = step(rel[max(0, a - k - 1) : a]), step(rel[b : min(t, b + k + 1)])
    jump = np.linalg.norm(rel[b] - rel[b - 1], axis=-1).mean()
    slow = max(before, after) * source.fps <= STILL_MS
    return bool(slow and jump <= RELEASE_M + 3.0 * after)


def keep_plausible_input(clean, source, frozen: np.ndarray, uncertainty: np.ndarray | None):
    """Where a limb was flagged frozen but its held pose is as plausible as the repair, put the input's rotations
    back there: a dancer holding a lifted leg still is not a fault, and then the capture is the better answer. The
    held pose is as plausible where it lies within the engine's own doubt of the repair (mean distance of the
    input's joints to the repair over the run <= the mean doubt there), or where the limb let go in place
    (``released_in_place``: no snap when the capture resumes). Over a kept run the root and every joint seen all
    through it take the input's rotations too: the held limb hangs from the captured pelvis, not from the repair's
    (whose turn the final fit may have moved by a degree while meeting the seen joints). clean, source: clips (the
    repair with its ``visible`` mask, the input with non-finite values filled), frozen (T, 22) -> (clip, [[start,
    end, joints kept]...]). The kept limb's steps into and out of the hold are spread over it (``edge_ramp``)."""
    from ..body.kinematics import forward_kinematics
    from ..body.rotations import aa_to_mat

    if uncertainty is None or not frozen.any():
        return clean, []
    aa, trans = clean.local_aa.copy(), clean.trans.copy()
    seen = ~frozen if clean.visible is None else clean.visible
    kept = []
    for a, b in runs(frozen.any(1)):
        joints = np.flatnonzero(frozen[a:b].any(0))
        off = np.linalg.norm(source.joints[a:b, joints] - clean.joints[a:b, joints], axis=-1).mean()
        if off <= uncertainty[a:b, joints].mean() or released_in_place(source, joints, a, b):
            restored = np.union1d(np.union1d(joints, np.flatnonzero(seen[a:b].all(0))), [0])
            aa[a:b, restored] = source.local_aa[a:b, restored]
            aa[a:b, joints] += edge_ramp(source.local_aa[:, joints], a, b)
            trans[a:b] = source.trans[a:b]
            kept.append([int(a), int(b), len(joints)])
    if not kept:
        return clean, []
    fk = forward_kinematics(aa_to_mat(torch_from(aa)), torch_from(clean.rest_joints), torch_from(trans)).joints.numpy()
    return clean.with_local_aa(aa, trans=trans, joints=fk), kept


def edge_ramp(values: np.ndarray, a: int, b: int) -> np.ndarray:
    """What spreads the jumps at the edges of a hold over it: values (T, ...) (a held limb's rotations), the hold
    a..b-1 -> (b - a, ...) to add to values[a:b] so that it starts from frame a-1 and ends at frame b, linearly (no
    snap when the capture resumes; a held pose stays held, the ramp is only the edges' small steps). An edge at
    the clip's start or end has no step."""
    w = (np.arange(1, b - a + 1) / (b - a + 1)).reshape(-1, *([1] * (values.ndim - 1)))
    into = values[a - 1] - values[a] if a > 0 else np.zeros_like(values[a])
    out = values[b] - values[b - 1] if b < len(values) else np.zeros_like(values[a])
    return (1 - w) * into + w * out


def torch_from(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, np.float64))


def doubt_runs(uncertainty: np.ndarray | None) -> dict:
    """The repair's doubt for the report: mean and largest (cm) where some joint was re-solved, and the frame runs
    where some joint may be more than DOUBT_M off."""
    if uncertainty is None or not (uncertainty > 0).any():
        return {}
    u = uncertainty
    return {"mean_cm": round(float(u[u > 0].mean() * 100), 2), "max_cm": round(float(u.max() * 100), 2),
            "runs": [[int(a), int(b)] for a, b in runs((u > DOUBT_M).any(1))]}


def clean_take(take: Take, out_dir: Path, settings: CleanSettings, models, print_: str) -> dict:
    """Read, find the faults, refine, write the outputs and the state row; returns the row. A take that
    cannot be cleaned (unreadable, too short, diverged) gives a row with ``status`` 'failed' and the reason;
    nothing of it is left in ``out_dir``."""
    from ..refine.api import refine

    t0 = time.perf_counter()
    row: dict = {"take": take.name, "source": str(take.source), "fingerprint": print_}
    npz, bvh, state = take.outputs(out_dir)
    try:
        clip = read_motion(take.source, fps=None, allow_nonfinite=True)
        row.update(frames=clip.num_frames, fps=clip.fps)
        vis, faults = visibility(clip, settings)
        row["detected"] = faults.counts()
        row["hidden_share"] = round(float((~vis).mean()), 5)
        filled = fill_nonfinite(clip, vis)
        if vis.all():  # nothing to repair: the take as it is, with joints and contact labels
            cleaned, warnings = replace(with_joints_and_contacts(filled), visible=vis), []
        else:
            result = refine(filled, vis, settings.refine_config(), models=models)
            cleaned, warnings = replace(result.to_clip(filled), visible=vis, name=clip.name), list(result.warnings)
            source = with_joints_and_contacts(fill_nonfinite(clip, ~nonfinite(clip)))  # as captured (held limbs too)
            cleaned, row["kept_input"] = keep_plausible_input(cleaned, source, faults.kinds.get("frozen", ~vis & False),
                                                              result.uncertainty)
            row["doubt"] = doubt_runs(result.uncertainty)
        if not (np.isfinite(cleaned.trans).all() and np.isfinite(cleaned.pose_body).all()):
            raise DreamorError("the refinement diverged (non-finite result)")
        row["quality"] = {"input": _quality(faults.joints, clip.fps), "output": _quality(cleaned.joints, cleaned.fps)}
        row["warnings"] = warnings
        row["fault_runs"] = {k: [[int(a), int(b)] for a, b in runs(m.any(1))] for k, m in faults.kinds.items()}
        save_clip(cleaned, npz)
        write_clip_bvh(cleaned, bvh)
        row.update(status="ok", seconds=round(time.perf_counter() - t0, 2))
        with atomic_write(state, "w", encoding="utf-8") as fh:
            json.dump(row, fh, indent=1)
        return row
    except DreamorError as exc:
        reason = str(exc)
    except Exception as exc:  # a bug must not stop the library; its traceback goes in the report
        reason = f"internal error: {exc.__class__.__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    for path in (npz, bvh, state):
        path.unlink(missing_ok=True)
    return {**row, "status": "failed", "reason": reason, "seconds": round(time.perf_counter() - t0, 2)}


# ----------------------------------------------------------------------------- one model copy per worker
_WORKER: dict = {}


def init_worker(device: str, threads: int, models_dir: str | None) -> None:
    """Per worker process: its share of the CPU threads and its own copy of the models."""
    import torch

    from ..refine.api import MODELS_DIR_ENV, load_models

    torch.set_num_threads(max(1, threads))
    if models_dir:
        os.environ[MODELS_DIR_ENV] = models_dir
    _WORKER["models"] = load_models(device=device)


def worker_clean(take: Take, out_dir: Path, settings: CleanSettings, print_: str) -> dict:
    """:func:`clean_take` with this worker's models (loaded by :func:`init_worker`)."""
    return clean_take(take, out_dir, settings, _WORKER["models"], print_)

