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

Then a limb whose end has a target under an unseen middle joint (a pinned ankle below a hidden knee)
is solved by two-bone IK, and any fitted joint still further than ``REACH_TOL_M`` off (a pinned hip
under a noisy pelvis) by per-frame L-BFGS on the joints that are not kept. Seen joints that are not
fitted (``anchors``: noisy ones) stay where the result has them, so one pin bends its limb rather than
dragging the body.

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

from ..body.kinematics import forward_kinematics
from ..body.rotations import aa_to_mat, smallest_rotation, unit
from ..body.skeleton import CHILDREN, NUM_JOINTS, PARENTS, rest_offsets
from .fades import fade_out


def _subtree_targets(joints: np.ndarray, observed: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets (T, 22, 3) and which joints have one (T, 22): observed where visible; a hidden joint with
    visible joints below it moves by their mean correction; others none."""
    corr = np.where(visible[..., None], observed - joints, 0.0)
    weight = visible
    total, count = corr.copy(), weight.astype(np.float64)
    for j in range(NUM_JOINTS - 1, 0, -1):  # children have higher indices than their parents
        total[:, PARENTS[j]] += total[:, j]
        count[:, PARENTS[j]] += count[:, j]
    below = count - weight  # visible (and anchor) joints strictly below each joint
    moved = joints + (total - corr) / np.maximum(below, 1.0)[..., None]
    target = np.where(visible[..., None], observed, moved)
    has_visible_below = count_below(visible) > 0
    return target, visible | has_visible_below


def count_below(mask: np.ndarray) -> np.ndarray:
    """(T, 22) bool -> (T, 22): how many joints strictly below each joint are in ``mask``."""
    count = mask.astype(np.float64)
    for j in range(NUM_JOINTS - 1, 0, -1):
        count[:, PARENTS[j]] += count[:, j]
    return count - mask


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
                     visible: np.ndarray, blend: int = 0, keep: np.ndarray | None = None,
                     anchors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """local_rotmats (T, 22, 3, 3), trans (T, 3) m, rest (22, 3): the result; observed (T, 22, 3) m
    (anything where hidden), visible (T, 22) bool -> local_rotmats, trans, joints (T, 22, 3), fitted.
    ``blend``: frames over which a joint's correction fades out on either side of where it was seen;
    ``keep`` (T, 22) bool: joints whose rotations the last per-frame IK (``_reach``) must not change;
    ``anchors`` (T, 22) bool: seen joints that are not fitted (noisy ones), which hold their unseen parents back."""
    fk = forward_kinematics(torch.from_numpy(local_rotmats), torch.from_numpy(rest), torch.from_numpy(trans))
    joints, world = fk.joints.numpy(), fk.global_rotmats.numpy()
    visible = np.asarray(visible, bool)
    corr = np.where(visible[..., None], np.nan_to_num(observed) - joints, 0.0)
    reach = visible.copy()
    if blend > 0 and not visible.all():
        for j in np.flatnonzero(visible.any(0) & ~visible.all(0)):  # joints seen in some frames only
            corr[:, j], weight = fade_out(corr[:, j], visible[:, j], blend)
            reach[:, j] = weight > 0
    # seen joints that are not fitted (noisy ones) stay where the result has them: one pinned wrist bends the
    # arm (the limb pass below) instead of dragging the body after it
    anchored = reach if anchors is None else reach | (np.asarray(anchors, bool) & ~reach)
    target, has = _subtree_targets(joints, joints + corr, anchored)
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
                # a seen joint turns only for its seen children: a hidden child that merely carries a correction from
                # below (a pinned knee under a hidden hip) must not twist a seen pelvis round the spine
                others = np.where(anchored[:, j, None] & (others < 1.0), 0.0, others)
                a = np.einsum("tij,tkj->tki", swing, src)
                rot = _twist(dst[rows, main], a, dst, others) @ rot
        glob[:, j] = rot
        out[:, j] = rot if j == 0 else np.swapaxes(glob[:, PARENTS[j]], 1, 2) @ rot
        for c in kids:
            pos[:, c] = pos[:, j] + rot @ off[c]
    new_trans = pos[:, 0] - rest[0]
    seen = joints + corr  # where the seen (and faded) joints should be
    out, pos = _reach_limbs(out, new_trans, rest, seen, reach, visible, keep)
    miss = np.linalg.norm(pos - seen, axis=-1) * visible
    if miss.max() > REACH_TOL_M:  # a seen joint the passes above could not reach (a pinned hip under a noisy pelvis)
        keep = np.zeros_like(visible) if keep is None else np.asarray(keep, bool)
        held = np.zeros_like(visible) if anchors is None else np.asarray(anchors, bool)
        out, new_trans, pos = _reach(out, new_trans, rest, seen, visible, reach, keep, held,
                                     np.flatnonzero(miss.max(1) > REACH_TOL_M))
    return out, new_trans, pos


#: a seen joint further than this from its target after the pass above is reached by per-frame IK (``_reach``).
REACH_TOL_M = 1e-3
#: (root, middle, end) joints of the limbs: hips, knees, ankles; shoulders, elbows, wrists.
LIMBS = ((1, 4, 7), (2, 5, 8), (16, 18, 20), (17, 19, 21))
#: where each limb's middle joint bends when the limb is straight: knees forward, elbows back (SMPL body frame).
BEND = {4: (0.0, 0.0, 1.0), 5: (0.0, 0.0, 1.0), 18: (0.0, 0.0, -1.0), 19: (0.0, 0.0, -1.0)}


def _reach_limbs(local_rotmats: np.ndarray, trans: np.ndarray, rest: np.ndarray, targets: np.ndarray, reach: np.ndarray,
                 seen: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Two-bone IK for every limb whose end has a target where its middle joint was not seen (a pinned ankle
    under a hidden knee): the knee in its own plane, the end's world orientation kept. -> local_rotmats, joints."""
    from .foot_lock import two_bone

    out = local_rotmats.copy()
    off = rest_offsets(np.asarray(rest, np.float64).copy())
    for root, mid, end in LIMBS:
        rows = reach[:, end] & ~seen[:, mid]  # (a seen hip's position does not fix its rotation)
        if keep is not None:
            rows &= ~keep[:, root] & ~keep[:, mid]
        if not rows.any():
            continue
        fk = forward_kinematics(torch.from_numpy(out[rows]), torch.from_numpy(rest), torch.from_numpy(trans[rows]))
        p, g = fk.joints.numpy(), fk.global_rotmats.numpy()
        new_mid, new_end = two_bone(p[:, root], p[:, mid], targets[rows, end], np.linalg.norm(off[mid]),
                                    np.linalg.norm(off[end]), g[:, root] @ np.array(BEND[mid]))
        g_root = smallest_rotation(unit(p[:, mid] - p[:, root]), unit(new_mid - p[:, root])) @ g[:, root]
        g_mid = smallest_rotation(unit(p[:, end] - p[:, mid]), unit(new_end - new_mid)) @ g[:, mid]
        out[rows, root] = np.swapaxes(g[:, PARENTS[root]], 1, 2) @ g_root
        out[rows, mid] = np.swapaxes(g_root, 1, 2) @ g_mid
        out[rows, end] = np.swapaxes(g_mid, 1, 2) @ g[:, end]
    joints = forward_kinematics(torch.from_numpy(out), torch.from_numpy(rest), torch.from_numpy(trans)).joints.numpy()
    return out, joints


def _reach(local_rotmats: np.ndarray, trans: np.ndarray, rest: np.ndarray, targets: np.ndarray, fitted: np.ndarray,
           faded: np.ndarray, keep: np.ndarray, anchors: np.ndarray, frames: np.ndarray, iters: int = 300
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame IK for ``frames`` (where a fitted joint was missed): small rotations of the joints not in ``keep``
    (and a root shift unless the pelvis is kept) (L-BFGS) that bring the fitted joints (T, 22) to their targets,
    the faded targets (T, 22) more weakly and ``anchors`` (T, 22) more weakly still where they are. Returns
    local_rotmats, trans, joints."""
    base = torch.from_numpy(local_rotmats[frames])
    rest_t = torch.from_numpy(np.asarray(rest, np.float64))
    goal = torch.from_numpy(targets[frames])
    mask = torch.from_numpy(np.where(fitted[frames], 1.0, np.where(faded[frames], 0.1, 0.0)))
    weak = torch.from_numpy((anchors[frames] & ~faded[frames]).astype(np.float64)) * 1e-6  # a tie-break, never against a pin
    free = torch.from_numpy(1.0 - keep[frames].astype(np.float64))[..., None]
    delta = torch.zeros(len(frames), NUM_JOINTS, 3, dtype=torch.float64, requires_grad=True)
    shift = torch.zeros(len(frames), 3, dtype=torch.float64, requires_grad=True)
    t0 = torch.from_numpy(trans[frames])
    with torch.no_grad():
        start = forward_kinematics(base, rest_t, t0).joints
    opt = torch.optim.LBFGS([delta, shift], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        j = forward_kinematics(base @ aa_to_mat(delta * free), rest_t, t0 + shift * free[:, 0]).joints
        e = (((j - goal) ** 2).sum(-1) * mask).sum() + (((j - start) ** 2).sum(-1) * weak).sum()
        e = (e + 1e-5 * (delta**2).sum()) * 1e3
        e.backward()
        return e

    opt.step(closure)
    rot, new_trans = local_rotmats.copy(), trans.copy()
    rot[frames] = (base @ aa_to_mat(delta * free)).detach().numpy()
    new_trans[frames] = (t0 + shift * free[:, 0]).detach().numpy()
    joints = forward_kinematics(torch.from_numpy(rot), rest_t, torch.from_numpy(new_trans)).joints.numpy()
    return rot, new_trans, joints
