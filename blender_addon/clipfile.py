"""The clip ``.npz`` file, read and written with NumPy alone (the add-on never imports ``dreamor``).

Keys as ``dreamor.data.clip`` (DESIGN.md, "Clip file format"): ``trans`` (T,3) m,
``root_orient`` (T,3) and ``pose_body`` (T,63) axis-angle, ``mocap_framerate``,
optional ``rest_joints`` (22,3), ``joints`` (T,22,3), ``contacts`` (T,9), ``visible``
(T,22) bool, ``betas``. Raw AMASS ``poses`` (T,>=66) is accepted in place of the pose keys.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .conventions import NUM_JOINTS


class ClipFileError(ValueError):
    """A clip file that cannot be read or written; the message says what is wrong."""


#: what Import Clip says of motion files it cannot read itself (the backend converts them)
CONVERT_HINT = "convert it to a clip first: dreamor convert IN.bvh OUT.npz (the backend's command line)"


def _check_npz_file(path: Path) -> None:
    """ClipFileError naming the problem when ``path`` is not a file holding a NumPy archive: missing, a folder,
    empty, a BVH (with how to convert it) or anything else."""
    if not path.exists():
        raise ClipFileError(f"{path}: no such file")
    if path.is_dir():
        raise ClipFileError(f"{path}: is a folder, not a clip file (.npz)")
    name = path.name.lower()
    if name.endswith((".bvh", ".bvh.gz")):
        raise ClipFileError(f"{path}: a BVH file; Import Clip reads clip files (.npz): {CONVERT_HINT}")
    with path.open("rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # every .npz is a zip archive
        why = "the file is empty" if not head else "not a NumPy .npz archive"
        raise ClipFileError(f"{path}: not a readable .npz clip ({why})")


def load_clip_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and check a clip ``.npz``: {'trans', 'root_orient', 'pose_body', 'fps', optional keys}.

    ``rest_joints`` is None when the file has none (the caller picks a default skeleton).
    """
    path = Path(path)
    _check_npz_file(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ClipFileError(f"{path}: not a readable .npz clip ({exc.__class__.__name__}: {exc})") from None
    if "root_orient" in data and "pose_body" in data:
        root_orient, pose_body = data["root_orient"], data["pose_body"][..., :63]
    elif "poses" in data and data["poses"].ndim == 2 and data["poses"].shape[1] >= 66:
        root_orient, pose_body = data["poses"][:, :3], data["poses"][:, 3:66]
    else:
        raise ClipFileError(
            f"{path}: missing pose keys; a clip needs 'root_orient' and 'pose_body' "
            f"(or AMASS 'poses' (T, >=66)); found {sorted(data)}"
        )
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate", "fps") if k in data), None)
    missing = [k for k, ok in (("trans", "trans" in data), ("mocap_framerate", fps_key is not None)) if not ok]
    if missing:
        raise ClipFileError(f"{path}: missing key(s) {missing}; found {sorted(data)}")
    given = {"trans": data["trans"], "root_orient": root_orient, "pose_body": pose_body, "fps": data[fps_key],
             **{k: data[k] for k in ("rest_joints", "contacts", "visible") if k in data}}
    out = {"rest_joints": None, "contacts": None, "visible": None}
    for key, arr in given.items():
        try:
            if key == "visible":
                out[key] = np.asarray(arr).astype(bool)
            elif key == "fps":
                out[key] = float(np.asarray(arr, np.float64).reshape(-1)[0])
            else:
                out[key] = np.asarray(arr, np.float64)
        except (ValueError, TypeError, IndexError):
            what = fps_key if key == "fps" else key
            raise ClipFileError(f"{path}: key '{what}' does not hold numbers ({np.asarray(arr).dtype}, "
                                f"shape {np.asarray(arr).shape})") from None
    t = len(out["trans"])
    shapes = {
        "trans": (t, 3), "root_orient": (t, 3), "pose_body": (t, 63),
        "rest_joints": (NUM_JOINTS, 3), "contacts": (t, 9), "visible": (t, NUM_JOINTS),
    }  # fmt: skip
    for key, shape in shapes.items():
        arr = out[key]
        if arr is None:
            continue
        if arr.shape != shape:
            raise ClipFileError(f"{path}: key '{key}' has shape {arr.shape}, expected {shape}")
        if arr.dtype != bool and not np.all(np.isfinite(arr)):
            raise ClipFileError(f"{path}: key '{key}' holds NaN or infinite values")
    if t < 1:
        raise ClipFileError(f"{path}: the clip has no frames")
    if not (np.isfinite(out["fps"]) and out["fps"] > 0):
        raise ClipFileError(f"{path}: invalid frame rate {out['fps']}")
    return out


def save_clip_arrays(path: str | os.PathLike, arrays: dict) -> Path:
    """Write clip arrays to ``path`` atomically (a temp file renamed into place); ClipFileError says why a path
    cannot be written (a folder, a file where a folder should be, no permission), naming the path asked for.

    ``arrays`` holds the clip keys; floats are stored as float32 like the backend's files,
    ``visible`` as bool, ``mocap_framerate`` as float64.
    """
    path = Path(path)
    out = {}
    for key, val in arrays.items():
        if val is None:
            continue
        if key == "visible":
            out[key] = np.asarray(val, bool)
        elif key == "mocap_framerate":
            out[key] = np.float64(val)
        else:
            out[key] = np.asarray(val, np.float32)
    if path.is_dir():
        raise ClipFileError(f"cannot export to {path}: it is a folder; give a file name ending in .npz")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ClipFileError(f"cannot export to {path}: {folder} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent, prefix=f".{path.stem}.")
    except OSError as exc:
        raise ClipFileError(f"cannot export to {path}: cannot write in {path.parent} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **out)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ClipFileError(f"cannot export to {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
