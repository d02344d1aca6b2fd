"""Evaluation metrics of the DREAMoR paper (Sec. 4.2, Table 1), following HuMoR's evaluation code
(``humor/fitting/eval_utils.py``) where the paper is terse.

Every metric returns a ``Mean`` (a sum and a count) so that clips pool as HuMoR pools them:
the reported value is the mean over all points of all clips, not a mean of per-clip means.

Positions: ``joints`` (T, 22, 3) metres, Z-up world, floor z = 0, 30 Hz unless ``fps`` says.

- ``vis_cm`` / ``occ_cm`` / ``all_cm``: mean Euclidean joint error (cm) over visible, hidden
  and all (frame, joint) pairs. ``legs_cm``: over knees, ankles and toes (SMPL 4, 5, 7, 8, 10, 11,
  HuMoR's "legs"), all frames. ``vtx_cm``: the same over SMPL mesh vertices (needs a model).
- ``contact_acc``: share of the (frame, contact joint) pairs where the predicted contact
  (c > 0.5) equals the ground-truth label, over the 9 contact joints.
- ``accel_ms2``: acceleration *magnitude* of the predicted joints (m/s^2), mean over joints and
  frames 1..T-2, central second difference (x[t-1] - 2 x[t] + x[t+1]) * fps^2 - the paper's
  "mean per-joint accelerations" and HuMoR's ``accel_mag``; compare with the clean clips' value.
  ``accel_err_ms2`` (extra): magnitude of the difference to the ground truth's acceleration.
- ``pen_freq``: for the two toe joints (SMPL 10, 11), the fraction of toe-frames below the
  floor by more than d, averaged over d in {0, 3, 6, 9, 12, 15} cm (a fraction, not %). A toe
  counts from 0.1 mm under the floor, so float32 round-off of a foot resting on it does not.
- ``pen_dist_cm``: mean over all toe-frames of max(0, -z) in cm (non-penetrating frames count 0,
  as the paper defines it; HuMoR's ``ground_pen_dist_normalized``).
- ``skate_cm`` (not in the paper): foot skating, the mean horizontal displacement (cm per
  frame at 30 Hz) of the ankles and toes between consecutive frames where that joint is in
  ground contact by height in both (below 8 cm for ankles, 4 cm for toes: HuMoR's contact
  heights). A planted foot scores 0; sliding scores its slide per frame.
- ``leg_speed`` (issue #28): how much the hidden joints move, relative to the pelvis, against the truth: the mean
  root-relative speed of the hidden joint-frames of the prediction over the ground truth's, per clip (clips whose
  hidden joints move under 1 mm/frame in truth left out), averaged over clips. 1 = as lively as the capture;
  a damped average answer scores below.
- ``best_cm``, ``spread_cm``, ``doubt_cm`` (with ``--samples N``): the hidden-joint error of the best of the N
  completions per clip; the mean distance between the hidden joints of every pair of completions; the engine's
  predicted doubt (``uncertainty``) averaged over the hidden joint-frames. Calibration (the report): Spearman
  correlation over clips of ``doubt_cm`` with ``occ_cm``, and which clips over 20 cm real error were flagged
  (``doubt_cm`` >= ``DOUBT_FLAG_CM``).
- ``pin_cm`` (with ``--pin-every``): mean error of the pinned joints (the animator's pose keys);
  ``vis_cm`` and ``occ_cm`` then leave the pinned joint-frames out (``occ_cm``: hidden between keys).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..body.skeleton import CONTACT_HEIGHT_M, CONTACT_JOINTS, JOINT_GROUPS, MODEL_FPS

PEN_THRESHOLDS_M = (0.0, 0.03, 0.06, 0.09, 0.12, 0.15)
PEN_TOLERANCE_M = 1e-4  # round-off of joints computed in float32 (feet resting at z = 0)
TOE_JOINTS = (10, 11)
FOOT_JOINTS = (7, 8, 10, 11)
#: Contact heights of the foot joints (ankles 8 cm, toes 4 cm), from CONTACT_HEIGHT_M.
FOOT_HEIGHT_M = np.array([CONTACT_HEIGHT_M[CONTACT_JOINTS.index(j)] for j in FOOT_JOINTS])
SKATE_REF_FPS = MODEL_FPS

#: Report order and the paper's column name of each metric.
METRIC_COLUMNS: dict[str, str] = {
    "vis_cm": "Vis", "occ_cm": "Occ", "all_cm": "All", "legs_cm": "Legs", "vtx_cm": "Vtx",
    "contact_acc": "Contact", "accel_ms2": "Accel", "pen_freq": "Freq", "pen_dist_cm": "Dist",
    "skate_cm": "Skate", "accel_err_ms2": "AccelErr", "pin_cm": "Pin", "leg_speed": "LegSpeed",
    "best_cm": "BestOfN", "spread_cm": "Spread", "doubt_cm": "Doubt",
}
#: a clip is flagged as doubtful when its hidden joints' mean predicted doubt reaches this (cm).
DOUBT_FLAG_CM = 10.0
#: clips whose hidden joints really are this far off (cm) should all be flagged.
BAD_CLIP_CM = 20.0
#: Metrics that need no ground truth (they also describe the clean clips).
PLAUSIBILITY = ("accel_ms2", "pen_freq", "pen_dist_cm", "skate_cm")


@dataclass
class Mean:
    """A pooled mean: ``total`` over ``count`` points; ``value`` is None when nothing was counted."""

    total: float = 0.0
    count: int = 0

    def __add__(self, other: "Mean") -> "Mean":
        return Mean(self.total + other.total, self.count + other.count)

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None

    @classmethod
    def of(cls, values: np.ndarray) -> "Mean":
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.sum()), int(values.size))


def joint_errors_cm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(T, J, 3), (T, J, 3) metres -> (T, J) Euclidean error in cm."""
    return np.linalg.norm(np.asarray(pred) - np.asarray(gt), axis=-1) * 100.0


def position_error_cm(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> Mean:
    """Mean per-point position error (cm) of (T, N, 3) points over the (T, N) ``mask`` (all if None)."""
    err = joint_errors_cm(pred, gt)
    return Mean.of(err if mask is None else err[np.asarray(mask, bool)])


def contact_accuracy(pred_contacts: np.ndarray, gt_contacts: np.ndarray, threshold: float = 0.5) -> Mean:
    """(T, 9) predicted contact probabilities vs (T, 9) labels -> share classified right (c > 0.5 = contact)."""
    return Mean.of((np.asarray(pred_contacts) > threshold) == (np.asarray(gt_contacts) > threshold))


def acceleration_ms2(joints: np.ndarray, fps: float = MODEL_FPS) -> np.ndarray:
    """(T, J, 3) metres -> (T-2, J, 3) central second differences in m/s^2."""
    j = np.asarray(joints, dtype=np.float64)
    return (j[:-2] - 2.0 * j[1:-1] + j[2:]) * fps**2


def accel_magnitude_ms2(joints: np.ndarray, fps: float = MODEL_FPS) -> Mean:
    """Mean per-joint acceleration magnitude (m/s^2) over frames 1..T-2 (HuMoR ``accel_mag``)."""
    return Mean.of(np.linalg.norm(acceleration_ms2(joints, fps), axis=-1))


def accel_error_ms2(pred: np.ndarray, gt: np.ndarray, fps: float = MODEL_FPS) -> Mean:
    """Mean per-joint magnitude of (pred acceleration - gt acceleration), m/s^2."""
    return Mean.of(np.linalg.norm(acceleration_ms2(pred, fps) - acceleration_ms2(gt, fps), axis=-1))


def penetration_frequency(joints: np.ndarray, thresholds_m=PEN_THRESHOLDS_M) -> Mean:
    """Fraction of toe-frames with z < -d, averaged over thresholds d (equal counts per d)."""
    z = np.asarray(joints)[:, list(TOE_JOINTS), 2]
    return Mean(float(sum((z < -d - PEN_TOLERANCE_M).sum() for d in thresholds_m)), z.size * len(thresholds_m))


def penetration_distance_cm(joints: np.ndarray) -> Mean:
    """Mean toe penetration depth in cm over all toe-frames; frames above the floor count 0."""
    z = np.asarray(joints)[:, list(TOE_JOINTS), 2]
    return Mean.of(np.maximum(0.0, -z) * 100.0)


def foot_skate_cm(joints: np.ndarray, fps: float = MODEL_FPS) -> Mean:
    """Mean horizontal slide (cm per 30 Hz frame) of ankles/toes while low enough to be in contact."""
    f = np.asarray(joints, dtype=np.float64)[:, list(FOOT_JOINTS)]
    low = f[..., 2] < FOOT_HEIGHT_M
    both = low[1:] & low[:-1]
    slide = np.linalg.norm(np.diff(f[..., :2], axis=0), axis=-1) * (fps / SKATE_REF_FPS) * 100.0
    return Mean.of(slide[both])


def root_relative_speed(joints: np.ndarray, hidden: np.ndarray) -> float:
    """Mean speed (m/frame) of the joints relative to the pelvis over frames where a joint is hidden in both
    neighbouring frames: joints (T, 22, 3), hidden (T, 22) bool; 0 when none."""
    rel = np.asarray(joints, np.float64) - np.asarray(joints, np.float64)[:, :1]
    speed = np.linalg.norm(np.diff(rel, axis=0), axis=-1)
    both = hidden[1:] & hidden[:-1]
    return float(speed[both].mean()) if both.any() else 0.0


def leg_speed_ratio(pred: np.ndarray, gt: np.ndarray, hidden: np.ndarray, min_speed: float = 1e-3) -> Mean:
    """This clip's ``leg_speed`` (one value), or nothing when the truth's hidden joints barely move."""
    truth = root_relative_speed(gt, hidden)
    return Mean.of([root_relative_speed(pred, hidden) / truth]) if truth >= min_speed else Mean()


def sample_metrics(samples: np.ndarray, gt: np.ndarray, hidden: np.ndarray) -> dict[str, Mean]:
    """``best_cm`` and ``spread_cm`` of (N, T, 22, 3) completions against (T, 22, 3), over (T, 22) hidden."""
    if not hidden.any():
        return {"best_cm": Mean(), "spread_cm": Mean()}
    err = np.linalg.norm(samples - gt[None], axis=-1)[:, hidden] * 100.0  # (N, points)
    best = err.sum(1).min()
    n = len(samples)
    pairs = [np.linalg.norm(samples[i] - samples[j], axis=-1)[hidden] * 100.0 for i in range(n) for j in range(i + 1, n)]
    return {"best_cm": Mean(float(best), int(err.shape[1])),
            "spread_cm": Mean.of(np.concatenate(pairs)) if pairs else Mean()}


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation of two equally long sequences (None under 3 values or with no spread)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def plausibility(joints: np.ndarray, fps: float = MODEL_FPS) -> dict[str, Mean]:
    """The metrics that need no ground truth, for a (T, 22, 3) motion."""
    return {
        "accel_ms2": accel_magnitude_ms2(joints, fps),
        "pen_freq": penetration_frequency(joints),
        "pen_dist_cm": penetration_distance_cm(joints),
        "skate_cm": foot_skate_cm(joints, fps),
    }


def clip_metrics(pred_joints: np.ndarray, gt_joints: np.ndarray, visible: np.ndarray, fps: float = MODEL_FPS,
                 pred_contacts: np.ndarray | None = None, gt_contacts: np.ndarray | None = None,
                 pred_vertices: np.ndarray | None = None, gt_vertices: np.ndarray | None = None,
                 pinned: np.ndarray | None = None, samples: np.ndarray | None = None,
                 uncertainty: np.ndarray | None = None) -> dict[str, Mean]:
    """Every metric of one clip.

    pred_joints, gt_joints: (T, 22, 3) m; visible: (T, 22) bool, what the method was shown;
    contacts: (T, 9) (accuracy skipped when either is None); vertices: (T, V, 3) m or None;
    pinned: (T, 22) bool, joints given as pins (``pin_cm``; left out of ``vis_cm`` and ``occ_cm``);
    samples (N, T, 22, 3) and uncertainty (T, 22) m of a method that gives them (else those metrics are empty).
    """
    pins = np.zeros(np.shape(visible), bool) if pinned is None else np.asarray(pinned, bool)
    visible = np.asarray(visible, bool)
    legs = list(JOINT_GROUPS["legs"])
    have_verts = pred_vertices is not None and gt_vertices is not None
    have_contacts = pred_contacts is not None and gt_contacts is not None
    out = {
        "vis_cm": position_error_cm(pred_joints, gt_joints, visible & ~pins),
        "occ_cm": position_error_cm(pred_joints, gt_joints, ~visible & ~pins),
        "pin_cm": position_error_cm(pred_joints, gt_joints, pins) if pins.any() else Mean(),
        "all_cm": position_error_cm(pred_joints, gt_joints),
        "legs_cm": position_error_cm(pred_joints[:, legs], gt_joints[:, legs]),
        "vtx_cm": position_error_cm(pred_vertices, gt_vertices) if have_verts else Mean(),
        "contact_acc": contact_accuracy(pred_contacts, gt_contacts) if have_contacts else Mean(),
        **plausibility(pred_joints, fps),
        "accel_err_ms2": accel_error_ms2(pred_joints, gt_joints, fps),
        "leg_speed": leg_speed_ratio(pred_joints, gt_joints, ~visible & ~pins),
        "doubt_cm": Mean.of(np.asarray(uncertainty)[~visible & ~pins] * 100) if uncertainty is not None else Mean(),
        **(sample_metrics(np.asarray(samples), gt_joints, ~visible & ~pins) if samples is not None and len(samples) > 1
           else {"best_cm": Mean(), "spread_cm": Mean()}),
    }
    return {k: out[k] for k in METRIC_COLUMNS}


def values(means: dict[str, Mean]) -> dict[str, float | None]:
    """{name: Mean} -> {name: value or None}."""
    return {k: m.value for k, m in means.items()}
