"""Retarget a BVH (any skeleton in SKELETON_MAPS) onto the SMPL-22 skeleton.

Mapping is by joint *position*, not by copying local rotations (the source rest frames
differ: Bandai and LAFAN1 joint axes run along the bones, CMU rests in a T-pose):

1. FK of the BVH; each SMPL joint's target position is a source joint, the midpoint of
   two, or a point between two (table below); Y-up file units -> Z-up metres.
2. The clip's skeleton (``rest_joints``, SMPL's zero pose): bone lengths from the source;
   directions from SMPL, except the rigid constellations around the pelvis (hips, spine1)
   and spine3 (neck, collars), which keep the source's own geometry, turned to best match
   SMPL's (Kabsch).
3. Global rotations: the pelvis and spine3 by Kabsch fit of their constellations; every
   other joint with a child by the smallest swing from its parent's frame that points the
   bone at the target (zero twist), then hips and shoulders are twisted so the knee/elbow
   bends about its hinge axis. Leaves (head, wrists, toes) take the source joint's
   rotation relative to its parent, calibrated so the clip's mean relative pose is the
   SMPL zero pose.
4. The floor: a low percentile (5 %) of the lowest toe's height over frames where it is
   still becomes z = 0. Then resampling to the model rate (slerp) happens in ``resample``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.rotations import rotation_angle_deg, smallest_rotation, unit
from ..body.skeleton import CHILDREN, JOINT_NAMES, NUM_JOINTS, PARENTS, SMPL_NEUTRAL_REST_JOINTS, Y_UP_TO_Z_UP, rest_offsets
from ..errors import InputFileError
from .bvh import BVH, bvh_fk
from .clip import Clip

# A target is a joint name, ("mid", a, b) or ("lerp", a, b, w) = a + w (b - a).
Target = str | tuple


@dataclass(frozen=True)
class SkeletonMap:
    """How one BVH skeleton maps onto SMPL-22."""

    name: str
    unit_to_m: float
    targets: tuple[Target, ...]  # 22 targets in SMPL joint order
    leaf_sources: dict[int, str] = field(default_factory=dict)  # SMPL leaf -> source joint (rotation)
    drop_first_frame: bool = False  # CMU Daz-friendly files start with an inserted T-pose (dropped where it is one)

    @property
    def required(self) -> set[str]:
        names: set[str] = set(self.leaf_sources.values())
        for t in self.targets:
            names.update([t] if isinstance(t, str) else [x for x in t[1:] if isinstance(x, str)])
        return names


def _lr(left: str, right: str) -> tuple[str, str]:
    return left, right


def _smpl_order(**by_name: Target) -> tuple[Target, ...]:
    return tuple(by_name[n] for n in JOINT_NAMES)


BANDAI = SkeletonMap(
    "bandai", 0.01,
    _smpl_order(
        pelvis="Hips", left_hip="UpperLeg_L", right_hip="UpperLeg_R", spine1="Spine",
        left_knee="LowerLeg_L", right_knee="LowerLeg_R", spine2=("mid", "Spine", "Chest"),
        left_ankle="Foot_L", right_ankle="Foot_R", spine3="Chest", left_foot="Toes_L", right_foot="Toes_R",
        neck="Neck", left_collar="Shoulder_L", right_collar="Shoulder_R", head="Head",
        left_shoulder="UpperArm_L", right_shoulder="UpperArm_R", left_elbow="LowerArm_L",
        right_elbow="LowerArm_R", left_wrist="Hand_L", right_wrist="Hand_R",
    ),
    leaf_sources={10: "Toes_L", 11: "Toes_R", 15: "Head", 20: "Hand_L", 21: "Hand_R"},
)

LAFAN1 = SkeletonMap(
    "lafan1", 0.01,
    _smpl_order(
        pelvis="Hips", left_hip="LeftUpLeg", right_hip="RightUpLeg", spine1="Spine",
        left_knee="LeftLeg", right_knee="RightLeg", spine2="Spine1", left_ankle="LeftFoot",
        right_ankle="RightFoot", spine3="Spine2", left_foot="LeftToe", right_foot="RightToe",
        neck="Neck", left_collar="LeftShoulder", right_collar="RightShoulder", head="Head",
        left_shoulder="LeftArm", right_shoulder="RightArm", left_elbow="LeftForeArm",
        right_elbow="RightForeArm", left_wrist="LeftHand", right_wrist="RightHand",
    ),
    leaf_sources={10: "LeftToe", 11: "RightToe", 15: "Head", 20: "LeftHand", 21: "RightHand"},
)

CMU_MOTIONBUILDER = SkeletonMap(
    "cmu", 0.0254 / 0.45,
    _smpl_order(
        pelvis="Hips", left_hip="LeftUpLeg", right_hip="RightUpLeg", spine1="Spine",
        left_knee="LeftLeg", right_knee="RightLeg", spine2=("mid", "Spine", "Spine1"), left_ankle="LeftFoot",
        right_ankle="RightFoot", spine3="Spine1", left_foot="LeftToeBase", right_foot="RightToeBase",
        # Neck and both shoulders sit exactly on Spine1 in this conversion: use Neck1 and
        # points half-way out to the upper arms, so no SMPL bone has zero length.
        neck="Neck1", left_collar=("lerp", "LeftShoulder", "LeftArm", 0.5),
        right_collar=("lerp", "RightShoulder", "RightArm", 0.5),
        head="Head", left_shoulder="LeftArm", right_shoulder="RightArm", left_elbow="LeftForeArm",
        right_elbow="RightForeArm", left_wrist="LeftHand", right_wrist="RightHand",
    ),
    leaf_sources={10: "LeftToeBase", 11: "RightToeBase", 15: "Head", 20: "LeftHand", 21: "RightHand"},
)

CMU_DAZ = SkeletonMap(
    "cmu_daz", 0.01,
    _smpl_order(
        pelvis="hip", left_hip="lThigh", right_hip="rThigh", spine1="abdomen",
        left_knee="lShin", right_knee="rShin", spine2="chest", left_ankle="lFoot", right_ankle="rFoot",
        spine3=("mid", "chest", "neck"), left_foot=("lerp", "lFoot", "lFoot_end", 2.0 / 3.0),
        right_foot=("lerp", "rFoot", "rFoot_end", 2.0 / 3.0), neck="neck", left_collar="lCollar",
        right_collar="rCollar", head="head", left_shoulder="lShldr", right_shoulder="rShldr",
        left_elbow="lForeArm", right_elbow="rForeArm", left_wrist="lHand", right_wrist="rHand",
    ),
    leaf_sources={15: "head", 20: "lHand", 21: "rHand"},
    drop_first_frame=True,
)

#: The cgspeed 3dsMax-friendly CMU conversion: the Motionbuilder tree with other names. Name trap: here
#: ``LeftShoulder`` is the upper arm (SMPL ``left_shoulder``) and ``LeftCollar`` the clavicle, which, like
#: ``lowerneck``, has zero length; the collars are points half-way out to the upper arms, as for Motionbuilder.
CMU_3DSMAX = SkeletonMap(
    "cmu_3dsmax", 0.0254 / 0.45,
    _smpl_order(
        pelvis="Hips", left_hip="LeftHip", right_hip="RightHip", spine1="Chest", left_knee="LeftKnee",
        right_knee="RightKnee", spine2="Chest2", left_ankle="LeftAnkle", right_ankle="RightAnkle",
        spine3=("mid", "Chest2", "Neck"), left_foot="LeftToe", right_foot="RightToe", neck="Neck",
        left_collar=("lerp", "LeftCollar", "LeftShoulder", 0.5), right_collar=("lerp", "RightCollar", "RightShoulder", 0.5),
        head="Head", left_shoulder="LeftShoulder", right_shoulder="RightShoulder", left_elbow="LeftElbow",
        right_elbow="RightElbow", left_wrist="LeftWrist", right_wrist="RightWrist",
    ),
    leaf_sources={10: "LeftToe", 11: "RightToe", 15: "Head", 20: "LeftWrist", 21: "RightWrist"},
)

#: Our own SMPL-22 BVH (what `dreamor convert IN.npz OUT.bvh` writes), so it reads back.
SMPL22 = SkeletonMap(
    "smpl22", 0.01, JOINT_NAMES, leaf_sources={j: JOINT_NAMES[j] for j in (10, 11, 15, 20, 21)}
)

SKELETON_MAPS: tuple[SkeletonMap, ...] = (BANDAI, LAFAN1, CMU_MOTIONBUILDER, CMU_DAZ, CMU_3DSMAX, SMPL22)


def detect_skeleton(bvh: BVH) -> SkeletonMap:
    """The map whose joints the BVH has; else an error naming what the closest map misses."""
    names = set(bvh.names)
    for m in SKELETON_MAPS:
        if m.required <= names:
            return m
    best = max(SKELETON_MAPS, key=lambda m: len(m.required & names))
    missing = sorted(best.required - names)
    raise InputFileError(
        f"{bvh.path}: unknown skeleton: closest is {best.name}, but joint(s) {', '.join(missing)} are missing "
        f"(supported: Bandai Namco, LAFAN1, CMU (Motionbuilder, Daz and 3dsMax-friendly; PFNN), SMPL-22)"
    )


def _target_positions(m: SkeletonMap, bvh: BVH, pos: np.ndarray) -> np.ndarray:
    """(T, J, 3) source positions -> (T, 22, 3) SMPL targets, same frame and units."""
    idx = {n: i for i, n in enumerate(bvh.names)}
    out = np.empty((pos.shape[0], NUM_JOINTS, 3))
    for j, t in enumerate(m.targets):
        if isinstance(t, str):
            out[:, j] = pos[:, idx[t]]
        elif t[0] == "mid":
            out[:, j] = 0.5 * (pos[:, idx[t[1]]] + pos[:, idx[t[2]]])
        else:  # lerp
            a, b = pos[:, idx[t[1]]], pos[:, idx[t[2]]]
            out[:, j] = a + t[3] * (b - a)
    return out


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotations R (..., 3, 3) minimising sum |R src_k - dst_k|^2; src, dst: (..., K, 3)."""
    h = np.swapaxes(src, -1, -2) @ dst  # (..., 3, 3) = sum_k src_k dst_k^T
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.ones(h.shape[:-1])
    fix[..., 2] = d
    return np.swapaxes(vt, -1, -2) @ (fix[..., :, None] * np.swapaxes(u, -1, -2))


def _project_so3(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r


# Hinge axes in SMPL's rest frame: knees flex backwards, elbows forwards (+Z).
_HINGES = {1: (4, 7, np.array([1.0, 0, 0])), 2: (5, 8, np.array([1.0, 0, 0])),
           16: (18, 20, np.array([0, -1.0, 0])), 17: (19, 21, np.array([0, 1.0, 0]))}
_CONSTELLATIONS = (0, 9)  # joints whose children form a rigid constellation
FLOOR_PERCENTILE = 5.0  # of the still lowest-toe heights; see floor_height


def _constellation_offsets(targets: np.ndarray, j: int) -> np.ndarray:
    """Mean child offsets (K, 3) of joint j in a body-fixed frame, turned to best match SMPL."""
    kids = list(CHILDREN[j])
    x = targets[:, kids] - targets[:, j : j + 1]  # (T, K, 3)
    ref = x[0]
    r = kabsch(np.broadcast_to(ref, x.shape), x)  # per frame ref -> x_t
    mean = np.mean(np.einsum("tji,tkj->tki", r, x), axis=0)  # r^T x_t, averaged
    smpl = SMPL_NEUTRAL_REST_JOINTS[kids] - SMPL_NEUTRAL_REST_JOINTS[j]
    c = kabsch(mean[None], smpl[None])[0]
    return mean @ c.T


def skeleton_from_targets(targets: np.ndarray) -> np.ndarray:
    """(T, 22, 3) target joints (metres) -> (22, 3) rest joints in SMPL's zero pose."""
    smpl_off = rest_offsets(SMPL_NEUTRAL_REST_JOINTS)
    off = smpl_off.copy()
    for j in range(1, NUM_JOINTS):
        length = np.mean(np.linalg.norm(targets[:, j] - targets[:, PARENTS[j]], axis=-1))
        off[j] = unit(smpl_off[j]) * length
    for j in _CONSTELLATIONS:
        off[list(CHILDREN[j])] = _constellation_offsets(targets, j)
    rest = np.empty_like(off)
    rest[0] = SMPL_NEUTRAL_REST_JOINTS[0]
    for j in range(1, NUM_JOINTS):
        rest[j] = rest[PARENTS[j]] + off[j]
    return rest


def solve_rotations(targets: np.ndarray, rest: np.ndarray, leaf_globals: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Global rotations (T, 22, 3, 3) that point the rest skeleton's bones at the targets.

    targets: (T, 22, 3) world joints; rest: (22, 3); leaf_globals: SMPL leaf -> (T, 3, 3)
    world rotation of the mapped source joint (for head, wrists, toes).
    """
    t_count = targets.shape[0]
    off = rest_offsets(rest)
    glob = np.empty((t_count, NUM_JOINTS, 3, 3))
    for j in range(NUM_JOINTS):
        kids = CHILDREN[j]
        parent_rot = glob[:, PARENTS[j]] if j > 0 else np.broadcast_to(np.eye(3), (t_count, 3, 3))
        if j in _CONSTELLATIONS:
            dst = targets[:, list(kids)] - targets[:, j : j + 1]
            glob[:, j] = kabsch(np.broadcast_to(off[list(kids)], dst.shape), dst)
        elif kids:
            c = kids[0]
            now = unit(np.einsum("tij,j->ti", parent_rot, off[c]))
            want = unit(targets[:, c] - targets[:, j])
            glob[:, j] = smallest_rotation(now, want) @ parent_rot
            if j in _HINGES:
                glob[:, j] = _hinge_twist(glob[:, j], targets, j, *_HINGES[j])
        elif leaf_globals and j in leaf_globals:
            rel = np.einsum("tji,tjk->tik", parent_rot, leaf_globals[j])  # parent^T source
            calib = _project_so3(np.mean(np.swapaxes(rel, -1, -2), axis=0))
            glob[:, j] = parent_rot @ rel @ calib
        else:
            glob[:, j] = parent_rot
    return glob


def _hinge_twist(rot: np.ndarray, targets: np.ndarray, j: int, c: int, g: int, hinge: np.ndarray) -> np.ndarray:
    """Twist rot (T, 3, 3) about the bone j->c so the child's hinge axis is normal to the limb plane."""
    d1 = unit(targets[:, c] - targets[:, j])
    d2 = unit(targets[:, g] - targets[:, c])
    n = np.cross(d1, d2)
    s = np.linalg.norm(n, axis=-1)
    n = n / np.maximum(s, 1e-12)[:, None]
    a = rot @ hinge
    a = unit(a - np.sum(a * d1, -1, keepdims=True) * d1)
    phi = np.arctan2(np.sum(d1 * np.cross(a, n), -1), np.sum(a * n, -1))
    # Only trust the plane when the limb is clearly bent (15..35 degrees ramp).
    w = np.clip((s - np.sin(np.radians(15))) / (np.sin(np.radians(35)) - np.sin(np.radians(15))), 0.0, 1.0)
    twist = Rotation.from_rotvec(d1 * (w * phi)[:, None]).as_matrix()
    return twist @ rot


def _still_lowest_toe(toe_z: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) toe heights -> the lowest toe of each frame (T,) index and whether it is still (T,) bool (moving
    under 1 cm per 30 Hz frame)."""
    which = toe_z.argmin(axis=1)
    speed = np.abs(np.diff(toe_z, axis=0, prepend=toe_z[:1]))[np.arange(len(toe_z)), which] * (fps / 30.0)
    return which, speed < 0.01


#: a floor tilted up to this (degrees) is a capture's calibration, levelled (the CMU 07 / 08 walks rise 1.2-1.5
#: degrees, 9 cm over 4 m); steeper ground (stairs, ramps) is the motion's own and stays.
MAX_FLOOR_TILT_DEG = 3.0
#: ... and only where the still toes lie on the tilted plane within this (m, RMS) ...
FLOOR_PLANE_FIT_M = 0.02
#: ... and at most this share of their RMS about one level
FLOOR_PLANE_GAIN = 0.6
#: the feet must travel this far (m) along a direction for the floor's slope along it to be measured
FLOOR_SPAN_M = 1.0


def floor_tilt(toes: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2, 3) toe positions (Z up, m) -> the rotation (3, 3) that levels the floor the feet stand on (identity
    where it is level or cannot be told). The floor is the plane through the still lowest toe, its slope fitted
    along each principal direction the still toe spans over FLOOR_SPAN_M; it is levelled only where it is
    tilted at most MAX_FLOOR_TILT_DEG and fits the still toes much better than one level (FLOOR_PLANE_FIT_M,
    FLOOR_PLANE_GAIN)."""
    which, still = _still_lowest_toe(toes[..., 2], fps)
    p = toes[np.arange(len(toes)), which][still]
    if len(p) < max(10, 0.05 * len(toes)):
        return np.eye(3)
    xy = p[:, :2] - p[:, :2].mean(0)
    axes = np.linalg.svd(xy, full_matrices=False)[2]
    axes = [a for a in axes if np.ptp(xy @ a) >= FLOOR_SPAN_M]
    if not axes:
        return np.eye(3)
    design = np.column_stack([np.ones(len(p))] + [xy @ a for a in axes])
    coef = np.linalg.lstsq(design, p[:, 2], rcond=None)[0]
    fit = np.sqrt(np.mean((p[:, 2] - design @ coef) ** 2))
    level = np.std(p[:, 2])
    gradient = sum(c * a for c, a in zip(coef[1:], axes))
    tilt = np.degrees(np.arctan(np.linalg.norm(gradient)))
    if tilt > MAX_FLOOR_TILT_DEG or fit > FLOOR_PLANE_FIT_M or fit > FLOOR_PLANE_GAIN * level:
        return np.eye(3)
    normal = unit(np.array([-gradient[0], -gradient[1], 1.0]))
    return smallest_rotation(normal, np.array([0.0, 0.0, 1.0]))


def floor_height(toe_z: np.ndarray, fps: float) -> float:
    """Floor estimate (m) from (T, 2) toe heights: a low percentile of the lowest toe while it is still."""
    low = toe_z.min(axis=1)
    _, still = _still_lowest_toe(toe_z, fps)
    # A low percentile, not the median: feet may rest on a stool rung or a stair for
    # most of a take, while the floor is the lowest level a foot stands still on.
    if still.sum() >= max(3, 0.05 * len(low)):
        return float(np.percentile(low[still], FLOOR_PERCENTILE))
    return float(np.percentile(low, 2))


#: frame 0 is the skeleton's rest pose when no joint is turned further than this from it, degrees (the frame
#: CMU Daz-friendly exports insert: body joints ~0, fingers up to ~10)
REST_FRAME_MAX_DEG = 20.0


def is_rest_frame(rot: np.ndarray) -> bool:
    """Global joint rotations (J, 3, 3) of one frame -> whether every joint lies within REST_FRAME_MAX_DEG of
    the skeleton's rest orientation."""
    return bool(rotation_angle_deg(rot).max() < REST_FRAME_MAX_DEG)


def bvh_targets(bvh: BVH) -> tuple[SkeletonMap, np.ndarray, np.ndarray]:
    """The BVH's skeleton map, the SMPL-22 joints' target positions (T, 22, 3) in metres, Z up, as captured (floor
    neither levelled nor at 0), and the source joints' global rotations (T, J, 3, 3); an inserted T-pose frame left
    out (``is_rest_frame``)."""
    m = detect_skeleton(bvh)
    pos, rot = bvh_fk(bvh)
    if m.drop_first_frame and len(rot) > 1 and is_rest_frame(rot[0]):
        pos, rot = pos[1:], rot[1:]
    if pos.shape[0] < 1:
        raise InputFileError(f"{bvh.path}: no motion frames after the T-pose frame")
    return m, np.einsum("ij,tkj->tki", Y_UP_TO_Z_UP, _target_positions(m, bvh, pos)) * m.unit_to_m, rot


def retarget_bvh(bvh: BVH, name: str = "", notes: list[str] | None = None) -> Clip:
    """A BVH of a known skeleton -> Clip on SMPL-22 at the file's own frame rate. A first frame that the
    skeleton's exporter inserts as its rest pose (``SkeletonMap.drop_first_frame``) is left out where it is one
    (``is_rest_frame``): the clip is then a frame shorter than the file. A capture floor slightly off level is
    levelled (``floor_tilt``); ``notes`` gets a line for the user when it was."""
    m, targets, rot = bvh_targets(bvh)
    idx = {n: i for i, n in enumerate(bvh.names)}
    fps = bvh.fps
    if abs(fps - round(fps)) < 0.01:
        fps = float(round(fps))
    level = floor_tilt(targets[:, [10, 11]], fps)  # a tilted capture floor levelled, about the feet's mean
    tilt = float(rotation_angle_deg(level))
    if notes is not None:
        file = Path(bvh.path).name or "the BVH"
        if tilt > 0:
            notes.append(f"{file}: its floor was {tilt:.1f} deg off level (the feet rise or sink along the take): "
                         "levelled")
        if len(targets) < bvh.num_frames:
            notes.append(f"{file}: frame 0 is the skeleton's T-pose, not motion: left out, so the clip's frame 0 "
                         f"is the file's frame 1 ({len(targets)} of {bvh.num_frames} frames)")
    centre = targets[:, [10, 11]].reshape(-1, 3).mean(0)
    targets = (targets - centre) @ level.T + centre
    targets[..., 2] -= floor_height(targets[:, [10, 11], 2], fps)

    rest = skeleton_from_targets(targets)
    # Leaves: source world rotations in the Z-up frame (the body's native frame is Y-up), levelled as the joints.
    leaf_globals = {j: level @ Y_UP_TO_Z_UP @ rot[:, idx[src]] for j, src in m.leaf_sources.items()}
    glob = solve_rotations(targets, rest, leaf_globals)
    local = glob.copy()
    for j in range(1, NUM_JOINTS):
        local[:, j] = np.swapaxes(glob[:, PARENTS[j]], -1, -2) @ glob[:, j]
    aa = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(-1, NUM_JOINTS, 3)
    clip = Clip(
        trans=targets[:, 0] - rest[0],
        root_orient=aa[:, 0],
        pose_body=aa[:, 1:].reshape(-1, 63),
        fps=fps,
        rest_joints=rest,
        name=name or m.name,
    )
    return clip
