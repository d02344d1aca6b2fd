import time

import numpy as np
import torch

from dreamor.body.rotations import aa_to_mat
from dreamor.body.state import STATE_DIM, STATE_SLICES, clip_to_state, contact_labels, motion_to_state, state_to_aa
from dreamor.data.convert import read_motion
from dreamor.data.dataset import WindowSampler, _last_takes, build_motion_data, is_validation, norm_stats


def test_state_layout_and_round_trip(mocap_dir):
    clip = read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh")
    x, joints = clip_to_state(clip)
    assert x.shape == (clip.num_frames, STATE_DIM) and STATE_DIM == 273
    trans, root, body = state_to_aa(x.double())
    assert np.allclose(trans.numpy(), clip.trans, atol=1e-5)
    assert np.allclose(body.numpy(), clip.pose_body, atol=1e-4)
    # velocities are backward differences at 30 Hz
    v = x[:, STATE_SLICES["trans_vel"]].numpy()
    assert np.allclose(v[5], (clip.trans[5] - clip.trans[4]) * 30.0, atol=1e-4)
    assert np.allclose(x[:, STATE_SLICES["joints"]].reshape(-1, 22, 3), joints)


def test_angular_velocity_of_a_steady_spin():
    t = 10
    angles = torch.arange(t, dtype=torch.float64) * 0.1  # rad per frame about z
    aa = torch.zeros(t, 22, 3, dtype=torch.float64)
    aa[:, 0, 2] = angles
    x, _ = motion_to_state(aa_to_mat(aa), torch.zeros(t, 3, dtype=torch.float64), torch.zeros(22, 3, dtype=torch.float64), 30.0)
    w = x[:, STATE_SLICES["root_orient_vel"]]
    assert torch.allclose(w, torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64).expand(t, 3), atol=1e-9)


def test_contact_labels_follow_humor_rule():
    t = 4
    j = np.zeros((t, 22, 3))
    j[:, :, 2] = 1.0  # everything high
    j[:, 10, 2] = 0.03  # left toe low and still -> contact
    j[:, 11, 2] = 0.03
    j[:, 11, 0] = np.arange(t) * 0.01  # right toe low but sliding 1 cm/frame -> no contact
    j[:, 7, 2] = 0.05  # left ankle below 8 cm -> contact
    c = contact_labels(j, fps=30.0)
    assert c.shape == (t, 9)
    assert c[:, 5].all() and not c[:, 6].any() and c[:, 3].all() and not c[:, 0].any()
    # 0.05 m toe: above the 4 cm toe threshold
    j[:, 10, 2] = 0.05
    assert not contact_labels(j)[:, 5].any()


def test_split_holds_out_whole_styles_and_takes():
    assert is_validation("dataset-2_walk_elderly_003")
    assert is_validation("dataset-1_walk-back_old_001")
    assert not is_validation("dataset-2_walk_normal_003")
    names = [f"dataset-2_run_normal_{i:03d}" for i in range(1, 5)] + [f"cmu_13_{i:02d}" for i in range(10)]
    held = _last_takes(names)
    assert "dataset-2_run_normal_004" in held and "dataset-2_run_normal_001" not in held
    assert len([n for n in held if n.startswith("cmu")]) == 2


def test_build_motion_data_caches_and_samples(tmp_path, mocap_dir):
    src = tmp_path / "mocap"
    src.mkdir()
    for name in ("dataset-2_run_normal_001.bvh", "cmu_02_01.bvh", "cmu_13_10.bvh.gz"):
        (src / name).write_bytes((mocap_dir / name).read_bytes())
    t0 = time.perf_counter()
    data = build_motion_data([(src, 1.0)], tmp_path / "cache", workers=1, quiet=True)
    first = time.perf_counter() - t0
    assert data.num_clips == 3 and data.states.shape[1] == STATE_DIM
    assert data.clip_starts[-1] == len(data.states) == len(data.contacts)
    assert list(tmp_path.joinpath("cache").glob("motion_data_*.npz"))
    t0 = time.perf_counter()
    again = build_motion_data([(src, 1.0)], tmp_path / "cache", workers=1, quiet=True)
    assert time.perf_counter() - t0 < first
    assert np.array_equal(again.states, data.states)

    stats = norm_stats(data)
    assert stats.state_mean.shape == (STATE_DIM,) and (stats.delta_std > 0).all()
    sampler = WindowSampler(data, length=10, seed=0)
    x, c, rest = sampler.sample(4)
    assert x.shape == (4, 10, STATE_DIM) and c.shape == (4, 10, 9) and rest.shape == (4, 22, 3)
    # windows never straddle two clips: consecutive trans differ by < 10 cm
    tr = x[..., STATE_SLICES["trans"]]
    assert np.abs(np.diff(tr, axis=1)).max() < 0.1


def test_weights_tilt_sampling(tmp_path, mocap_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "run.bvh").write_bytes((mocap_dir / "dataset-2_run_normal_001.bvh").read_bytes())
    (b / "walk.bvh").write_bytes((mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh").read_bytes())
    data = build_motion_data([(a, 1.0), (b, 10.0)], tmp_path / "cache", workers=1, quiet=True)
    sampler = WindowSampler(data, length=5, seed=1)
    picks = sampler.clips[sampler.rng.choice(len(sampler), 2000, p=sampler.probs)]
    share_b = np.mean(data.names[picks] == "walk")
    assert share_b > 0.9


def test_adding_a_folder_keeps_the_other_folders_split():
    """Every fifth CMU take is chosen within its own folder: extra2/ (or any new folder) must not move takes
    of extra/ between training and validation (today's validation split stays comparable)."""
    extra = [f"cmu_13_{i:02d}" for i in range(10)]
    alone = _last_takes(extra, [1] * len(extra))
    extra2 = [f"cmu_07_{i:02d}" for i in range(7)]
    both = _last_takes(extra + extra2, [1] * len(extra) + [2] * len(extra2))
    assert {n for n in both if n.startswith("cmu_13")} == alone
    assert {n for n in both if n.startswith("cmu_07")} == {"cmu_07_04"}
