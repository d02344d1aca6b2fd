"""BVH files: parse (hierarchy + motion), forward kinematics in the file's own frame, write.

End Sites become joints of their own, named ``<parent>_end``, so their positions are
available to joint maps (the CMU Daz skeleton has no toe joint, only a toe-tip End Site).
Rotation channels may come in any order, per joint; they are applied intrinsically in the
listed order (R = R_first · R_second · R_third). Position channels replace the OFFSET.
"""
from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import InputFileError
from ..files import atomic_write

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BVH:
    """A parsed BVH. J joints (End Sites included), T frames, C channels."""

    names: list[str]
    parents: np.ndarray  # (J,) int, -1 for the root
    offsets: np.ndarray  # (J, 3) in file units
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation", "Xrotation", "Yrotation"]
    frame_time: float  # seconds
    motion: np.ndarray  # (T, C) float64, file units and degrees
    path: str = ""

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    def index(self, name: str) -> int:
        return self.names.index(name)


def read_text(path: Path) -> str:
    """The file's text; `.gz` files are decompressed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputFileError(f"{path}: corrupt gzip data ({exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            raise InputFileError(f"{path}: not a text file") from None


def parse_bvh(text: str, source: str = "<string>", allow_nonfinite: bool = False) -> BVH:
    """Parse BVH text. Raises InputFileError with the file name and what is wrong. allow_nonfinite: NaN / inf
    motion values are kept (``dreamor clean`` finds and repairs them)."""
    if not text.strip():
        raise InputFileError(f"{source}: the file is empty")
    head, sep, motion_text = text.partition("MOTION")
    tokens = head.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise InputFileError(f"{source}: not a BVH file (it does not start with HIERARCHY)")
    if not sep:
        raise InputFileError(f"{source}: truncated BVH (no MOTION section)")

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    pending: int | None = None
    i = 1
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                name = tokens[i + 1]
                i += 2
                pending = len(names)
                names.append(name)
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
            elif tok == "End":  # "End Site"
                i += 2
                parent = stack[-1]
                pending = len(names)
                names.append(f"{names[parent]}_end")
                parents.append(parent)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
            elif tok == "{":
                if pending is None:
                    raise InputFileError(f"{source}: malformed HIERARCHY (unexpected '{{')")
                stack.append(pending)
                pending = None
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels[stack[-1]] = tokens[i + 2 : i + 2 + n]
                i += 2 + n
            else:
                raise InputFileError(f"{source}: malformed HIERARCHY (unexpected token '{tok[:40]}')")
    except (IndexError, ValueError):
        raise InputFileError(f"{source}: malformed or truncated HIERARCHY") from None
    if stack or not names:
        raise InputFileError(f"{source}: truncated HIERARCHY (unbalanced braces)")
    for chans in channels:
        for c in chans:
            if len(c) != 9 or c[0] not in _AXES or c[1:] not in ("position", "rotation"):
                raise InputFileError(f"{source}: unknown channel '{c}'")

    lines = motion_text.split("\n", 3)
    try:
        frames = int(lines[1].split(":")[1])
        frame_time = float(lines[2].split(":")[1])
    except (IndexError, ValueError):
        raise InputFileError(f"{source}: truncated or malformed MOTION header (Frames / Frame Time)") from None
    num_channels = sum(len(c) for c in channels)
    if frames <= 0:
        raise InputFileError(f"{source}: the BVH has no frames")
    if not frame_time > 0:
        raise InputFileError(f"{source}: invalid Frame Time {frame_time}")
    body = lines[3] if len(lines) > 3 else ""
    try:
        with warnings.catch_warnings():  # numpy stops at a word among the numbers: with a warning, later an error
            warnings.simplefilter("error", DeprecationWarning)
            values = np.fromstring(body, dtype=np.float64, sep=" ") if body.strip() else np.zeros(0)
    except (DeprecationWarning, ValueError):  # a word: fine after the declared frames (an exporter's "END"), else named
        values = _numbers_before_word(body, frames * num_channels, source,
                                      text.count("\n", 0, len(text) - len(body)) + 1)
    expected = frames * num_channels
    if values.size < expected:
        raise InputFileError(
            f"{source}: truncated BVH: {values.size} motion values for {frames} frames x "
            f"{num_channels} channels (expected {expected})"
        )
    if values.size > expected:
        # More data than declared: trust the data lines if they form whole frames.
        if values.size % num_channels:
            raise InputFileError(f"{source}: motion data does not match the channel count {num_channels}")
        frames = values.size // num_channels
    motion = values.reshape(frames, num_channels)
    if not allow_nonfinite and not np.all(np.isfinite(motion)):
        raise InputFileError(f"{source}: the motion data holds NaN or infinite values")
    return BVH(names, np.asarray(parents), np.asarray(offsets, np.float64), channels, frame_time, motion, source)


def _numbers_before_word(body: str, expected: int, source: str, first_line: int) -> np.ndarray:
    """The motion values before the first token that is not a number; InputFileError naming that token and its
    line (``first_line``: the file's line number of the body's first line) if fewer than ``expected`` come first."""
    values: list[float] = []
    for n, line in enumerate(body.split("\n")):
        for tok in line.split():
            try:
                values.append(float(tok))
            except ValueError:
                if len(values) < expected:
                    raise InputFileError(f"{source}: line {first_line + n}: '{tok[:40]}' is not a number") from None
                return np.asarray(values, np.float64)
    return np.asarray(values, np.float64)


def read_bvh(path: str | os.PathLike, allow_nonfinite: bool = False) -> BVH:
    """Read a `.bvh` or `.bvh.gz` file (see :func:`parse_bvh`)."""
    path = Path(path)
    return parse_bvh(read_text(path), str(path), allow_nonfinite)


def bvh_fk(bvh: BVH) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics in the file's frame and units.

    Returns positions (T, J, 3) and global rotation matrices (T, J, 3, 3).
    """
    t = bvh.num_frames
    j_count = len(bvh.names)
    local_pos = np.broadcast_to(bvh.offsets, (t, j_count, 3)).copy()
    local_rot = np.broadcast_to(np.eye(3), (t, j_count, 3, 3)).copy()
    col = 0
    for j, chans in enumerate(bvh.channels):
        rot_axes = ""
        rot_cols = []
        for c in chans:
            if c[1:] == "position":
                local_pos[:, j, _AXES[c[0]]] = bvh.motion[:, col]
            else:
                rot_axes += c[0]
                rot_cols.append(col)
            col += 1
        if rot_axes:
            # Upper-case axes = intrinsic rotations in the listed order: R = R_a · R_b · R_c.
            local_rot[:, j] = Rotation.from_euler(rot_axes, bvh.motion[:, rot_cols], degrees=True).as_matrix()
    pos = np.empty((t, j_count, 3))
    rot = np.empty((t, j_count, 3, 3))
    for j in range(j_count):
        p = bvh.parents[j]
        if p < 0:
            pos[:, j] = local_pos[:, j]
            rot[:, j] = local_rot[:, j]
        else:
            pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], local_pos[:, j])
            rot[:, j] = rot[:, p] @ local_rot[:, j]
    return pos, rot


def write_bvh(
    path: str | os.PathLike,
    names: list[str],
    parents: list[int],
    offsets: np.ndarray,
    root_pos: np.ndarray,
    local_euler_deg: np.ndarray,
    frame_time: float,
    order: str = "ZYX",
    end_sites: dict[int, np.ndarray] | None = None,
) -> Path:
    """Write a BVH atomically. Joints must be in parent-before-child order.

    offsets: (J, 3); root_pos: (T, 3); local_euler_deg: (T, J, 3) angles for the axes in
    ``order`` (intrinsic); end_sites: joint index -> (3,) End Site offset for leaves.
    """
    end_sites = end_sites or {}
    children = {j: [c for c in range(len(names)) if parents[c] == j] for j in range(len(names))}
    rot_ch = " ".join(f"{a}rotation" for a in order)
    out: list[str] = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if parents[j] < 0 else "JOINT"
        out.append(f"{pad}{kind} {names[j]}")
        out.append(f"{pad}{{")
        out.append(f"{pad}\tOFFSET {offsets[j][0]:.6f} {offsets[j][1]:.6f} {offsets[j][2]:.6f}")
        pos_ch = "Xposition Yposition Zposition " if parents[j] < 0 else ""
        out.append(f"{pad}\tCHANNELS {6 if parents[j] < 0 else 3} {pos_ch}{rot_ch}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            e = end_sites.get(j, np.zeros(3))
            out.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}", f"{pad}\t}}"])
        out.append(f"{pad}}}")

    emit(0, 0)
    t = root_pos.shape[0]
    out += ["MOTION", f"Frames: {t}", f"Frame Time: {frame_time:.7f}"]
    order_idx = [j for j in _dfs(children, 0)]
    frame_vals = np.concatenate([root_pos, local_euler_deg[:, order_idx].reshape(t, -1)], axis=1)
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in frame_vals)
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n" + body + "\n")
    return path


def _dfs(children: dict[int, list[int]], j: int):
    yield j
    for c in children[j]:
        yield from _dfs(children, c)
