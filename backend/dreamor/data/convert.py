"""`dreamor convert`: BVH -> clip .npz (SMPL-22, 30 Hz, joints + contact labels),
clip/AMASS .npz -> clip .npz, clip .npz -> SMPL-22 BVH, and whole folders in parallel."""
from __future__ import annotations

import csv
import functools
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.skeleton import JOINT_NAMES, MODEL_FPS, PARENTS, Y_UP_TO_Z_UP, rest_offsets
from ..errors import DreamorError, InputFileError
from ..files import check_writable
from .bvh import read_bvh, write_bvh
from .clip import Clip, load_clip, save_clip
from .parallel import parallel_map
from .resample import resample_clip
from .retarget import retarget_bvh

BVH_SUFFIXES = (".bvh", ".bvh.gz")


def is_bvh(path: Path) -> bool:
    return path.name.lower().endswith(BVH_SUFFIXES)


def clip_stem(path: Path) -> str:
    name = path.name
    for suf in BVH_SUFFIXES + (".npz",):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return path.stem


def with_joints_and_contacts(clip: Clip) -> Clip:
    """Fill ``joints`` (FK) and ground-truth ``contacts`` (HuMoR labels) of a clip."""
    from ..body.state import clip_to_state, contact_labels

    _, joints = clip_to_state(clip)
    joints = joints.double().numpy()
    return replace(clip, joints=joints, contacts=contact_labels(joints, clip.fps))


@functools.lru_cache(maxsize=64)
def _manifest_rates(folder: str) -> dict[str, float]:
    """{file name: capture_fps} from a ``manifest.csv`` beside the files, where it has that column."""
    path = Path(folder) / "manifest.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    out = {}
    for row in rows:
        try:
            out[row["file"]] = float(row["capture_fps"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def capture_rate(path: Path) -> float | None:
    """The real capture rate of a BVH whose header is wrong, from its folder's ``manifest.csv``
    (``capture_fps``; the CMU salsa takes are 60 fps although their headers say 120), else None."""
    return _manifest_rates(str(path.resolve().parent)).get(path.name)


def _filled_frames(bvh):
    """(the BVH with every frame that holds a non-finite motion value replaced by the nearest whole frame, (T,)
    bool: those frames). A whole pose, not per-channel interpolation: Euler channels wrap at 180 degrees, and the
    retargeting calibrates on the take's mean pose. InputFileError when no frame is whole."""
    lost = ~np.isfinite(bvh.motion).all(1)
    if not lost.any():
        return bvh, lost
    if lost.all():
        raise InputFileError(f"{bvh.path}: every frame holds NaN or infinite values")
    good = np.flatnonzero(~lost)
    frames = np.arange(len(lost))
    after = good[np.minimum(np.searchsorted(good, frames), len(good) - 1)]  # the first whole frame at or after
    before = good[np.maximum(np.searchsorted(good, frames, side="right") - 1, 0)]  # the last at or before
    nearest = np.where(np.abs(frames - before) <= np.abs(after - frames), before, after)
    return replace(bvh, motion=bvh.motion[nearest]), lost


def read_motion(path: str | os.PathLike, fps: float | None = MODEL_FPS, allow_nonfinite: bool = False,
                notes: list[str] | None = None) -> Clip:
    """Any supported motion file (.bvh, .bvh.gz, .npz) -> Clip at ``fps`` (None: the file's own rate).

    A BVH's frame rate is its header's unless a ``manifest.csv`` beside it gives ``capture_fps``.
    allow_nonfinite: NaN/inf motion values are kept (``dreamor clean`` repairs them); resampling then
    needs ``fps=None``. ``notes`` gets a line for the user about what was read differently from the file
    (a T-pose frame left out, a floor levelled: ``retarget_bvh``)."""
    path = Path(path)
    if is_bvh(path):
        bvh, lost = _filled_frames(read_bvh(path, allow_nonfinite))
        clip = retarget_bvh(bvh, name=clip_stem(path), notes=notes)
        lost = lost[len(lost) - clip.num_frames :]  # some skeletons' files start with a T-pose frame, dropped
        if lost.any():  # retargeting needs numbers; the frames that had none come back unknown, whole
            clip = replace(clip, trans=np.where(lost[:, None], np.nan, clip.trans),
                           root_orient=np.where(lost[:, None], np.nan, clip.root_orient),
                           pose_body=np.where(lost[:, None], np.nan, clip.pose_body))
        rate = capture_rate(path)
        if rate is not None and rate > 0 and abs(rate - clip.fps) > 1e-3:
            clip = replace(clip, fps=rate)
        clip = clip.validate(allow_nonfinite)
    elif path.suffix.lower() == ".npz":
        clip = load_clip(path, allow_nonfinite)
    else:
        raise InputFileError(f"{path}: unsupported file type (expected .bvh, .bvh.gz or .npz)")
    if fps is not None:
        clip = resample_clip(clip, fps)
    return clip


def convert_to_clip(src: Path, dst: Path) -> Path:
    """One motion file -> a 30 Hz clip .npz with joints and contact labels."""
    clip = with_joints_and_contacts(read_motion(src))
    return save_clip(clip, dst)


def clip_to_bvh(src: Path, dst: Path) -> Path:
    """A clip .npz -> SMPL-22 BVH (Y-up, centimetres, ZYX Euler), at the clip's own rate."""
    return write_clip_bvh(load_clip(src), dst)


def write_clip_bvh(clip: Clip, dst: Path) -> Path:
    """A clip -> SMPL-22 BVH file (Y-up, centimetres, ZYX Euler), at the clip's own rate; written whole or not at all."""
    t = clip.num_frames
    local = Rotation.from_rotvec(clip.local_aa.reshape(-1, 3)).as_matrix().reshape(t, -1, 3, 3)
    local[:, 0] = Y_UP_TO_Z_UP.T @ local[:, 0]  # world Z-up -> BVH Y-up
    euler = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_euler("ZYX", degrees=True).reshape(t, -1, 3)
    pelvis = (clip.trans + clip.rest_joints[0]) @ Y_UP_TO_Z_UP  # row-vector form of R^T p
    offsets = rest_offsets(clip.rest_joints) * 100.0
    offsets[0] = 0.0
    end_sites = {15: np.array([0, 10.0, 0]), 20: np.array([8.0, 0, 0]), 21: np.array([-8.0, 0, 0]),
                 10: np.array([0, 0, 5.0]), 11: np.array([0, 0, 5.0])}
    return write_bvh(dst, list(JOINT_NAMES), list(PARENTS), offsets, pelvis * 100.0, euler, 1.0 / clip.fps,
                     order="ZYX", end_sites=end_sites)


def _convert_one(job: tuple[str, str]) -> tuple[str, str | None]:
    src, dst = job
    try:
        convert_to_clip(Path(src), Path(dst))
        return src, None
    except DreamorError as exc:
        return src, str(exc)


def find_motion_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_bvh(p))


def convert_folders(inputs: list[Path], out_dir: Path, workers: int = 0, quiet: bool = False) -> tuple[int, list[str]]:
    """Convert every BVH under ``inputs`` into ``out_dir`` (mirroring sub-folders).

    Returns (number converted, list of 'file: error' lines). Files that fail are skipped.
    """
    jobs = []
    for root in inputs:
        files = find_motion_files(root) if root.is_dir() else [root]
        for f in files:
            rel = f.relative_to(root).parent if root.is_dir() else Path()
            jobs.append((str(f), str(out_dir / root.name / rel / f"{clip_stem(f)}.npz") if len(inputs) > 1 and root.is_dir()
                         else str(out_dir / rel / f"{clip_stem(f)}.npz")))
    if not jobs:
        raise InputFileError(f"no .bvh or .bvh.gz files found in {', '.join(map(str, inputs))}")
    failures = [err for _, err in parallel_map(_convert_one, jobs, workers, desc="convert", quiet=quiet) if err]
    return len(jobs) - len(failures), failures


def run_convert(inputs: list[str], output: str, workers: int = 0, quiet: bool = False) -> int:
    """CLI entry. Returns the exit status."""
    ins = [Path(p) for p in inputs]
    out = Path(output)
    for p in ins:
        if not p.exists():
            raise InputFileError(f"{p}: no such file or folder")
    if len(ins) == 1 and ins[0].is_file():
        src = ins[0]
        if out.suffix.lower() in (".bvh", ".npz"):
            check_writable(out)
        if out.suffix.lower() == ".bvh":
            if src.suffix.lower() != ".npz":
                raise DreamorError("writing a BVH needs a clip .npz as input")
            clip_to_bvh(src, out)
        elif out.suffix.lower() == ".npz":
            convert_to_clip(src, out)
        else:
            raise DreamorError(f"{out}: output must end in .npz or .bvh (or be a folder for many inputs)")
        if not quiet:
            print(f"wrote {out}")
        return 0
    if out.suffix.lower() in (".npz", ".bvh"):
        raise DreamorError(f"{out}: several inputs or a folder need an output folder, not a file")
    check_writable(out, folder=True)
    done, failures = convert_folders(ins, out, workers=workers, quiet=quiet)
    for line in failures:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"converted {done} file(s) into {out}" + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0
