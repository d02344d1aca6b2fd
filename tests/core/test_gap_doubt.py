"""The doubt of joints filled by splines (``refine.gap_doubt``): zero where seen, growing into a gap, larger for a
joint that was accelerating, bounded."""
import numpy as np

from dreamor.refine.gap_doubt import MOST, spline_doubt


def _swing(amplitude: float, t: int = 90, fps: float = 30.0) -> np.ndarray:
    x = np.zeros((t, 22, 3))
    x[:, :, 0] = amplitude * np.sin(2 * np.pi * np.arange(t) / fps)[:, None]
    return x


def test_doubt_is_zero_where_seen_and_peaks_mid_gap():
    vis = np.ones((90, 22), bool)
    vis[40:47, 5] = False
    d = spline_doubt(_swing(0.3), vis, 30.0)
    assert (d[vis] == 0).all() and (d[40:47, 5] > 0).all()
    assert d[43, 5] == d[40:47, 5].max() and d[43, 5] > 2 * d[40, 5]


def test_an_accelerating_joint_is_more_in_doubt_and_a_still_one_is_not():
    vis = np.ones((90, 22), bool)
    vis[40:47, :] = False  # a lost frame run: every joint
    x = _swing(0.3)
    x[:, 7] = 0.0  # one joint stands still
    x[:, 9] *= 3.0  # one swings three times as far
    d = spline_doubt(x, vis, 30.0)
    assert d[40:47, 7].max() < 1e-9
    np.testing.assert_allclose(d[40:47, 9], 3 * d[40:47, 5], rtol=1e-6)


def test_doubt_is_bounded_and_counts_seconds_not_frames():
    vis = np.ones((400, 22), bool)
    vis[50:350, 0] = False  # a pelvis hidden for 10 s at 30 fps
    d = spline_doubt(_swing(0.5, 400), vis, 30.0)
    assert d.max() <= MOST
    fast = np.ones((360, 22), bool)
    fast[160:188, 5] = False  # the same 7 frames' time at 120 fps
    slow = np.ones((90, 22), bool)
    slow[40:47, 5] = False
    d120 = spline_doubt(_swing(0.3, 360, 120.0), fast, 120.0)
    d30 = spline_doubt(_swing(0.3), slow, 30.0)
    assert abs(d120.max() - d30.max()) < 0.3 * d30.max()


def test_a_gap_at_the_clip_end_is_in_doubt_as_the_joint_moves_on():
    """Held at its last seen position, a joint moving at constant velocity is off by speed x time (the acceleration
    alone said 0)."""
    x = np.zeros((60, 22, 3))
    x[:, :, 0] = np.arange(60)[:, None] * 0.01  # 0.3 m/s at 30 fps
    vis = np.ones((60, 22), bool)
    vis[50:, 4] = False
    d = spline_doubt(x, vis, 30.0)
    np.testing.assert_allclose(d[50:, 4], 0.3 * np.arange(1, 11) / 30.0, rtol=1e-6)


def test_lost_frames_inside_a_completed_gap_take_the_networks_doubt_around_them():
    """Two whole lost frames inside a long hidden run: the networks completed the rest of the run, so those frames
    take the networks' doubt either side, not the splines' doubt of a 60-frame gap."""
    from dreamor.refine.gap_doubt import bridged

    hidden = np.zeros((100, 22), bool)
    hidden[20:80, 4] = True
    completed = hidden.copy()
    completed[50:52] = False  # lost frames: not completed
    network = np.where(completed, 0.04, 0.0)
    splines = np.where(hidden, 0.9, 0.0)
    out = bridged(np.where(completed, network, splines), network, completed, hidden)
    np.testing.assert_allclose(out[20:80, 4], 0.04)
    assert (out[~hidden] == 0).all()
