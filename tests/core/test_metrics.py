"""Evaluation metrics on hand-made motions whose answers are known in closed form."""
import numpy as np
import pytest

from dreamor.body.skeleton import JOINT_GROUPS
from dreamor.evaluate import metrics as M

T = 40


def standing(t: int = T, height: float = 0.5) -> np.ndarray:
    """(t, 22, 3) joints, motionless, every joint at ``height`` m (spread in x so they differ)."""
    j = np.zeros((t, 22, 3))
    j[..., 0] = np.arange(22) * 0.1
    j[..., 2] = height
    return j


def test_position_errors_split_by_visibility_and_legs():
    gt = standing()
    pred = gt.copy()
    hidden = list(JOINT_GROUPS["lower_body"])  # 8 joints
    pred[:, hidden, 0] += 0.03  # 3 cm off, only where hidden
    pred[:, 15, 1] -= 0.04  # head 4 cm off while visible
    vis = np.ones((T, 22), bool)
    vis[:, hidden] = False
    v = M.values(M.clip_metrics(pred, gt, vis))
    assert v["occ_cm"] == pytest.approx(3.0)
    assert v["vis_cm"] == pytest.approx(4.0 / 14)  # one of the 14 visible joints is 4 cm off
    assert v["all_cm"] == pytest.approx((8 * 3.0 + 4.0) / 22)
    assert v["legs_cm"] == pytest.approx(3.0)  # knees, ankles, toes are all among the hidden
    assert v["vtx_cm"] is None and v["contact_acc"] is None


def test_nothing_hidden_gives_no_occluded_error():
    gt = standing()
    v = M.values(M.clip_metrics(gt + 0.01, gt, np.ones((T, 22), bool)))
    assert v["occ_cm"] is None
    assert v["vis_cm"] == pytest.approx(np.sqrt(3.0))  # 1 cm along each axis


def test_contact_accuracy_thresholds_at_one_half():
    labels = np.zeros((4, 9))
    labels[:2] = 1.0
    pred = np.full((4, 9), 0.9)
    assert M.contact_accuracy(pred, labels).value == pytest.approx(0.5)
    pred[2:] = 0.5  # exactly 0.5 is not a contact
    assert M.contact_accuracy(pred, labels).value == pytest.approx(1.0)
    pred[0, :3] = 0.2
    assert M.contact_accuracy(pred, labels).value == pytest.approx(1 - 3 / 36)


def test_acceleration_of_free_fall_and_constant_velocity():
    fps, g = 30.0, 9.81
    t = np.arange(T) / fps
    fall = standing()
    fall[..., 2] += (-0.5 * g * t**2)[:, None]
    assert M.accel_magnitude_ms2(fall, fps).value == pytest.approx(g)
    assert M.accel_magnitude_ms2(fall, fps).count == (T - 2) * 22
    glide = standing()
    glide[..., 0] += (2.0 * t)[:, None]  # 2 m/s, no acceleration
    assert M.accel_magnitude_ms2(glide, fps).value == pytest.approx(0.0, abs=1e-9)
    # the error compares with the ground truth's acceleration, the magnitude does not
    assert M.accel_error_ms2(fall, glide, fps).value == pytest.approx(g)
    assert M.accel_error_ms2(fall, fall, fps).value == pytest.approx(0.0)


def test_acceleration_of_circular_motion_matches_the_discrete_centripetal_value():
    fps, r, w = 30.0, 0.5, 2 * np.pi  # one turn per second
    t = np.arange(T) / fps
    circle = standing()
    circle[..., 0] += (r * np.cos(w * t))[:, None]
    circle[..., 1] += (r * np.sin(w * t))[:, None]
    expected = r * 2 * (1 - np.cos(w / fps)) * fps**2  # -> r w^2 as fps grows
    assert M.accel_magnitude_ms2(circle, fps).value == pytest.approx(expected)
    assert expected == pytest.approx(r * w**2, rel=0.01)


def test_toe_penetration_frequency_and_distance():
    j = standing(height=0.5)
    j[:, [10, 11], 2] = 0.10
    j[: T // 2, 10, 2] = -0.05  # left toe 5 cm under the floor half the time
    # thresholds 0 and 3 cm see 1/4 of the toe-frames, 6..15 cm none: (0.25 + 0.25) / 6
    assert M.penetration_frequency(j).value == pytest.approx(0.5 / 6)
    assert M.penetration_distance_cm(j).value == pytest.approx(5.0 * 0.25)
    j[:, [10, 11], 2] = -5e-7  # resting on the floor (float32 round-off) is not under it
    assert M.penetration_frequency(j).value == 0.0
    assert M.penetration_distance_cm(j).value == pytest.approx(0.0, abs=1e-4)
    j[:1, 10, 2] = -0.001  # 1 mm under counts at threshold 0
    assert M.penetration_frequency(j).value == pytest.approx(1 / (2 * T) / 6)


def test_foot_skate_counts_sliding_low_feet_only():
    j = standing(height=1.0)
    j[:, [7, 8], 2] = 0.07  # ankles below 8 cm
    j[:, [10, 11], 2] = 0.02  # toes below 4 cm
    assert M.foot_skate_cm(j).value == pytest.approx(0.0)  # planted
    assert M.foot_skate_cm(j).count == (T - 1) * 4
    slide = j.copy()
    slide[:, [7, 8, 10, 11], 0] += (np.arange(T) * 0.01)[:, None]  # 1 cm per frame
    assert M.foot_skate_cm(slide).value == pytest.approx(1.0)
    assert M.foot_skate_cm(slide, fps=60.0).value == pytest.approx(2.0)  # 1 cm per 60 Hz frame = 2 per 30 Hz frame
    lifted = slide.copy()
    lifted[:, [7, 8], 2] = 0.2  # ankles in the air: only the toes count
    lifted[:, [10, 11], 0] += (np.arange(T) * 0.01)[:, None]  # toes slide 2 cm per frame
    assert M.foot_skate_cm(lifted).value == pytest.approx(2.0)
    lifted[:, [10, 11], 2] = 0.05
    assert M.foot_skate_cm(lifted).value is None


def test_clips_pool_over_points_not_over_clip_means():
    gt_a, gt_b = standing(10), standing(30)
    a = M.position_error_cm(gt_a + [0.01, 0, 0], gt_a)  # 1 cm, 10 frames
    b = M.position_error_cm(gt_b + [0.05, 0, 0], gt_b)  # 5 cm, 30 frames
    assert (a + b).value == pytest.approx((10 * 1 + 30 * 5) / 40)


def test_perfect_prediction_scores_zero_error_and_full_contact_accuracy():
    gt = standing()
    c = np.random.default_rng(0).integers(0, 2, (T, 9)).astype(float)
    v = M.values(M.clip_metrics(gt, gt, np.ones((T, 22), bool), 30.0, c, c))
    assert v["all_cm"] == 0.0 and v["legs_cm"] == 0.0 and v["contact_acc"] == 1.0 and v["accel_err_ms2"] == 0.0
    assert list(v) == list(M.METRIC_COLUMNS)
