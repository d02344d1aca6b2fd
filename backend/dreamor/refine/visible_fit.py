"""The last stage of a refinement: the assembled motion made to meet what was observed.

The optimisation works through the MotionVAE's autoregressive rollout, which cannot follow an
observation exactly: its visible joints ended 1.2 cm from where they were seen on average and up
to 2.8 cm on a clip (lower body hidden, ``fast``; docs/benchmarks/bodies/). This stage is inverse
kinematics on the result, frame by frame, parents before children:

- every joint's target is where it was observed when visible; a hidden joint with visible joints
  below it (a hidden spine under visible arms) moves with them (their mean correction); a hidden
  joint with none has no target and keeps its world orientation, hanging from its corrected parent
  (a hidden leg moves with the hip joint but does not swing when the pelvis turns to meet the spine:
  turning it with the pelvis put the feet 1.6 cm further off on three clips);
- each joint's rotation is the result's local rotation under its corrected parent, turned by the
  smallest rotation that points its main child at the child's target, then twisted about that
  bone to bring its other children (pelvis, upper spine) closest to theirs; the twist the result
  gave a bone is kept, so a skinned mesh does not wring.

Visible joints then sit where they were observed (exactly, on the skeleton they were observed on),
hidden ones keep the refined pose hanging from their corrected parents. Where a joint is hidden for a
gap only, its correction fades out over ``blend`` frames on either side of the gap, so the limb does
not pop where it goes out of sight. For captures marked noisy
(``RefineConfig.noisy``) the stage is skipped: there the observation is not where the joints were.
A first try, a smooth correction fitted by L-BFGS against a penalty on its acceleration, stalled at
0.6-0.8 cm (the rollout's frame-to-frame error is high-frequency, which such a correction must not
follow); this exact fit reaches the observation.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.retarget import smallest_rotation, unit
from ..skeleton import CHILDREN, NUM_JOINTS, PARENTS, forward_kinematics, rest_offsets
from .fades import fade_out


def _subtree_targets(joints: np.ndarray, observed: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets (T, 22, 3) and which joints have one (T, 22): observed where visible; a hidden joint with
    visible joints below it moves by their mean correction; others none."""
    corr = np.where(visible[..., None], observed - joints, 0.0)
    total, count = corr.copy(), visible.astype(np.float64)
    for j in range(NUM_JOINTS - 1, 0, -1):  # children have higher indices than their parents
        total[:, PARENTS[j]] += total[:, j]
        count[:, PARENTS[j]] += count[:, j]
    below = count - visible  # visible joints strictly below each joint
    moved = joints + (total - corr) / np.maximum(below, 1.0)[..., None]
    target = np.where(visible[..., None], observed, moved)
    return target, visible | (below > 0)


def _twist(axis: np.ndarray, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rotations (T, 3, 3) about unit ``axis`` (T, 3) best turning vectors a onto b ((T, K, 3), weights (T, K))."""
    ap = a - (a * axis[:, None]).sum(-1, keepdims=True) * axis[:, None]
    bp = b - (b * axis[:, None]).sum(-1, keepdims=True) * axis[:, None]
    sin = (w * (np.cross(ap, bp) * axis[:, None]).sum(-1)).sum(-1)
    cos = (w * (ap * bp).sum(-1)).sum(-1)
    angle = np.arctan2(sin, cos)
    k = np.zeros((len(axis), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - np.swapaxes(k, 1, 2)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def meet_observation(local_rotmats: np.ndarray, trans: np.ndarray, rest: np.ndarray, observed: np.ndarray,
                     visible: np.ndarray, blend: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """local_rotmats (T, 22, 3, 3), trans (T, 3) m, rest (22, 3): the result; observed (T, 22, 3) m
    (anything where hidden), visible (T, 22) bool -> local_rotmats, trans, joints (T, 22, 3), fitted.
    ``blend``: frames over which a joint's correction fades out on either side of where it was seen."""
    fk = forward_kinematics(torch.from_numpy(local_rotmats), torch.from_numpy(rest), torch.from_numpy(trans))
    joints, world = fk.joints.numpy(), fk.global_rotmats.numpy()
    visible = np.asarray(visible, bool)
    corr = np.where(visible[..., None], np.nan_to_num(observed) - joints, 0.0)
    reach = visible.copy()
    if blend > 0 and not visible.all():
        for j in np.flatnonzero(visible.any(0) & ~visible.all(0)):  # joints seen in some frames only
            corr[:, j], weight = fade_out(corr[:, j], visible[:, j], blend)
            reach[:, j] = weight > 0
    target, has = _subtree_targets(joints, joints + corr, reach)
    off = rest_offsets(np.asarray(rest, np.float64).copy())
    n = len(trans)
    glob = np.empty_like(local_rotmats)
    pos = np.empty_like(joints)
    pos[:, 0] = np.where(has[:, :1], target[:, 0], joints[:, 0])
    out = local_rotmats.copy()
    for j in range(NUM_JOINTS):
        carried = local_rotmats[:, j] if j == 0 else glob[:, PARENTS[j]] @ local_rotmats[:, j]
        # a joint with no target keeps its world orientation (a hidden leg hangs from the corrected hip as it was)
        carried = np.where(has[:, j, None, None], carried, world[:, j])
        kids = list(CHILDREN[j])
        rot = carried
        if kids:
            src = unit(np.einsum("tij,kj->tki", carried, off[kids]))
            dst = unit(target[:, kids] - pos[:, j : j + 1])
            # seen children lead; a child that only moves with what is seen below it (or fades) follows
            w = np.where(visible[:, kids], 1.0, np.where(has[:, kids], 1e-6, 0.0))
            dst = np.where(w[..., None] > 0, dst, src)
            main = np.argmax(w, axis=1)  # the first seen child, else the first with a target
            rows = np.arange(n)
            swing = smallest_rotation(src[rows, main], dst[rows, main])
            rot = swing @ carried
            if len(kids) > 1:
                others = w.copy()
                others[rows, main] = 0.0
                a = np.einsum("tij,tkj->tki", swing, src)
                rot = _twist(dst[rows, main], a, dst, others) @ rot
        glob[:, j] = rot
        out[:, j] = rot if j == 0 else np.swapaxes(glob[:, PARENTS[j]], 1, 2) @ rot
        for c in kids:
            pos[:, c] = pos[:, j] + rot @ off[c]
    return out, pos[:, 0] - rest[0], pos
