"""`dreamor convert`: real files convert; bad input gets one clear line, exit 2, no output."""
import subprocess
import sys

import numpy as np
import pytest

from dreamor.body.skeleton import NUM_JOINTS
from dreamor.cli import main
from dreamor.data.clip import load_clip


def _run(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr()


def test_bvh_to_npz_has_the_design_keys_at_30hz(tmp_path, mocap_dir, capsys):
    out = tmp_path / "walk.npz"
    code, _ = _run(capsys, "convert", mocap_dir / "cmu_02_01.bvh", out, "--quiet")
    assert code == 0
    with np.load(out) as f:
        keys = set(f.files)
        t = f["trans"].shape[0]
        assert {"trans", "root_orient", "pose_body", "mocap_framerate", "rest_joints", "joints", "contacts"} <= keys
        assert float(f["mocap_framerate"]) == 30.0
        assert f["pose_body"].shape == (t, 63) and f["joints"].shape == (t, NUM_JOINTS, 3) and f["contacts"].shape == (t, 9)
    assert t == 86  # 343 frames at 120 fps = 2.85 s -> 86 frames at 30 Hz


def test_npz_to_bvh_and_back(tmp_path, mocap_dir, capsys):
    a, b, bvh = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "a.bvh"
    assert _run(capsys, "convert", mocap_dir / "dataset-2_run_normal_001.bvh", a)[0] == 0
    assert _run(capsys, "convert", a, bvh)[0] == 0
    assert bvh.read_text().startswith("HIERARCHY\nROOT pelvis")
    assert _run(capsys, "convert", bvh, b)[0] == 0
    ca, cb = load_clip(a), load_clip(b)
    assert np.abs(ca.joints - cb.joints).max() < 0.005  # metres
    assert np.allclose(ca.rest_joints, cb.rest_joints, atol=1e-4)


def test_amass_style_npz_loads(tmp_path, mocap_dir, capsys):
    a = tmp_path / "a.npz"
    _run(capsys, "convert", mocap_dir / "dataset-2_run_normal_001.bvh", a)
    c = load_clip(a)
    amass = tmp_path / "amass.npz"
    poses = np.concatenate([c.root_orient, c.pose_body, np.zeros((c.num_frames, 90))], axis=1)
    np.savez(amass, poses=poses, trans=c.trans, mocap_framerate=60.0, betas=np.zeros(16), gender="neutral")
    out = tmp_path / "from_amass.npz"
    assert _run(capsys, "convert", amass, out)[0] == 0
    r = load_clip(out)
    assert r.fps == 30.0 and r.num_frames == (c.num_frames - 1) // 2 + 1
    assert np.allclose(r.pose_body, c.pose_body[::2], atol=1e-5)


def test_folder_conversion_mirrors_and_reports(tmp_path, mocap_dir, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("cmu_02_01.bvh", "dataset-2_run_normal_001.bvh"):
        (src / name).write_bytes((mocap_dir / name).read_bytes())
    (src / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    code, cap = _run(capsys, "convert", src, tmp_path / "out", "--workers", "1", "--quiet")
    assert code == 1  # one file failed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cmu_02_01.npz", "dataset-2_run_normal_001.npz"]
    assert "broken.bvh" in cap.err and "Traceback" not in cap.err


BAD_INPUTS = {
    "empty.bvh": (b"", "empty"),
    "not_bvh.bvh": (b"\x89PNG\r\n\x1a\n binary junk", "not a BVH"),
    "notes.bvh": (b"just some text\n", "not a BVH"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_files(tmp_path, capsys, name):
    data, msg = BAD_INPUTS[name]
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "out.npz"
    code, cap = _run(capsys, "convert", src, out)
    assert code == 2
    assert cap.err.startswith("error: ") and msg in cap.err and cap.err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_truncated_bvh(tmp_path, mocap_dir, capsys):
    text = (mocap_dir / "cmu_02_01.bvh").read_text()
    for cut, msg in ((len(text) // 2, "truncated BVH"), (1500, "truncated")):
        src = tmp_path / "t.bvh"
        src.write_text(text[:cut])
        code, cap = _run(capsys, "convert", src, tmp_path / "o.npz")
        assert code == 2 and msg in cap.err, cap.err
        assert not (tmp_path / "o.npz").exists()


def test_a_word_among_the_numbers_is_named_with_its_line(tmp_path, mocap_dir, capsys):
    lines = (mocap_dir / "cmu_02_01.bvh").read_text().split("\n")
    row = lines.index("MOTION") + 10
    lines[row] = lines[row].replace(" ", " abc ", 1)
    src = tmp_path / "garbled.bvh"
    src.write_text("\n".join(lines))
    code, cap = _run(capsys, "convert", src, tmp_path / "o.npz")
    assert code == 2 and f"line {row + 1}: 'abc' is not a number" in cap.err, cap.err


def test_a_word_after_the_declared_frames_is_ignored(tmp_path, mocap_dir, capsys):
    src = tmp_path / "end.bvh"
    src.write_text((mocap_dir / "cmu_02_01.bvh").read_text().rstrip() + "\nEND\n")
    code, cap = _run(capsys, "convert", src, tmp_path / "o.npz")
    assert code == 0, cap.err


def test_a_root_kilometres_away_is_not_a_capture(tmp_path, mocap_dir, capsys):
    lines = (mocap_dir / "dataset-2_run_normal_001.bvh").read_text().split("\n")
    row = lines.index("MOTION") + 20
    values = lines[row].split()
    values[0] = "1e30"  # the root's first position channel
    lines[row] = " ".join(values)
    src = tmp_path / "huge.bvh"
    src.write_text("\n".join(lines))
    code, cap = _run(capsys, "convert", src, tmp_path / "o.npz")
    assert code == 2 and "from the origin at frame 17" in cap.err and "units" in cap.err, cap.err
    assert not (tmp_path / "o.npz").exists()


def test_unknown_skeleton_names_missing_joints(tmp_path, mocap_dir, capsys):
    text = (mocap_dir / "dataset-2_run_normal_001.bvh").read_text().replace("LowerLeg_L", "Knee_Left")
    src = tmp_path / "odd.bvh"
    src.write_text(text)
    code, cap = _run(capsys, "convert", src, tmp_path / "o.npz")
    assert code == 2
    assert "unknown skeleton" in cap.err and "LowerLeg_L" in cap.err and "bandai" in cap.err


def test_npz_missing_keys(tmp_path, capsys):
    src = tmp_path / "bad.npz"
    np.savez(src, trans=np.zeros((5, 3)))
    code, cap = _run(capsys, "convert", src, tmp_path / "o.npz")
    assert code == 2 and "root_orient" in cap.err and "pose_body" in cap.err
    src2 = tmp_path / "corrupt.npz"
    src2.write_bytes(b"PK\x03\x04 nope")
    code, cap = _run(capsys, "convert", src2, tmp_path / "o.npz")
    assert code == 2 and "not a readable .npz" in cap.err
    for content, why in ((b"", "the file is empty"), (b"trans,root_orient\n1,2\n", "not a NumPy .npz archive")):
        src3 = tmp_path / "other.npz"
        src3.write_bytes(content)
        code, cap = _run(capsys, "convert", src3, tmp_path / "o.npz")
        assert code == 2 and f"not a readable .npz clip ({why})" in cap.err and "pickle" not in cap.err


def test_console_script_prints_no_traceback(tmp_path):
    src = tmp_path / "empty.bvh"
    src.write_text("")
    proc = subprocess.run([sys.executable, "-m", "dreamor.cli", "convert", str(src), str(tmp_path / "o.npz")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


def test_occluded_joints_may_be_nan_in_a_clip_file(tmp_path, mocap_dir):
    from dataclasses import replace

    from dreamor.data.clip import save_clip
    from dreamor.data.convert import read_motion, with_joints_and_contacts
    from dreamor.errors import InputFileError

    clip = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_run_normal_001.bvh"))
    vis = np.ones((clip.num_frames, NUM_JOINTS), bool)
    vis[5:10, 4] = False
    joints = clip.joints.copy()
    joints[~vis] = np.nan
    back = load_clip(save_clip(replace(clip, joints=joints, visible=vis), tmp_path / "obs.npz"))
    assert np.isnan(back.joints[~vis]).all() and np.isfinite(back.joints[vis]).all()
    joints[0, 0] = np.nan  # a visible joint: refused
    with pytest.raises(InputFileError, match="NaN"):
        save_clip(replace(clip, joints=joints, visible=vis), tmp_path / "bad.npz")


def test_info_tells_the_tpose_frame_left_out(mocap_dir, capsys):
    code, out = _run(capsys, "info", mocap_dir / "cmu_13_10.bvh.gz")
    assert code == 0
    assert "note: cmu_13_10.bvh.gz: frame 0 is the skeleton's T-pose" in out.out
    code, out = _run(capsys, "info", mocap_dir / "dataset-2_run_normal_001.bvh")
    assert code == 0 and "note:" not in out.out
