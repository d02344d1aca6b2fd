"""`dreamor clean`: the fault detectors on synthetic faults and clean takes, and a library cleaned end to end."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from dreamor.body.skeleton import JOINT_GROUPS
from dreamor.clean.detect import below_floor, detect_faults, frozen, nonfinite, spikes, stretched, world_joints
from dreamor.clean.inject import hold_joints, hold_legs, nan_frames, spike, touched
from dreamor.cli import main
from dreamor.data.convert import read_motion

WALK = "dataset-2_walk-turn-left_normal_001.bvh"
LOWER = list(JOINT_GROUPS["lower_body"])
RIGHT_ARM = [17, 19, 21]  # shoulder, elbow, wrist


@pytest.fixture(scope="module")
def walk(mocap_dir):
    return read_motion(mocap_dir / WALK, fps=None)


def test_clean_takes_raise_no_alarm(mocap_dir):
    """The bundled takes (walks, a run, gestures, CMU walks and jumps, 30 and 120 Hz) are clean."""
    for path in sorted(mocap_dir.glob("*.bvh*")):
        faults = detect_faults(read_motion(path, fps=None))
        assert faults.counts()["hidden"] == 0, (path.name, faults.counts())


def test_held_legs_are_found_and_only_they(walk):
    faulty = hold_legs(walk, 20, 40)
    found = frozen(faulty)
    assert found[21:60][:, LOWER[2:]].all()  # knees down, over the held copies
    assert not found[:20].any() and not found[61:].any()
    assert not found[:, RIGHT_ARM].any()


def test_a_three_frame_spike_is_found(walk):
    faulty = spike(walk, 17, 50, 3, 0.3)
    moved = np.linalg.norm(world_joints(faulty)[50:53, 21] - world_joints(walk)[50:53, 21], axis=-1)
    assert moved.max() == pytest.approx(0.3, abs=0.03)  # the injection does what it says
    found = spikes(world_joints(faulty), faulty.fps)
    assert found[49:54][:, [17, 19, 21]].all()  # the shoulder glitched: it and all below it
    assert not found[:45].any() and not found[60:].any()


@pytest.mark.parametrize("start", [10, 24, 31, 45, 52])
def test_a_spike_on_a_running_arm_is_found(mocap_dir, start):
    """The arm swings 7-21 cm a frame at 30 Hz; a glitch knocks it aside and back. Judged on the steps'
    sizes alone (the frames around must step under half the glitch's) none of these was found."""
    run = read_motion(mocap_dir / "dataset-2_run_normal_001.bvh", fps=None)
    found = spikes(world_joints(spike(run, 17, start, 3, 0.3)), run.fps)
    assert found[start : start + 3][:, [19, 21]].all()
    assert not found[: start - 2].any() and not found[start + 5 :].any()


def test_a_spike_on_a_travelling_body_hides_only_the_limb(walk):
    """The whole body travelling 6-9 cm a frame (a jog at 30 Hz): the glitch's joints are the arm's, not the body's
    (judged on each joint's change of course, not its step, which every joint of a travelling body takes)."""
    for v in (0.06, 0.09):
        moving = replace(walk, trans=walk.trans + np.arange(walk.num_frames)[:, None] * [v, 0.0, 0.0])
        found = spikes(world_joints(spike(moving, 17, 50, 3, 0.3)), moving.fps)
        assert set(np.flatnonzero(found.any(0))) == set(RIGHT_ARM), v
        assert np.flatnonzero(found.any(1)).tolist() == [49, 50, 51, 52, 53]


def test_nan_frames_and_nan_joints_are_found(walk):
    faulty = nan_frames(walk, 30, 5)
    aa = faulty.local_aa
    aa[60, 4] = np.nan  # one knee rotation lost
    faulty = faulty.with_local_aa(aa)
    found = nonfinite(faulty)
    assert found[30:35].all() and not found[35:60].any()
    assert set(np.flatnonzero(found[60])) == {4, 7, 10}  # the knee and what hangs below it


def test_a_nan_in_a_bvh_is_a_lost_frame_for_clean(tmp_path, mocap_dir):
    """A BVH with a NaN among its motion values: refine refuses it, clean gets the frame as lost (whole) and the
    other frames as they were (before, retargeting the NaN failed: 'SVD did not converge')."""
    from dreamor.errors import InputFileError

    lines = (mocap_dir / WALK).read_text().split("\n")
    row = lines.index("MOTION") + 3 + 40  # frame 40
    values = lines[row].split()
    values[10] = "nan"
    lines[row] = " ".join(values)
    src = tmp_path / "nan.bvh"
    src.write_text("\n".join(lines))
    with pytest.raises(InputFileError, match="NaN"):
        read_motion(src, fps=None)
    clip = read_motion(src, fps=None, allow_nonfinite=True)
    clean = read_motion(mocap_dir / WALK, fps=None)
    lost = ~np.isfinite(clip.local_aa).all((1, 2))
    assert np.flatnonzero(lost).tolist() == [40]
    # the retargeting looks at the whole take, so the filled frame moves the others by a hair (< 0.06 degrees, 1 mm)
    assert np.allclose(clip.local_aa[~lost], clean.local_aa[~lost], atol=1e-3)
    assert np.allclose(clip.trans[~lost], clean.trans[~lost], atol=1e-3)
    assert nonfinite(clip)[40].all() and not nonfinite(clip)[~lost].any()


def test_a_nan_in_a_bvh_that_starts_with_a_t_pose(tmp_path, mocap_dir):
    """CMU's Daz-friendly files start with a T-pose frame, which the retargeting drops: the lost frame is still the
    right one (before: a broadcasting error)."""
    import gzip

    lines = gzip.decompress((mocap_dir / "cmu_05_02.bvh.gz").read_bytes()).decode().splitlines()
    row = lines.index("MOTION") + 3 + 51  # file frame 51 = clip frame 50
    values = lines[row].split()
    values[20] = "nan"
    lines[row] = " ".join(values)
    src = tmp_path / "daz_nan.bvh"
    src.write_text("\n".join(lines))
    clip = read_motion(src, fps=None, allow_nonfinite=True)
    assert np.flatnonzero(~np.isfinite(clip.local_aa).all((1, 2))).tolist() == [50]


def test_stretched_bones_and_feet_under_the_floor(walk):
    joints = world_joints(walk).copy()
    assert not stretched(replace(walk, joints=joints)).any()
    joints[40:44, 20] += [0.0, 0.0, 0.12]  # the left wrist 12 cm off its forearm
    found = stretched(replace(walk, joints=joints))
    assert found[40:44, 20].all() and found.sum() == 4
    low = world_joints(walk).copy()
    low[70:73, 10, 2] -= 0.2  # the left toe 20 cm into the floor
    floor = below_floor(low)
    assert floor[70:73, 10].all() and not floor[:70].any() and not floor[73:].any()


def test_detected_mask_covers_what_the_faults_touched(walk):
    faulty = nan_frames(spike(hold_legs(walk, 20, 40), 17, 70, 3, 0.3), 85, 5)
    faults = detect_faults(faulty)
    truth = touched(LOWER[2:], 21, 39, walk.num_frames) | touched([19, 21], 70, 3, walk.num_frames)
    truth |= touched([0], 85, 5, walk.num_frames)
    assert (~faults.visible)[truth].all()
    # besides: the held joints themselves (hips), the glitching joint's parent, one frame either side of a spike
    allowed = touched(LOWER, 20, 40, walk.num_frames) | touched([17], 69, 5, walk.num_frames) | truth
    assert not (~faults.visible & ~allowed).any()
    c = faults.counts()
    assert c["frozen"] > 0 and c["spike"] > 0 and c["nonfinite"] == 5 * 22


# ----------------------------------------------------------------------------- the command
def _save_raw(path, clip) -> None:
    """A clip .npz written as a capture tool would, NaN and all (save_clip refuses non-finite values)."""
    np.savez(path, trans=clip.trans, root_orient=clip.root_orient, pose_body=clip.pose_body,
             mocap_framerate=np.float64(clip.fps), rest_joints=clip.rest_joints)


@pytest.fixture()
def library(tmp_path, mocap_dir, walk):
    lib = tmp_path / "library"
    (lib / "gestures").mkdir(parents=True)
    shutil.copy(mocap_dir / "dataset-2_run_normal_001.bvh", lib)
    shutil.copy(mocap_dir / "dataset-2_raise-up-both-hands_normal_028.bvh", lib / "gestures")
    faulty = nan_frames(spike(hold_legs(walk, 20, 40), 17, 70, 3, 0.3), 85, 5)
    _save_raw(lib / "walk_faulty.npz", faulty)
    (lib / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    return lib


def _report(out):
    return {r["take"]: r for r in json.loads((out / "report.json").read_text())["takes"]}


def test_a_library_is_cleaned_and_a_second_run_skips_it(library, tmp_path, walk, capsys):
    out = tmp_path / "out"
    assert main(["clean", str(library), "--out", str(out), "--preset", "fast", "--quiet"]) == 1  # the corrupt file
    err = capsys.readouterr().err
    assert "failed:" in err and "corrupt.npz" in err and "Traceback" not in err
    rows = _report(out)
    assert rows["corrupt"]["status"] == "failed" and "not a readable" in rows["corrupt"]["reason"]
    for name in ("dataset-2_run_normal_001", "gestures/dataset-2_raise-up-both-hands_normal_028", "walk_faulty"):
        assert rows[name]["status"] == "ok"
        assert (out / f"{name}.npz").is_file() and (out / f"{name}.bvh").is_file()
    assert not (out / "corrupt.npz").exists()
    assert (out / "report.md").read_text().count("| ok |") == 3 and (out / "faults.png").is_file()

    found = rows["walk_faulty"]["detected"]
    assert found["frozen"] > 0 and found["spike"] > 0 and found["nonfinite"] == 5 * 22
    with np.load(out / "walk_faulty.npz") as f:
        joints, visible = f["joints"], f["visible"]
        assert np.isfinite(joints).all() and f["contacts"].shape == (walk.num_frames, 9)
    truth = world_joints(walk)
    faulty = world_joints(replace(hold_legs(walk, 20, 40), joints=None))
    spiked = world_joints(spike(walk, 17, 70, 3, 0.3))
    held = (slice(25, 60), LOWER[2:])
    glitch = (slice(70, 73), [19, 21])

    def err(a, where):
        return float(np.linalg.norm(a[where[0]][:, where[1]] - truth[where[0]][:, where[1]], axis=-1).mean())

    assert err(joints, held) <= 0.5 * err(faulty, held)  # the faults are repaired
    assert err(joints, glitch) <= 0.5 * err(spiked, glitch)
    assert not visible[25:60, 4].any() and visible[:15].all()  # the mask that was used is saved

    assert main(["clean", str(library), "--out", str(out), "--preset", "fast", "--quiet"]) == 1
    again = _report(out)
    assert all(again[n].get("skipped") for n in rows if n != "corrupt")  # finished takes are not redone


def test_a_kept_hold_is_judged_on_the_capture_not_on_the_fill_the_solver_gets(library, tmp_path, walk, monkeypatch):
    """keep_plausible_input gets the take as captured (its held legs held), not the one whose hidden joints were
    interpolated for the refinement: on that one every hold lets go in place."""
    from dreamor.clean import library as clean_library

    got = {}
    real = clean_library.keep_plausible_input
    monkeypatch.setattr(clean_library, "keep_plausible_input",
                        lambda clean, source, *a: real(clean, got.setdefault("source", source), *a))
    out = tmp_path / "out"
    assert main(["clean", str(library / "walk_faulty.npz"), "--out", str(out), "--preset", "fast", "--quiet"]) == 0
    np.testing.assert_allclose(got["source"].local_aa[20:60, LOWER], hold_legs(walk, 20, 40).local_aa[20:60, LOWER],
                               atol=1e-9)


def test_edge_ramp_spreads_a_holds_steps_over_it():
    from dreamor.clean.library import edge_ramp

    v = np.zeros((10, 2))
    v[:3], v[3:7], v[7:] = -1.0, 2.0, 4.0  # held at 2 over frames 3..6, a step of 3 in and 2 out
    held = v[3:7] + edge_ramp(v, 3, 7)
    np.testing.assert_allclose(held[:, 0], np.interp(np.arange(3, 7), [2, 7], [-1.0, 4.0]), atol=1e-12)
    np.testing.assert_allclose(edge_ramp(v, 0, 7)[0], 2 * 1 / 8)  # no step at the clip's start
    np.testing.assert_allclose(edge_ramp(v, 3, 10), -3 * (1 - np.arange(1, 8) / 8)[:, None] * np.ones(2))


def test_an_interrupted_run_resumes(library, tmp_path, monkeypatch):
    from dreamor.clean import command

    (library / "corrupt.npz").unlink()
    out = tmp_path / "out"
    calls = []
    real = command.clean_take

    def interrupted_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(command, "clean_take", interrupted_after_one)
    assert main(["clean", str(library), "--out", str(out), "--preset", "fast", "--quiet", "--workers", "1"]) == 130
    first = [n for n, r in _report(out).items() if r["status"] == "ok"]
    assert len(first) == 1
    monkeypatch.setattr(command, "clean_take", real)
    assert main(["clean", str(library), "--out", str(out), "--preset", "fast", "--quiet", "--workers", "1"]) == 0
    rows = _report(out)
    assert rows[first[0]].get("skipped") and sum(not r.get("skipped") for r in rows.values()) == 2


def test_user_mistakes_are_one_line(tmp_path, capsys):
    assert main(["clean", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["clean", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no motion files" in capsys.readouterr().err
    assert main(["clean", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--occlude", "left_kneee"]) == 2
    assert "unknown joint" in capsys.readouterr().err


@pytest.mark.ray
def test_ray_gives_the_same_outputs_and_resumes(library, tmp_path):
    """On a local Ray instance (`--ray local`): the same takes, rows and repairs as the local pool."""
    pytest.importorskip("ray")
    out = tmp_path / "out"
    args = ["clean", str(library), "--out", str(out), "--preset", "fast", "--quiet", "--ray", "local"]
    assert main(args) == 1  # the corrupt file
    rows = _report(out)
    assert rows["corrupt"]["status"] == "failed" and rows["walk_faulty"]["status"] == "ok"
    assert rows["walk_faulty"]["detected"]["frozen"] > 0 and (out / "walk_faulty.bvh").is_file()
    assert main(args) == 1 and all(r.get("skipped") for n, r in _report(out).items() if n != "corrupt")


def test_a_held_limb_within_the_repairs_doubt_keeps_its_captured_pose(walk):
    """keep_plausible_input: a frozen run whose captured joints lie within the engine's doubt of the repair is put
    back as captured (the dancer holding a leg still); one further off than the doubt keeps the repair."""
    from dreamor.clean.library import edge_ramp, keep_plausible_input
    from dreamor.data.convert import with_joints_and_contacts

    source = with_joints_and_contacts(hold_joints(walk, LOWER[1:], 20, 20))  # the walking legs held: a snap at 40
    aa = source.local_aa.copy()
    aa[20:40, LOWER[1:]] += 0.3  # the "repair" bends the legs away from the capture on frames 20..39
    aa[10:50, [0, 3]] += 0.02  # ... and turns the pelvis and the spine a little (a final fit meeting the seen joints)
    repair = with_joints_and_contacts(source.with_local_aa(aa, joints=None))
    flagged = np.zeros((source.num_frames, 22), bool)
    flagged[20:40, LOWER[1:]] = True
    off = np.linalg.norm(source.joints[20:40] - repair.joints[20:40], axis=-1)[:, LOWER[1:]].mean()
    sure = np.where(flagged, 0.5 * off, 0.0)
    unsure = np.where(flagged, 2.0 * off, 0.0)
    assert keep_plausible_input(repair, source, flagged, sure) == (repair, [])
    assert keep_plausible_input(repair, source, flagged, None) == (repair, [])
    kept, runs_kept = keep_plausible_input(repair, source, flagged, unsure)
    assert runs_kept == [[20, 40, len(LOWER) - 1]]
    ramped = source.local_aa.copy()  # the walking legs' snap at 40 spread over the hold
    ramped[20:40, LOWER[1:]] += edge_ramp(source.local_aa[:, LOWER[1:]], 20, 40)
    np.testing.assert_allclose(kept.local_aa[20:40], ramped[20:40], atol=1e-12)
    want = with_joints_and_contacts(source.with_local_aa(ramped, joints=None)).joints
    np.testing.assert_allclose(kept.joints[20:40], want[20:40], atol=1e-6)  # hung from the captured pelvis
    np.testing.assert_array_equal(kept.local_aa[:20], repair.local_aa[:20])
    np.testing.assert_array_equal(kept.local_aa[40:], repair.local_aa[40:])


def test_a_limb_held_still_that_lets_go_in_place_keeps_its_captured_pose(walk):
    """released_in_place: a held limb that snaps when the capture resumes was lost (the repair stays); one whose
    capture goes on from the held pose was really held still (05_04's dancer): the input is kept, even where
    the engine is sure of its repair."""
    from dreamor.clean.library import keep_plausible_input, released_in_place
    from dreamor.data.convert import with_joints_and_contacts

    legs = np.array(LOWER)
    lost = with_joints_and_contacts(hold_joints(walk, legs, 20, 20))
    assert not released_in_place(lost, legs, 20, 40)
    aa = walk.local_aa.copy()
    aa[:, legs] = aa[0, legs]  # legs still from the start, held 20..39, then moving off slowly from frame 40
    aa[40:, legs] += 0.002 * np.arange(walk.num_frames - 40)[:, None, None]
    still = with_joints_and_contacts(walk.with_local_aa(aa, joints=None))
    assert released_in_place(still, legs, 20, 40)
    assert not released_in_place(still, legs, 20, walk.num_frames)  # held to the end: nothing to tell by
    stride = walk.local_aa.copy()  # walking legs held 20..39, then walking on from the held pose (frame 19)
    stride[20:40, legs] = stride[19, legs]
    stride[40:, legs] = walk.local_aa[19 : walk.num_frames - 21, legs]
    periodic = with_joints_and_contacts(walk.with_local_aa(stride, joints=None))
    assert not released_in_place(periodic, legs, 20, 40)  # a stride later the walking legs meet the held pose
    bent = still.local_aa.copy()
    bent[20:40, legs] += 0.3
    repair = with_joints_and_contacts(still.with_local_aa(bent, joints=None))
    flagged = np.zeros((walk.num_frames, 22), bool)
    flagged[20:40, legs] = True
    kept, runs_kept = keep_plausible_input(repair, still, flagged, np.where(flagged, 1e-3, 0.0))
    assert runs_kept == [[20, 40, len(legs)]]
    np.testing.assert_allclose(kept.joints[20:40], still.joints[20:40], atol=1e-6)


def test_doubt_runs_name_the_frames_in_doubt():
    from dreamor.clean.library import DOUBT_M, doubt_runs

    u = np.zeros((50, 22))
    u[10:20, 4] = DOUBT_M + 0.05
    u[30:35, 5] = DOUBT_M / 2
    got = doubt_runs(u)
    assert got["runs"] == [[10, 20]] and got["max_cm"] == pytest.approx(100 * (DOUBT_M + 0.05))
    assert doubt_runs(np.zeros((5, 22))) == {} and doubt_runs(None) == {}


def test_a_run_without_faults_leaves_no_earlier_fault_plot(tmp_path):
    from dreamor.clean.report import write_report

    (tmp_path / "faults.png").write_bytes(b"an earlier run's plot")
    rows = [{"take": "a", "source": "a.npz", "status": "failed", "reason": "not a readable .npz clip"}]
    write_report(tmp_path, rows, {"occlude": "auto", "preset": "fast", "device": "cpu"}, 1.0, 1)
    assert (tmp_path / "report.json").is_file() and not (tmp_path / "faults.png").exists()
