"""Training data: real mocap -> DREAMoR states, a take/style-disjoint split, normalisation
statistics and windows for training. Built once, cached as one `.npz`.

Two validation splits, neither trained on:
- ``val`` (the default split; holds out whole takes *and* whole styles, Bandai has no actor ids):
  Bandai: every take of the styles in ``VAL_STYLES``, plus the last take of each (dataset, content,
  style) group of dataset-2; CMU / other: every fifth take (by sorted name);
- ``unseen`` (generalisation): every take of the CMU subjects in ``UNSEEN_SUBJECTS``, whole
  subjects of varied content (everyday motion with stairs, jumps and sitting; modern dance;
  basketball; walks), so no take of those performers is ever trained on.
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..body.skeleton import MODEL_FPS
from ..errors import DreamorError, InputFileError
from ..files import atomic_write
from .convert import clip_stem, find_motion_files, read_motion
from .parallel import parallel_map

CACHE_VERSION = 3
#: Bandai styles held out entirely for validation (one per dataset).
VAL_STYLES = {("dataset-1", "old"), ("dataset-2", "elderly")}
#: CMU subjects held out entirely (the ``unseen`` split): 14 (stairs, ladder, jumps, sitting, everyday),
#: 05 (modern dance and a walk), 06 (basketball and a walk), 08 (walks).
UNSEEN_SUBJECTS = {"05", "06", "08", "14"}
SPLITS = ("train", "val", "unseen")


@dataclass
class MotionData:
    """All clips' states, concatenated along time (N frames in total, C clips)."""

    states: np.ndarray  # (N, 273) float32, see dreamor.body.state
    contacts: np.ndarray  # (N, 9) float32 {0, 1} labels
    clip_starts: np.ndarray  # (C + 1,) int64, clip c = rows clip_starts[c]:clip_starts[c+1]
    rest_joints: np.ndarray  # (C, 22, 3) float32
    names: np.ndarray  # (C,) str
    is_val: np.ndarray  # (C,) bool: the default validation split
    weights: np.ndarray  # (C,) float32 sampling weight per frame of the clip
    is_unseen: np.ndarray  # (C,) bool: the unseen-subject split

    @property
    def is_train(self) -> np.ndarray:
        """(C,) bool: the clips training may use (in neither validation split)."""
        return ~self.is_val & ~self.is_unseen

    def split_mask(self, split: str) -> np.ndarray:
        """(C,) bool for 'train', 'val' or 'unseen'."""
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        return {"train": self.is_train, "val": self.is_val, "unseen": self.is_unseen}[split]

    @property
    def num_clips(self) -> int:
        return len(self.names)

    def clip(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.clip_starts[c], self.clip_starts[c + 1]
        return self.states[s:e], self.contacts[s:e]

    def save(self, path: Path) -> None:
        with atomic_write(path) as fh:
            np.savez(fh, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: Path) -> "MotionData":
        with np.load(path, allow_pickle=False) as f:
            return cls(**{k: f[k] for k in cls.__dataclass_fields__})


def is_validation(name: str) -> bool:
    """Whether a take (file stem) belongs to the validation split."""
    parts = name.split("_")
    if name.startswith("dataset-") and len(parts) == 4:
        dataset, _content, style, _take = parts
        return (dataset, style) in VAL_STYLES
    return False


def is_unseen_subject(name: str) -> bool:
    """Whether a take (file stem, e.g. ``cmu_14_07``) belongs to the unseen-subject split."""
    parts = name.split("_")
    return len(parts) >= 3 and parts[0] == "cmu" and parts[1] in UNSEEN_SUBJECTS


def _last_takes(names: list[str], sources: list[int] | None = None) -> set[str]:
    """Last take of each (dataset-2, content, style) group; every fifth other (CMU) take of each source
    folder (by sorted name within the folder, so adding a folder leaves the others' split as it was;
    takes of the unseen subjects count in that order but go to the unseen split)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    others: dict[int, list[str]] = {}
    for n, src in zip(names, sources or [0] * len(names)):
        parts = n.split("_")
        if n.startswith("dataset-2_") and len(parts) == 4:
            groups.setdefault(tuple(parts[:3]), []).append(n)
        elif not n.startswith("dataset-"):
            others.setdefault(src, []).append(n)
    held = {sorted(v)[-1] for v in groups.values() if len(v) > 1}
    for v in others.values():
        held.update(sorted(v)[4::5])
    return held


def _load_one(job: tuple[str, float, int]) -> dict | str:
    path, weight, source = job
    from ..body.state import clip_to_state, contact_labels

    try:
        clip = read_motion(path)
    except DreamorError as exc:
        return str(exc)
    if clip.num_frames < 2:
        return f"{path}: too short ({clip.num_frames} frame)"
    x, joints = clip_to_state(clip)
    return {
        "name": clip_stem(Path(path)),
        "states": x.numpy(),
        "contacts": contact_labels(joints.numpy(), clip.fps),
        "rest": clip.rest_joints.astype(np.float32),
        "weight": weight,
        "source": source,
    }


def _fingerprint(jobs: list[tuple[str, float, int]]) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}".encode())
    for path, w, _ in jobs:
        st = os.stat(path)
        h.update(f"{path}|{st.st_size}|{int(st.st_mtime)}|{w}".encode())
    return h.hexdigest()[:16]


def build_motion_data(
    sources: list[tuple[str | Path, float]], cache_dir: str | Path, workers: int = 0, quiet: bool = False
) -> MotionData:
    """Convert every BVH/npz under each (folder or file, sampling weight) into MotionData.

    The result is cached in ``cache_dir`` under a fingerprint of the inputs, so a second
    call with the same files loads in about a second.
    """
    jobs: list[tuple[str, float, int]] = []
    for k, (src, weight) in enumerate(sources):
        src = Path(src)
        if src.is_dir():
            files = find_motion_files(src) + sorted(src.rglob("*.npz"))
        elif src.exists():
            files = [src]
        else:
            raise InputFileError(f"{src}: no such file or folder")
        jobs += [(str(f), float(weight), k) for f in files]
    if not jobs:
        raise InputFileError("no motion files found in " + ", ".join(str(s) for s, _ in sources))
    cache = Path(cache_dir) / f"motion_data_{_fingerprint(jobs)}.npz"
    if cache.exists():
        return MotionData.load(cache)

    items, failures = [], []
    for res in parallel_map(_load_one, jobs, workers, desc="load mocap", quiet=quiet, unit="take"):
        (failures.append(res) if isinstance(res, str) else items.append(res))
    for f in failures:
        print(f"skipped: {f}", file=sys.stderr)
    if not items:
        raise InputFileError("none of the motion files could be read")
    names = [it["name"] for it in items]
    held = _last_takes(names, [it["source"] for it in items])
    lengths = np.array([len(it["states"]) for it in items])
    data = MotionData(
        states=np.concatenate([it["states"] for it in items]).astype(np.float32),
        contacts=np.concatenate([it["contacts"] for it in items]).astype(np.float32),
        clip_starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        rest_joints=np.stack([it["rest"] for it in items]),
        names=np.array(names),
        is_val=np.array([(is_validation(n) or n in held) and not is_unseen_subject(n) for n in names]),
        weights=np.array([it["weight"] for it in items], np.float32),
        is_unseen=np.array([is_unseen_subject(n) for n in names]),
    )
    data.save(cache)
    return data


@dataclass
class NormStats:
    """Per-dimension mean/std of states and of one-step deltas x_t - x_{t-1} (train split)."""

    state_mean: np.ndarray  # (273,)
    state_std: np.ndarray
    delta_mean: np.ndarray
    delta_std: np.ndarray


def norm_stats(data: MotionData, min_std: float = 1e-3) -> NormStats:
    xs, ds = [], []
    for c in np.flatnonzero(data.is_train):
        x, _ = data.clip(c)
        xs.append(x)
        ds.append(np.diff(x, axis=0))
    x = np.concatenate(xs)
    d = np.concatenate(ds)
    return NormStats(x.mean(0), np.maximum(x.std(0), min_std), d.mean(0), np.maximum(d.std(0), min_std))


class WindowSampler:
    """Random training windows of ``length`` consecutive frames from one split.

    Windows are drawn with probability proportional to each clip's weight (so the rare
    motions of CMU `extra/` can be weighted up) times its number of windows. With ``augment``,
    every sampled window is put on a random body (``bodies.random_body``; states, velocities and
    contact labels re-derived), sized to the reference leg length as every network sees bodies, after
    mirroring a share ``augment.p_mirror`` of them left/right (``bodies.mirror_states``).
    """

    def __init__(self, data: MotionData, length: int, validation: bool = False, seed: int = 0,
                 split: str | None = None, augment=None):
        self.data = data
        self.length = length
        self.augment = augment
        span = length + (1 if augment is not None else 0)  # one frame more: exact velocities at frame 0
        self._span = span
        starts, probs, clips = [], [], []
        for c in np.flatnonzero(data.split_mask(split or ("val" if validation else "train"))):
            s, e = data.clip_starts[c], data.clip_starts[c + 1]
            n = e - s - span + 1
            if n <= 0:
                continue
            starts.append(np.arange(s, s + n))
            clips.append(np.full(n, c))
            probs.append(np.full(n, data.weights[c]))
        if not starts:
            raise DreamorError(f"no clip is long enough for windows of {length} frames")
        self.starts = np.concatenate(starts)
        self.clips = np.concatenate(clips)
        p = np.concatenate(probs).astype(np.float64)
        self.probs = p / p.sum()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.starts)

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> states (B, L, 273), contacts (B, L, 9), rest_joints (B, 22, 3)."""
        pick = self.rng.choice(len(self.starts), size=batch, p=self.probs)
        return self.take(pick)

    def take(self, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rest = self.data.rest_joints[self.clips[pick]]
        if self.augment is None:
            return (*self._rows(pick), rest)
        import torch

        from ..body.proportions import mirror_states, random_body, repose_states

        states, contacts = self._retimed_rows(pick)
        states, rest = torch.from_numpy(states), torch.from_numpy(rest).double()
        flip = torch.from_numpy(self.rng.random(len(pick)) < self.augment.p_mirror)
        if flip.any():
            m_states, _, m_rest = mirror_states(states[flip], torch.from_numpy(contacts[flip]), rest[flip])
            states[flip], rest[flip] = m_states, m_rest
        new_rest = np.stack([random_body(r, self.rng, self.augment) for r in rest.numpy()])
        x, c = repose_states(states, rest, torch.from_numpy(new_rest))
        return x[:, 1:].numpy(), c[:, 1:].numpy(), new_rest.astype(np.float32)

    def _rows(self, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The picked windows' states (B, span, 273) and contacts (B, span, 9) as captured."""
        rows = self.starts[pick][:, None] + np.arange(self._span)
        return self.data.states[rows], self.data.contacts[rows]

    def _retimed_rows(self, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The picked windows' states (B, span, 273) and contacts (B, span, 9), a share ``augment.p_tempo`` of them
        read at a random tempo s (frames at start + i s of the same take, linearly interpolated; the 6D rotations
        re-orthonormalised and the root's angular velocity re-derived, the rest ``repose_states`` re-derives). A
        window too near its take's end starts earlier; a take too short for the tempo is read as fast as it allows.
        """
        import torch

        from ..body.rotations import mat_to_r6d
        from ..body.state import STATE_SLICES, angular_velocity, state_rotmats

        n, span, aug = len(pick), self._span, self.augment
        if aug.p_tempo <= 0:  # no draw: the random stream (mirroring, bodies) stays as without tempo
            return self._rows(pick)
        on = self.rng.random(n) < aug.p_tempo
        if not on.any():
            return self._rows(pick)
        start, tempo = self.starts[pick].astype(np.float64), np.ones(n)
        lo, hi = np.log(aug.tempo[0]), np.log(aug.tempo[1])
        tempo[on] = np.exp(self.rng.uniform(lo, hi, on.sum()))
        first = self.data.clip_starts[self.clips[pick]].astype(np.float64)
        last = self.data.clip_starts[self.clips[pick] + 1].astype(np.float64) - 1
        tempo = np.minimum(tempo, (last - first) / (span - 1))
        start = np.clip(start, first, last - (span - 1) * tempo)
        pos = start[:, None] + np.arange(span) * tempo[:, None]
        i0 = np.minimum(np.floor(pos).astype(np.int64), last.astype(np.int64)[:, None])
        i1 = np.minimum(i0 + 1, last.astype(np.int64)[:, None])
        w = (pos - i0)[..., None].astype(np.float32)
        states = (1 - w) * self.data.states[i0] + w * self.data.states[i1]
        contacts = self.data.contacts[np.where(w[..., 0] < 0.5, i0, i1)]
        x = torch.from_numpy(states[on]).double()
        rot = state_rotmats(x)
        x[..., STATE_SLICES["root_orient"]] = mat_to_r6d(rot[..., 0, :, :])
        x[..., STATE_SLICES["pose_body"]] = mat_to_r6d(rot[..., 1:, :, :]).flatten(-2)
        x[..., STATE_SLICES["root_orient_vel"]] = angular_velocity(rot[..., 0, :, :], MODEL_FPS)
        states[on] = x.float().numpy()
        return states, contacts
