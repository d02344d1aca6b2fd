"""Bodies: size normalisation, random human bodies, and a motion put on another body.

Every user's armature has its own proportions. The networks never see a body's absolute size:
clips are scaled so the leg (hip -> knee -> ankle) is ``REFERENCE_LEG_M`` long before any network
sees them (``body_scale``, ``scale_clip``; a uniformly scaled body is then the same input), and
training puts every window on a random body (``random_body``, ``repose``): bone lengths varied
per segment, rig conventions varied (where the pelvis joint sits relative to the hips, spine and
collar offsets), left and right kept symmetric, the motion re-derived by FK from the same local
rotations, the root path scaled with leg length and the clip put back on the floor.

Rest joints are (..., 22, 3) metres in SMPL's native frame (Y-up, facing +Z, +X = body's left).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .kinematics import forward_kinematics
from .skeleton import MODEL_FPS, NUM_JOINTS, PARENTS, SMPL_NEUTRAL_REST_JOINTS, rest_offsets

#: Leg length (mean of both sides, thigh + shin) every network sees, metres: the Bandai actor's
#: (0.80; CMU Daz-friendly 0.82, CMU Motionbuilder 0.83, SMPL neutral 0.78).
REFERENCE_LEG_M = 0.80
#: (left, right) joint pairs of the SMPL-22 tree.
MIRROR_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))
#: Segments whose length is varied together (child joints of the bones), both sides at once.
SEGMENTS: dict[str, tuple[int, ...]] = {
    "hip_width": (1, 2), "thigh": (4, 5), "shin": (7, 8), "foot": (10, 11), "lower_spine": (3,), "mid_spine": (6,),
    "upper_spine": (9,), "neck": (12,), "head": (15,), "collar": (13, 14), "shoulder": (16, 17),
    "upper_arm": (18, 19), "forearm": (20, 21),
}
_FOOT_JOINTS = [7, 8, 10, 11]


def leg_length(rest_joints):
    """(..., 22, 3) rest joints -> (...) mean over both sides of thigh + shin length (metres)."""
    r = rest_joints
    if isinstance(r, torch.Tensor):
        n = lambda v: v.norm(dim=-1)  # noqa: E731
    else:
        r = np.asarray(r, np.float64)
        n = lambda v: np.linalg.norm(v, axis=-1)  # noqa: E731
    left = n(r[..., 4, :] - r[..., 1, :]) + n(r[..., 7, :] - r[..., 4, :])
    right = n(r[..., 5, :] - r[..., 2, :]) + n(r[..., 8, :] - r[..., 5, :])
    return 0.5 * (left + right)


def body_scale(rest_joints) -> float:
    """How much larger than the reference body a (22, 3) skeleton is (leg length ratio)."""
    s = float(leg_length(rest_joints)) / REFERENCE_LEG_M
    if not np.isfinite(s) or s <= 1e-3:
        raise ValueError("the skeleton has zero-length legs")
    return s


def scale_clip(clip, factor: float):
    """A Clip with every length times ``factor`` (rest joints, trans, joints); rotations unchanged.

    FK of the result is exactly ``factor`` x FK of the input, and the floor (z = 0) stays the floor.
    """
    joints = None if clip.joints is None else clip.joints * factor
    return replace(clip, rest_joints=clip.rest_joints * factor, trans=clip.trans * factor, joints=joints)


# ----------------------------------------------------------------------------- random bodies
@dataclass
class BodyAugment:
    """How training windows are varied: the ranges of the random bodies each is put on (see ``random_body``),
    mirroring and tempo (``data.dataset.WindowSampler``)."""

    #: blend of the clip's own bone offsets towards SMPL neutral's (0 = own rig, 1 = SMPL's).
    smpl_mix: tuple[float, float] = (0.0, 1.0)
    #: every segment's length times a factor in [1 - p, 1 + p] (symmetric left/right).
    proportion: float = 0.12
    #: height of the hip joints relative to the pelvis joint, metres at the reference size
    #: (Bandai -0.02, SMPL -0.09, CMU Motionbuilder -0.12, CMU Daz-friendly +0.02).
    hip_height_m: tuple[float, float] = (-0.13, 0.03)
    #: spine, neck and collar offsets moved by up to this much (up/down, forward/back), metres.
    trunk_jitter_m: float = 0.03
    #: overall size; the networks see size-normalised input, so training needs none (1, 1).
    scale: tuple[float, float] = (1.0, 1.0)
    #: share of windows kept on their own body (size-normalised only).
    p_native: float = 0.15
    #: share of windows mirrored left/right first (``mirror_states``); 0 for validation sets.
    p_mirror: float = 0.0
    #: share of windows played faster or slower: read at a tempo drawn log-uniformly in ``tempo`` (1.25: 1.25 s of
    #: the take in 1 s; the velocities and contact labels re-derived), so the networks meet legs faster (and slower)
    #: than the captured performers moved them; 0 for validation sets.
    p_tempo: float = 0.0
    tempo: tuple[float, float] = (0.8, 1.5)


def _from_offsets(off: np.ndarray) -> np.ndarray:
    rest = np.zeros_like(off)
    rest[0] = off[0]
    for j in range(1, NUM_JOINTS):
        rest[j] = rest[PARENTS[j]] + off[j]
    return rest


def symmetrise(rest_joints: np.ndarray) -> np.ndarray:
    """(22, 3) -> the same body with left and right bone offsets mirrored averages of each other."""
    off = rest_offsets(np.asarray(rest_joints, np.float64).copy())
    flip = np.array([-1.0, 1.0, 1.0])
    for left, right in MIRROR_PAIRS:
        avg = 0.5 * (off[left] + off[right] * flip)
        off[left], off[right] = avg, avg * flip
    return _from_offsets(off)


def normalise_size(rest_joints: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(22, 3) -> the same proportions with leg length ``scale`` x REFERENCE_LEG_M (pelvis kept in place)."""
    off = rest_offsets(np.asarray(rest_joints, np.float64).copy())
    off[1:] *= scale * REFERENCE_LEG_M / float(leg_length(rest_joints))
    return _from_offsets(off)


def random_body(base: np.ndarray, rng: np.random.Generator, cfg: BodyAugment | None = None) -> np.ndarray:
    """A random human body (22, 3) derived from ``base`` (22, 3); see ``BodyAugment``."""
    cfg = cfg or BodyAugment()
    base = np.asarray(base, np.float64)
    if rng.random() < cfg.p_native:
        return normalise_size(base, rng.uniform(*cfg.scale))
    own, smpl = rest_offsets(base.copy()), rest_offsets(SMPL_NEUTRAL_REST_JOINTS.copy())
    a = rng.uniform(*cfg.smpl_mix)
    off = own.copy()
    off[1:] = (1 - a) * own[1:] + a * smpl[1:]
    for joints in SEGMENTS.values():
        off[list(joints)] *= rng.uniform(1 - cfg.proportion, 1 + cfg.proportion)
    for j in (3, 6, 9, 12):
        off[j, 1:] += rng.uniform(-cfg.trunk_jitter_m, cfg.trunk_jitter_m, 2)
    off[[13, 14], 1:] += rng.uniform(-cfg.trunk_jitter_m, cfg.trunk_jitter_m, 2)
    # The pelvis joint moves up or down against the hips; spine1 stays where it was.
    size = float(leg_length(_from_offsets(off))) / REFERENCE_LEG_M
    hip_y = rng.uniform(*cfg.hip_height_m) * size
    shift = off[[1, 2], 1].mean() - hip_y
    off[[1, 2], 1] -= shift
    off[3, 1] = max(off[3, 1] + shift, 0.03 * size)
    return normalise_size(symmetrise(_from_offsets(off)), rng.uniform(*cfg.scale))


def named_body(name: str, own: np.ndarray) -> np.ndarray:
    """'native' (the clip's own body), 'smpl' (SMPL neutral rest joints) or 'xS' (own x S) -> (22, 3)."""
    name = name.strip().lower()
    if name == "native":
        return np.asarray(own, np.float64).copy()
    if name == "smpl":
        return SMPL_NEUTRAL_REST_JOINTS.copy()
    if name.startswith("x"):
        try:
            s = float(name[1:])
        except ValueError:
            s = -1.0
        if s > 0:
            return np.asarray(own, np.float64) * s
    raise ValueError(f"unknown body '{name}'; use native, smpl or xS (the clip's own body scaled by S, e.g. x1.2)")


# ----------------------------------------------------------------------------- motion on another body
def repose(local_rotmats: torch.Tensor, trans: torch.Tensor, rest_old: torch.Tensor,
           rest_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same local rotations on another body -> (trans (..., T, 3), joints (..., T, 22, 3)).

    local_rotmats (..., T, 22, 3, 3); trans (..., T, 3) m; rest_old / rest_new (..., 22, 3).
    The world pelvis path is scaled by the leg-length ratio (about the origin, so the floor
    plane stays), then the motion is shifted vertically so its lowest foot joint over the T frames
    is as high as the old motion's (scaled): on the floor where the old one was.
    """
    s = (leg_length(rest_new) / leg_length(rest_old))[..., None]  # (..., 1)
    old = forward_kinematics(local_rotmats, rest_old[..., None, :, :], trans).joints
    pelvis = (rest_old[..., None, 0, :] + trans) * s[..., None]
    trans_new = pelvis - rest_new[..., None, 0, :]
    new = forward_kinematics(local_rotmats, rest_new[..., None, :, :], trans_new).joints
    low_old = old[..., _FOOT_JOINTS, 2].amin(dim=(-1, -2))
    low_new = new[..., _FOOT_JOINTS, 2].amin(dim=(-1, -2))
    dz = (low_old * s[..., 0] - low_new)[..., None]  # (..., 1)
    trans_new[..., 2] += dz
    new[..., 2] += dz[..., None]
    return trans_new, new


def repose_clip(clip, rest_new: np.ndarray):
    """A Clip put on another body (22, 3): same rotations, new trans and joints (FK), contacts relabelled."""
    from .rotations import aa_to_mat
    from .state import contact_labels

    rot = aa_to_mat(torch.as_tensor(clip.local_aa, dtype=torch.float64))
    trans, joints = repose(rot, torch.as_tensor(clip.trans, dtype=torch.float64),
                           torch.as_tensor(clip.rest_joints, dtype=torch.float64),
                           torch.as_tensor(rest_new, dtype=torch.float64))
    joints = joints.numpy()
    return replace(clip, rest_joints=np.asarray(rest_new, np.float64).copy(), trans=trans.numpy(), joints=joints,
                   contacts=contact_labels(joints, clip.fps))


def repose_states(states: torch.Tensor, rest_old: torch.Tensor, rest_new: torch.Tensor,
                  fps: float = MODEL_FPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Training windows put on other bodies: states (B, L, 273), rest_old / rest_new (B, 22, 3)
    -> states (B, L, 273) with trans, joints and their velocities re-derived (rotations unchanged)
    and contact labels (B, L, 9). Velocities are backward differences inside the window, so the
    first frame's are its second's: pass one frame more than needed and drop the first."""
    from .state import STATE_SLICES, contact_labels, state_rotmats

    x = states.double()
    trans, joints = repose(state_rotmats(x), x[..., STATE_SLICES["trans"]], rest_old.double(), rest_new.double())

    def vel(v: torch.Tensor) -> torch.Tensor:
        d = (v[:, 1:] - v[:, :-1]) * fps
        return torch.cat([d[:, :1], d], dim=1)

    flat = joints.flatten(-2)
    out = x.clone()
    out[..., STATE_SLICES["trans"]] = trans
    out[..., STATE_SLICES["trans_vel"]] = vel(trans)
    out[..., STATE_SLICES["joints"]] = flat
    out[..., STATE_SLICES["joints_vel"]] = vel(flat)
    return out.to(states.dtype), torch.from_numpy(contact_labels(joints.numpy(), fps))


#: each joint's mirror image (left <-> right), and each contact label's.
MIRROR_JOINTS: tuple[int, ...] = tuple(
    next((b if a == j else a for a, b in MIRROR_PAIRS if j in (a, b)), j) for j in range(NUM_JOINTS))
MIRROR_CONTACTS: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7)  # pelvis, l/r knee, l/r ankle, l/r toe, l/r wrist


def mirror_states(states: torch.Tensor, contacts: torch.Tensor, rest: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mirror image of a motion (left <-> right): states (..., T, 273), contacts (..., T, 9), rest
    joints (..., 22, 3) -> the same three, mirrored.

    The world and the body frame are reflected in their x (the body's left) axes, W = M = diag(-1, 1, 1):
    joint j of the image is W p_{m(j)}, its local rotation M R_{m(j)} M (the root's W R_0 M), the rest
    joints M rest_{m(j)}; angular velocity, a pseudo-vector, becomes -W w. Mirroring twice is the identity.
    """
    from .rotations import mat_to_r6d
    from .state import STATE_SLICES, state_rotmats

    x = states.clone()
    flip = x.new_tensor([-1.0, 1.0, 1.0])
    rot = state_rotmats(states)[..., list(MIRROR_JOINTS), :, :]
    rot = flip[:, None] * rot * flip  # M R M for every joint (W = M numerically)
    t = x.shape[:-1]
    x[..., STATE_SLICES["root_orient"]] = mat_to_r6d(rot[..., 0, :, :])
    x[..., STATE_SLICES["pose_body"]] = mat_to_r6d(rot[..., 1:, :, :]).reshape(*t, -1)
    x[..., STATE_SLICES["root_orient_vel"]] = -flip * states[..., STATE_SLICES["root_orient_vel"]]
    for key in ("trans", "trans_vel"):
        x[..., STATE_SLICES[key]] = flip * states[..., STATE_SLICES[key]]
    for key in ("joints", "joints_vel"):
        j = states[..., STATE_SLICES[key]].reshape(*t, NUM_JOINTS, 3)[..., list(MIRROR_JOINTS), :]
        x[..., STATE_SLICES[key]] = (flip * j).reshape(*t, -1)
    return x, contacts[..., list(MIRROR_CONTACTS)], flip * rest[..., list(MIRROR_JOINTS), :]
