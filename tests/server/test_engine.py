"""The real refinement engine behind the server (tiny checkpoints): submit -> progress -> result."""
import numpy as np

from dreamor.data.convert import read_motion


def test_engine_runner_round_trip(start_server, connect, tiny_checkpoints, monkeypatch, mocap_dir):
    from dreamor.server.client import Progress
    from dreamor.server.engine_runner import load_runner

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    runner = load_runner("cpu")
    assert runner.info["vae"] == "vae-small.pt"
    server = start_server(runner)
    client = connect(server, timeout=30)
    clip = read_motion(mocap_dir / "dataset-2_run_normal_001.bvh")
    vis = np.ones((clip.num_frames, 22), bool)
    vis[20:50, [1, 2, 4, 5, 7, 8, 10, 11]] = False
    job = client.submit(clip.trans, clip.root_orient, clip.pose_body, clip.rest_joints, clip.fps, vis,
                        preset="fast", keep_visible=True)
    events = list(job.events(timeout=120))
    result = job.result
    assert any(isinstance(e, Progress) for e in events)
    assert result.joints.shape == (clip.num_frames, 22, 3) and result.contacts.shape == (clip.num_frames, 9)
    # keep_visible: every joint rotation where visible is the captured one
    assert np.allclose(result.pose_body.reshape(-1, 21, 3)[vis[:, 1:]], clip.pose_body.reshape(-1, 21, 3)[vis[:, 1:]],
                       atol=1e-6)


def test_engine_runner_meets_visible_joints_unless_the_job_is_marked_noisy(tiny_checkpoints, monkeypatch, mocap_dir):
    from types import SimpleNamespace

    from dreamor.data.convert import with_joints_and_contacts
    from dreamor.server.engine_runner import load_runner
    from dreamor.server.jobs import JobInput

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    runner = load_runner("cpu")
    clip = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_run_normal_001.bvh"))
    vis = np.ones((clip.num_frames, 22), bool)
    vis[:, [1, 2, 4, 5, 7, 8, 10, 11]] = False
    sink = SimpleNamespace(progress=lambda *a: None, partial=lambda *a: None)
    err = {}
    for noisy in (False, True):
        job = JobInput(trans=clip.trans, root_orient=clip.root_orient, pose_body=clip.pose_body,
                       rest_joints=clip.rest_joints, visible=vis, fps=clip.fps,
                       options={"preset": "fast", "keep_visible": False, "noisy": noisy, "device": None})
        out = runner(job, sink, lambda: False)
        err[noisy] = np.linalg.norm(out.joints - clip.joints, axis=-1)[vis].mean()
    assert err[False] < 1e-5 < 1e-3 < err[True]


def test_engine_runner_returns_pins_where_the_animator_put_them(tiny_checkpoints, monkeypatch, mocap_dir):
    from types import SimpleNamespace

    from dreamor.data.convert import with_joints_and_contacts
    from dreamor.server.engine_runner import load_runner
    from dreamor.server.jobs import JobInput

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    runner = load_runner("cpu")
    clip = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_run_normal_001.bvh"))
    vis = np.ones((clip.num_frames, 22), bool)
    vis[:, [1, 2, 4, 5, 7, 8, 10, 11]] = False
    pinned = np.zeros_like(vis)
    pinned[30, [7, 8, 10, 11]] = True  # feet keyed at frame 30 (their captured pose)
    job = JobInput(trans=clip.trans, root_orient=clip.root_orient, pose_body=clip.pose_body,
                   rest_joints=clip.rest_joints, visible=vis, fps=clip.fps, pinned=pinned,
                   options={"preset": "fast", "keep_visible": True, "noisy": True, "lock_feet": False, "device": None})
    out = runner(job, SimpleNamespace(progress=lambda *a: None, partial=lambda *a: None), lambda: False)
    assert np.linalg.norm(out.joints - clip.joints, axis=-1)[pinned].max() < 0.005
