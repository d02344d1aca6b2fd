"""`dreamor refine` end to end with tiny checkpoints written by the tests."""
import pytest

from dreamor.cli import main
from dreamor.data.clip import load_clip


@pytest.fixture(scope="module")
def ckpts(tiny_checkpoints):
    return ["--vae", str(tiny_checkpoints / "vae-small.pt"), "--diffusion", str(tiny_checkpoints / "diffusion-small.pt")]


def _refine(capsys, *args):
    code = main(["refine", *map(str, args), "--quiet", "--preset", "fast"])
    return code, capsys.readouterr()


def test_refine_bvh_with_occlusion(tmp_path, mocap_dir, ckpts, capsys):
    out = tmp_path / "out.npz"
    code, _ = _refine(capsys, mocap_dir / "dataset-2_run_normal_001.bvh", out, "--occlude", "lower_body",
                      "--frames", "10:40", *ckpts)
    assert code == 0
    clip = load_clip(out)
    assert clip.fps == 30.0 and clip.num_frames == 68  # same frames and rate as the BVH
    assert clip.joints.shape == (68, 22, 3) and clip.contacts.shape == (68, 9)
    assert not clip.visible[10:40, 4].any() and clip.visible[:10].all() and clip.visible[40:].all()


@pytest.mark.parametrize("args, msg", [
    (["--occlude", "left_kneee"], "unknown joint"),
    (["--occlude", "lower_body", "--frames", "50:10"], "the end must come after the start"),
    (["--occlude", "lower_body", "--frames", "10:500"], "outside the clip's 68 frames"),
    (["--occlude", "lower_body", "--frames", "-10:50"], "outside the clip's 68 frames"),  # not "expected one argument"
    (["--device", "foo"], "unknown device 'foo'"),
    (["--frames", "1:5"], "needs --occlude"),
    (["--preset", "turbo"], "unknown preset"),
    (["--set", "weights.sds"], "NAME=VALUE"),
    (["--set", "iters=many"], "expected int"),
    (["--set", "iters=-1"], "iters = -1: must be 0 or more"),
    (["--set", "denoise_steps=0"], "must be at least 1"),
    (["--denoise-steps", "0"], "denoise_steps = 0: must be at least 1"),
    (["--denoise-steps", "-5"], "must be at least 1"),
    (["--set", "t_range=0.5,0.2"], "LOW,HIGH"),
    (["--set", "weights.obs=-1"], "weights.obs = -1.0: must be 0 or more"),
])
def test_refine_bad_options(tmp_path, mocap_dir, ckpts, capsys, args, msg):
    out = tmp_path / "o.npz"
    code = main(["refine", str(mocap_dir / "dataset-2_run_normal_001.bvh"), str(out), "--quiet", *args, *ckpts])
    err = capsys.readouterr().err
    assert code == 2 and msg in err and "Traceback" not in err and not out.exists()


def test_cuda_without_cuda_is_one_line(tmp_path, mocap_dir, ckpts, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch sees a CUDA device")
    out = tmp_path / "o.npz"
    code = main(["refine", str(mocap_dir / "dataset-2_run_normal_001.bvh"), str(out), "--quiet", "--device", "cuda", *ckpts])
    err = capsys.readouterr().err
    assert code == 2 and "sees no CUDA device" in err and "Traceback" not in err and not out.exists()


def test_a_mask_of_the_wrong_shape_is_one_line(tmp_path, mocap_dir, ckpts, capsys):
    """Found by a new-user trial: a 'visible' of the wrong shape raised an IndexError (the joints' finiteness check
    indexed with it before its shape was checked)."""
    import numpy as np

    from dreamor.data.clip import save_clip
    from dreamor.data.convert import read_motion, with_joints_and_contacts

    clip = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_run_normal_001.bvh"))
    src = tmp_path / "bad.npz"
    save_clip(clip, src)
    arrays = dict(np.load(src))
    arrays["visible"] = np.ones((clip.num_frames - 10, 22), bool)
    np.savez(src, **arrays)
    out = tmp_path / "o.npz"
    code = main(["refine", str(src), str(out), "--quiet", "--preset", "fast", *ckpts])
    err = capsys.readouterr().err
    assert code == 2 and "'visible' has shape" in err and "Traceback" not in err and not out.exists()


def test_refine_missing_models_is_clear(tmp_path, mocap_dir, capsys):
    code = main(["refine", str(mocap_dir / "dataset-2_run_normal_001.bvh"), str(tmp_path / "o.npz"), "--quiet",
                 "--vae", str(tmp_path / "none.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "no MotionVAE checkpoint" in err


def _contact_skate_cm(clip) -> float:
    """Mean horizontal slide (cm/frame) of ankles and toes over frames where the clip's contacts hold them down."""
    import numpy as np

    slides = []
    for joint, col in ((7, 3), (8, 4), (10, 5), (11, 6)):
        down = (clip.contacts[1:, col] > 0.5) & (clip.contacts[:-1, col] > 0.5)
        slides.append(np.linalg.norm(np.diff(clip.joints[:, joint, :2], axis=0), axis=-1)[down])
    return float(np.concatenate(slides).mean() * 100)


def test_refine_lock_feet_and_noisy_reach_the_engine(tmp_path, mocap_dir, ckpts, capsys):
    import numpy as np

    src = mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"
    runs = {}
    for name, extra in (("plain", []), ("locked", ["--lock-feet"]), ("noisy", ["--noisy"])):
        code, _ = _refine(capsys, src, tmp_path / f"{name}.npz", "--occlude", "lower_body", *extra, *ckpts)
        assert code == 0
        runs[name] = load_clip(tmp_path / f"{name}.npz")
    # (the tiny untrained models' feet wander tens of cm within a contact: not all of it is in the legs' reach)
    assert _contact_skate_cm(runs["locked"]) < 0.5 * _contact_skate_cm(runs["plain"])
    vis = runs["plain"].visible
    assert np.abs(runs["noisy"].joints - runs["plain"].joints)[vis].max() > 1e-3  # visible joints no longer met


def test_refine_keeps_pins_and_marks_noisy_joints(tmp_path, mocap_dir, ckpts, capsys):
    import numpy as np

    from dreamor.data.clip import save_clip
    from dreamor.data.convert import read_motion, with_joints_and_contacts

    clip = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"))
    pinned = np.zeros((clip.num_frames, 22), bool)
    pinned[20, [7, 8]] = True
    src = tmp_path / "in.npz"
    save_clip(__import__("dataclasses").replace(clip, pinned=pinned), src)
    code, _ = _refine(capsys, src, tmp_path / "out.npz", "--occlude", "lower_body", "--noisy", "left_arm",
                      "--frames", "10:30", *ckpts)
    assert code == 0
    out = load_clip(tmp_path / "out.npz")
    assert (out.pinned == pinned).all()
    assert (out.confidence[10:30, 13] == 0.5).all() and (out.confidence[:10] == 1).all()
    assert np.linalg.norm(out.joints[20, [7, 8]] - clip.joints[20, [7, 8]], axis=-1).max() < 0.005


def test_refine_serve_and_eval_set_the_thread_count(monkeypatch, tmp_path, mocap_dir):
    """--threads reaches torch; without it a process takes half the cores (one on a 2-core machine). Refine sets
    them after its own checks (so a bad option is told before torch loads), serve and eval at once."""
    import torch

    from dreamor import cli, threads
    from dreamor.errors import DreamorError

    seen = []
    monkeypatch.setattr(cli, "_cmd_serve", lambda args: seen.append(torch.get_num_threads()) or 0)
    before = torch.get_num_threads()
    real = threads.use_threads

    def stop_after(n):
        seen.append(real(n))
        raise DreamorError("stopped after the threads were set")

    try:
        assert cli.main(["serve", "--threads", "3"]) == 0
        monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
        assert cli.main(["serve"]) == 0
        monkeypatch.setattr(threads, "use_threads", stop_after)
        src = mocap_dir / "dataset-2_run_normal_001.bvh"
        assert cli.main(["refine", str(src), str(tmp_path / "o.npz"), "--threads", "2"]) == 2
        assert cli.main(["refine", str(src), str(tmp_path / "o.npz"), "--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [3, 1, 2, 1]
    assert threads.default_threads(16) == 8 and threads.default_threads(1) == 1
    with pytest.raises(SystemExit) as exc:
        cli.main(["refine", "in.npz", "out.npz", "--threads", "-3"])
    assert exc.value.code == 2


def test_an_output_that_cannot_be_written_is_told_before_the_refine(tmp_path, mocap_dir, ckpts, capsys, monkeypatch):
    """A file where the output's folder should be: one line, status 2, before any work (the refine is not run)."""
    import dreamor.refine.api as api

    monkeypatch.setattr(api, "refine", lambda *a, **k: pytest.fail("the refine ran"))
    (tmp_path / "taken").write_text("a file, not a folder")
    for out in (tmp_path / "taken" / "o.npz", tmp_path / "taken" / "deeper" / "o.npz"):
        code, cap = _refine(capsys, mocap_dir / "dataset-2_run_normal_001.bvh", out, *ckpts)
        assert code == 2 and "is a file, not a folder" in cap.err and "Traceback" not in cap.err
    (tmp_path / "o.npz").mkdir()
    code, cap = _refine(capsys, mocap_dir / "dataset-2_run_normal_001.bvh", tmp_path / "o.npz", *ckpts)
    assert code == 2 and "is a folder" in cap.err
