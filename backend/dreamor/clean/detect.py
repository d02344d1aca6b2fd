"""Finding capture faults from the motion alone (``dreamor clean --occlude auto``).

Every detector looks at one SMPL-22 clip at its own frame rate and returns a (T, 22) bool mask of the
joint-frames it believes wrong; :func:`detect_faults` combines them into the ``visible`` mask the refinement
gets (False = re-solve this joint here) and counts what each kind found. The kinds:

- ``nonfinite``: NaN or infinite values (a joint's rotation, or the root's translation/orientation: the
  whole frame). The joint and everything below it are hidden.
- ``frozen``: a joint's local rotation exactly constant (every frame-to-frame change below
  ``frozen_tol_deg``) for at least ``frozen_min_s`` while the rest of the body moves -- how solvers hold a
  lost limb at its last seen pose. Joints constant over nearly the whole take (``structural_share``: a
  skeleton without that joint, retargeted) are not faults. The joint and everything below it are hidden.
- ``spike``: a joint knocked more than ``spike_min_m`` off its course from one frame to the next and knocked
  back (the opposite way) within ``spike_max_s``, while its course changes less than ``spike_calm`` times
  that in the frames just before and after; the course is standing still or moving on at the same
  velocity: a glitch, not a fast limb (a running foot moves 30 cm a frame at 30 Hz, but on a smooth course).
  Hidden: everything below the joint whose rotation glitched (the parent of the highest joint knocked with
  it), one frame either side too.
- ``stretch``: a bone whose length differs from the skeleton's by more than ``stretch_tol`` (share) and
  ``stretch_min_m``; only for clips that carry their own joint positions (an ``.npz`` with ``joints``):
  rotations put on a skeleton cannot stretch. The bone's child joint is hidden.
- ``floor``: an ankle or toe more than ``floor_margin_m`` below the take's floor (the 5th percentile of the
  lowest foot joint's height). The foot's leg below the hip is hidden.

Thresholds are in seconds and metres, so they mean the same at any frame rate; the false-alarm rate on
clean takes and the detection rate on injected faults are in docs/benchmarks/clean.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.skeleton import BONES, CHILDREN, NUM_JOINTS, PARENTS
from ..data.clip import Clip
from ..refine.fades import runs

KINDS = ("nonfinite", "frozen", "spike", "stretch", "floor")
FOOT_JOINTS = (7, 8, 10, 11)
#: each foot joint's leg below the hip (knee, ankle, toe), hidden when the foot goes through the floor.
LEG_OF = {7: (4, 7, 10), 10: (4, 7, 10), 8: (5, 8, 11), 11: (5, 8, 11)}


@dataclass(frozen=True)
class DetectConfig:
    frozen_min_s: float = 0.3
    frozen_tol_deg: float = 1e-3
    structural_share: float = 0.9
    #: the rest of the body moves: some other joint turns by more than this per frame (degrees) ...
    body_moving_deg: float = 0.05
    spike_max_s: float = 0.1
    spike_min_m: float = 0.15
    spike_calm: float = 0.5
    stretch_tol: float = 0.1
    stretch_min_m: float = 0.03
    floor_margin_m: float = 0.05


@dataclass
class Faults:
    """What :func:`detect_faults` found. ``visible`` (T, 22): False where the refinement should re-solve;
    ``kinds``: kind -> (T, 22) bool mask of the joint-frames that kind flagged (before combining);
    ``joints``: (T, 22, 3) the input's joints the detectors saw (non-finite values filled in)."""

    visible: np.ndarray
    kinds: dict[str, np.ndarray] = field(default_factory=dict)
    joints: np.ndarray | None = None

    def counts(self) -> dict[str, int]:
        """Joint-frames flagged per kind, and ``hidden``: joint-frames hidden in all."""
        return {**{k: int(m.sum()) for k, m in self.kinds.items()}, "hidden": int((~self.visible).sum())}


def _subtree(j: int) -> list[int]:
    out, todo = [], [j]
    while todo:
        k = todo.pop()
        out.append(k)
        todo.extend(CHILDREN[k])
    return out


SUBTREE = tuple(tuple(_subtree(j)) for j in range(NUM_JOINTS))


def _with_subtrees(mask: np.ndarray) -> np.ndarray:
    """(T, 22) flags -> the same with every flagged joint's descendants flagged too."""
    out = mask.copy()
    for j in range(NUM_JOINTS):  # parents come before children
        if PARENTS[j] >= 0:
            out[:, j] |= out[:, PARENTS[j]]
    return out


def nonfinite(clip: Clip) -> np.ndarray:
    """(T, 22): the joint's rotation is not finite, or the root's is (then the whole frame)."""
    local = clip.local_aa
    bad = ~np.isfinite(local).all(-1)  # (T, 22)
    bad[~np.isfinite(clip.trans).all(-1)] = True
    bad[bad[:, 0]] = True
    if clip.joints is not None:
        bad |= ~np.isfinite(clip.joints).all(-1)
    return _with_subtrees(bad)


def _local_rotations(clip: Clip) -> Rotation:
    aa = np.nan_to_num(clip.local_aa)
    return Rotation.from_rotvec(aa.reshape(-1, 3))


def frame_turn_deg(clip: Clip) -> np.ndarray:
    """(T-1, 22) degrees each joint's local rotation turns from one frame to the next."""
    t = clip.num_frames
    r = _local_rotations(clip)
    q = r.as_quat().reshape(t, NUM_JOINTS, 4)
    dot = np.abs((q[1:] * q[:-1]).sum(-1)).clip(0.0, 1.0)
    return np.degrees(2.0 * np.arccos(dot))


def frozen(clip: Clip, cfg: DetectConfig = DetectConfig()) -> np.ndarray:
    """(T, 22): a joint held exactly still (its local rotation) for at least ``frozen_min_s`` while the
    body moves; the held copies (not the last seen frame) and the joint's subtree."""
    t = clip.num_frames
    out = np.zeros((t, NUM_JOINTS), bool)
    if t < 3:
        return out
    turn = frame_turn_deg(clip)  # (T-1, 22): turn[i] is frame i -> i+1
    still = turn < cfg.frozen_tol_deg
    min_run = max(2, int(round(cfg.frozen_min_s * clip.fps)))
    moving_others = (turn > cfg.body_moving_deg)
    trans_step = np.linalg.norm(np.diff(np.nan_to_num(clip.trans), axis=0), axis=-1)
    for j in range(1, NUM_JOINTS):
        if still[:, j].mean() >= cfg.structural_share:  # never animated: the source skeleton lacks it
            continue
        others = np.delete(moving_others, SUBTREE[j], axis=1).any(1) | (trans_step > 1e-4)
        for a, b in runs(still[:, j]):
            if b - a >= min_run and others[a:b].mean() > 0.5:
                out[a + 1 : b + 1, SUBTREE[j]] = True  # frames a+1..b repeat frame a
    return out


def world_joints(clip: Clip) -> np.ndarray:
    """(T, 22, 3) the clip's joints: its own positions when it carries them, else FK of its rotations."""
    if clip.joints is not None:
        return clip.joints
    from ..body.state import clip_to_state

    _, joints = clip_to_state(clip)
    return joints.double().numpy()


def spikes(joints: np.ndarray, fps: float, cfg: DetectConfig = DetectConfig()) -> np.ndarray:
    """(T, 22): a joint knocked more than ``spike_min_m`` off its course in one frame and knocked back (the
    opposite way) within ``spike_max_s``, while its course changes less than ``spike_calm`` times that in the
    frames just before and after; everything below the rotation that glitched, one frame either side.

    Two courses are tried, and either finds a glitch: standing still (the test is on the frame-to-frame steps)
    and moving on (on the change of the steps, the second difference). A still joint that jumps 30 cm and
    back is the first; a wrist swinging 9 cm a frame in a run that a glitch knocks 23 cm aside steps 32 cm
    in and 16 cm out, which the first misses (the frames around step 9 cm, more than half of 16), while its
    course changes by 23 cm in and out against 1-2 cm in the frames around. The first also finds the
    multi-frame loops a marker swap makes (CMU 05's ankles, 40-60 cm a frame at 120 Hz), where the course
    is too rough for the second."""
    hit = np.zeros((len(joints), NUM_JOINTS), bool)
    step = np.diff(np.nan_to_num(joints), axis=0)  # step[k]: frame k -> k+1
    turn = np.diff(step, axis=0)  # turn[k]: step[k+1] - step[k], the change of course at frame k+1
    knock = np.linalg.norm(turn, axis=-1)
    _knocks(step, 1, fps, cfg, knock, hit)
    _knocks(turn, 2, fps, cfg, knock, hit)
    return hit


def _knocks(change: np.ndarray, order: int, fps: float, cfg: DetectConfig, knock: np.ndarray, hit: np.ndarray) -> None:
    """Mark in ``hit`` (T, 22) the glitches found on ``change`` (T - order, 22, 3), the joints' ``order``-th
    differences over frames. Frames i .. i+L-1 knocked aside by d show d entering at change[i - order] and
    leaving at change[i + L - 1] (-d for the steps, +d for their change: ``exit_sign`` turns it back).
    ``knock`` (T - 2, 22): the size of each joint's change of course, which says which joints the glitch moved
    with it (a body that travels steps every joint far each frame, a glitch knocks only the limb)."""
    t = len(hit)
    size = np.linalg.norm(change, axis=-1)
    exit_sign = 1.0 if order == 1 else -1.0
    for length in range(1, max(1, int(round(cfg.spike_max_s * fps))) + 1):
        i = np.arange(order + 1, t - order - length)  # calm frames at both ends
        if not len(i):
            break
        a, b = i - order, i + length - 1  # where the knock enters and leaves
        e, x = size[a], size[b]
        back = (change[a] * exit_sign * change[b]).sum(-1) < -0.5 * e * x
        calm = np.maximum(size[a - 1], size[b + 1]) < cfg.spike_calm * np.minimum(e, x)
        found = (e > cfg.spike_min_m) & (x > cfg.spike_min_m) & back & calm
        for k, j in zip(*np.nonzero(found)):
            # the rotation that glitched: above the highest joint knocked with j (by a quarter as much)
            while PARENTS[j] > 0 and knock[i[k] - 2, PARENTS[j]] > 0.25 * knock[i[k] - 2, j]:
                j = PARENTS[j]
            top = PARENTS[j] if PARENTS[j] >= 0 else j
            hit[i[k] - 1 : i[k] + length + 1, list(SUBTREE[top])] = True  # frames i .. i+length-1, one either side


def stretched(clip: Clip, cfg: DetectConfig = DetectConfig()) -> np.ndarray:
    """(T, 22): the child joint of a bone whose length is off the skeleton's (clips with their own joints)."""
    t = clip.num_frames
    out = np.zeros((t, NUM_JOINTS), bool)
    if clip.joints is None:
        return out
    j = np.nan_to_num(clip.joints)
    for p, c in BONES:
        rest = np.linalg.norm(clip.rest_joints[c] - clip.rest_joints[p])
        length = np.linalg.norm(j[:, c] - j[:, p], axis=-1)
        off = np.abs(length - rest)
        out[:, c] = (off > cfg.stretch_min_m) & (off > cfg.stretch_tol * rest)
    return out


def below_floor(joints: np.ndarray, cfg: DetectConfig = DetectConfig()) -> np.ndarray:
    """(T, 22): an ankle or toe deeper than ``floor_margin_m`` under the take's floor; that leg below the hip."""
    t = len(joints)
    out = np.zeros((t, NUM_JOINTS), bool)
    z = np.nan_to_num(joints[:, list(FOOT_JOINTS), 2], nan=np.inf)
    lowest = z.min(1)
    if not np.isfinite(lowest).any():
        return out
    floor = np.percentile(lowest[np.isfinite(lowest)], 5)
    for k, j in enumerate(FOOT_JOINTS):
        deep = z[:, k] < floor - cfg.floor_margin_m
        out[np.ix_(deep, LEG_OF[j])] = True
    return out


def detect_faults(clip: Clip, cfg: DetectConfig = DetectConfig()) -> Faults:
    """Run every detector on a clip (any frame rate; NaN allowed) -> :class:`Faults`."""
    kinds = {"nonfinite": nonfinite(clip)}
    filled = fill_nonfinite(clip, ~kinds["nonfinite"])
    joints = world_joints(filled)
    known = ~kinds["nonfinite"]  # what the fill made up is not a fault of another kind
    kinds["frozen"] = frozen(filled, cfg) & known
    kinds["spike"] = spikes(joints, clip.fps, cfg) & known
    kinds["stretch"] = stretched(filled, cfg)
    kinds["floor"] = below_floor(joints, cfg)
    hidden = np.zeros((clip.num_frames, NUM_JOINTS), bool)
    for mask in kinds.values():
        hidden |= mask
    return Faults(~hidden, kinds, joints)


def fill_nonfinite(clip: Clip, good: np.ndarray) -> Clip:
    """The clip with non-finite rotations and translations filled in (each joint: linear interpolation of
    its axis-angle between good frames, held at the ends), so FK and the refinement get numbers; the
    filled joint-frames are hidden anyway. good: (T, 22) bool."""
    local = clip.local_aa.copy()
    trans = clip.trans.copy()
    frames = np.arange(clip.num_frames)
    ok_local = np.isfinite(local).all(-1) & good
    for j in range(NUM_JOINTS):
        ok = ok_local[:, j]
        if ok.all():
            continue
        if not ok.any():
            local[:, j] = 0.0
            continue
        for c in range(3):
            local[:, j, c] = np.interp(frames, frames[ok], local[ok, j, c])
    ok = np.isfinite(trans).all(-1) & good[:, 0]
    if not ok.all():
        if ok.any():
            for c in range(3):
                trans[:, c] = np.interp(frames, frames[ok], trans[ok, c])
        else:
            trans[:] = 0.0
    out = replace(clip.with_local_aa(local), trans=trans)
    if clip.joints is not None and not np.isfinite(clip.joints).all():  # unknown positions: FK of the filled pose
        fk = world_joints(replace(out, joints=None))
        out = replace(out, joints=np.where(np.isfinite(clip.joints), clip.joints, fk))
    return out
