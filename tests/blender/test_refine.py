"""Refine from Blender against a real backend process (tests/server/serve_tiny.py: the real
server with the tiny honest runner, which smooths the clip with [1, 2, 1] / 4 over time and
returns contacts 0.5 where a contact joint is visible).

Headless Blender has no timers, so ``dreamor.refine`` and ``dreamor.backend_start`` run
synchronously here (their ``execute``); the modal UI path shares every step with it.
"""
from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

SERVER_TESTS = Path(__file__).resolve().parents[1] / "server"
sys.path.insert(0, str(SERVER_TESTS))

from blender_rigs import fcurve_snapshot  # noqa: E402
from server_helpers import spawn_backend  # noqa: E402
from tiny_runner import expected_for  # noqa: E402

from dreamor.body.skeleton import CONTACT_JOINTS, JOINT_GROUPS, JOINT_NAMES  # noqa: E402
from dreamor.data.clip import save_clip  # noqa: E402
from dreamor.data.convert import read_motion  # noqa: E402

pytestmark = pytest.mark.blender

ROOT = Path(__file__).resolve().parents[2]
WALK_BVH = ROOT / "tests" / "data" / "mocap" / "dataset-2_walk-turn-left_normal_001.bvh"
LOWER = list(JOINT_GROUPS["lower_body"])
OCCLUDED = (30, 70)  # frames where the lower body is marked occluded


@pytest.fixture(scope="session")
def walk_npz(tmp_path_factory) -> Path:
    """The real walk, converted by the backend (BVH -> SMPL-22 clip at 30 Hz)."""
    return save_clip(read_motion(WALK_BVH), tmp_path_factory.mktemp("clips") / "walk.npz")


@pytest.fixture()
def prefs(addon):
    p = bpy.context.preferences.addons[addon.__name__].preferences
    yield p
    p.python_path, p.connection_file, p.device, p.start_timeout = "", "", "auto", 120.0


@pytest.fixture()
def backend_mod(sub):
    """The add-on's backend module; whatever a test starts or attaches is stopped after it."""
    mod = sub("backend_process")
    yield mod
    mod.get().stop(timeout=5.0)
    mod.get().message = ""


@pytest.fixture()
def walk(empty_scene, walk_npz):
    """The walk imported as an SMPL armature, lower body marked occluded on OCCLUDED frames."""
    assert bpy.ops.dreamor.import_clip(filepath=str(walk_npz)) == {"FINISHED"}
    lo, hi = OCCLUDED
    assert bpy.ops.dreamor.mark_occluded(frames="CUSTOM", frame_start=lo, frame_end=hi, bones="lower_body") == {"FINISHED"}
    return bpy.context.object


@pytest.fixture()
def tiny(tmp_path, prefs, backend_mod):
    """start(*serve_tiny args) -> the process; the add-on connects through its connection file."""
    procs = []

    def start(*extra: str, connect: bool = True):
        conn = tmp_path / f"backend-{len(procs)}.json"
        procs.append(spawn_backend(conn, *extra))
        prefs.connection_file = str(conn)
        if connect:
            assert bpy.ops.dreamor.backend_start() == {"FINISHED"}
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def fake_python(tmp_path: Path, body: str) -> Path:
    """An executable standing in for the backend's python: ``<it> -m dreamor.cli serve ...`` runs ``body``."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!{sys.executable}\nimport os, sys\nargs = sys.argv[1:]\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def serve_tiny_body(*extra: str) -> str:
    """A fake python body that checks the add-on's command line and runs the tiny server instead."""
    return (
        "assert args[:3] == ['-m', 'dreamor.cli', 'serve'] and '--device' in args, args\n"
        "conn = args[args.index('--connection-file') + 1]\n"
        f"os.execv(sys.executable, [sys.executable, {str(SERVER_TESTS / 'serve_tiny.py')!r}, '--connection-file', conn, *{list(extra)!r}])"
    )


def scene_state(obj) -> tuple:
    """What must not change when a refine fails: actions, the armature's action and its keys."""
    action = obj.animation_data.action
    return sorted(a.name for a in bpy.data.actions), action.name, fcurve_snapshot(action)


def assert_same_state(a: tuple, b: tuple) -> None:
    assert a[:2] == b[:2]
    assert a[2].keys() == b[2].keys() and all(np.array_equal(a[2][k], b[2][k]) for k in a[2])


def test_refine_keep_visible_is_one_undo_step_and_survives_save(walk, tiny, sub, backend_mod, tmp_path):
    aio = sub("armature_io")
    obj, scene = walk, bpy.context.scene
    tiny()
    assert backend_mod.status_line(bpy.context)[0] == "Ready on cpu (attached)"
    scene.dreamor.keep_visible = True
    before = aio.read_animation(obj)
    t = before.num_frames
    assert (before.frame_start, before.frame_end) == (1, t) and not before.visible[OCCLUDED[0] - 1 : OCCLUDED[1], LOWER].any()
    original = obj.animation_data.action
    snapshot = fcurve_snapshot(original)

    bpy.ops.ed.undo_push(message="before refine")
    assert bpy.ops.dreamor.refine("EXEC_DEFAULT", True) == {"FINISHED"}

    new = obj.animation_data.action
    assert new.name == "walk_refined" and aio.source_action(new) == original
    after_snap = fcurve_snapshot(original)  # the original action is untouched
    assert after_snap.keys() == snapshot.keys() and all(np.array_equal(after_snap[k], snapshot[k]) for k in snapshot)
    bag = aio.active_channelbag(obj)
    for name in JOINT_NAMES:  # a key on every frame of the range
        fc = bag.fcurves.find(f'pose.bones["{name}"].rotation_quaternion', index=0)
        np.testing.assert_array_equal([k.co[0] for k in fc.keyframe_points], np.arange(1, t + 1))
    for j in CONTACT_JOINTS:  # contacts keyed on the 9 contact bones
        fc = bag.fcurves.find(f'pose.bones["{JOINT_NAMES[j]}"]["contact"]', index=0)
        assert fc is not None and len(fc.keyframe_points) == t

    after = aio.read_animation(obj)
    expect = expected_for(before.trans, before.root_orient, before.pose_body, before.rest_joints, before.fps, before.visible)
    occ = ~before.visible
    moved = np.linalg.norm(after.joints - before.joints, axis=-1)
    assert moved[before.visible].max() < 0.01  # visible bones stay (< 1 cm; in fact exactly)
    assert moved[occ].max() > 1e-3  # the occluded legs were refined
    exp_rot = sub("rotmath").aa_to_mat(np.concatenate([expect.root_orient[:, None], expect.pose_body.reshape(t, 21, 3)], 1))
    np.testing.assert_allclose(after.local_rotmats[occ], exp_rot[occ], atol=1e-5)  # exactly the backend's answer
    np.testing.assert_allclose(after.local_rotmats[before.visible], before.local_rotmats[before.visible], atol=1e-5)
    np.testing.assert_allclose(after.trans, before.trans, atol=1e-5)  # the pelvis is visible everywhere
    np.testing.assert_allclose(after.contacts, expect.contacts, atol=1e-6)
    np.testing.assert_array_equal(after.visible, before.visible)  # marks carried over

    # One undo restores the previous state; redo brings the refined action back.
    assert bpy.ops.ed.undo() == {"FINISHED"}
    obj = bpy.data.objects["walk"]
    assert obj.animation_data.action.name == "walk" and bpy.data.actions.get("walk_refined") is None
    np.testing.assert_allclose(aio.read_animation(obj).local_rotmats, before.local_rotmats, atol=1e-6)
    assert bpy.ops.ed.redo() == {"FINISHED"}
    obj = bpy.data.objects["walk"]
    assert obj.animation_data.action.name == "walk_refined"

    # Save and reload: marks and contacts survive.
    blend = tmp_path / "refined.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    obj = bpy.data.objects["walk"]
    again = aio.read_animation(obj)
    assert obj.animation_data.action.name == "walk_refined" and bpy.data.actions["walk"].use_fake_user
    np.testing.assert_array_equal(again.visible, before.visible)
    np.testing.assert_allclose(again.contacts, expect.contacts, atol=1e-6)
    assert not bpy.context.window_manager.dreamor_job.running


def test_refine_preview_range_without_keep_visible(walk, tiny, sub):
    aio = sub("armature_io")
    obj, scene = walk, bpy.context.scene
    tiny("--window", "16")  # partial windows on the wire too
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 20, 80
    scene.dreamor.refine_frames, scene.dreamor.keep_visible, scene.dreamor.preset = "PREVIEW", False, "fast"
    before = aio.read_animation(obj)
    assert bpy.ops.dreamor.refine() == {"FINISHED"}
    after = aio.read_animation(obj)
    inside = np.zeros(before.num_frames, bool)
    inside[19:80] = True
    m = inside
    expect = expected_for(before.trans[m], before.root_orient[m], before.pose_body[m], before.rest_joints, before.fps, before.visible[m])
    np.testing.assert_allclose(after.trans[m], expect.trans, atol=1e-5)
    np.testing.assert_allclose(after.root_orient[m], expect.root_orient, atol=1e-4)
    np.testing.assert_allclose(after.local_rotmats[~m], before.local_rotmats[~m], atol=1e-5)  # outside: as captured
    np.testing.assert_allclose(after.trans[~m], before.trans[~m], atol=1e-5)
    moved = np.linalg.norm(after.joints - before.joints, axis=-1)
    assert moved[m][before.visible[m]].max() > 1e-3  # keep visible off: visible bones are smoothed too
    np.testing.assert_allclose(after.contacts[m], expect.contacts, atol=1e-6)
    assert not after.contacts[~m].any()  # the clip had no contacts before


def refine_and_spy(backend_mod) -> list[dict]:
    """Press Refine (it must finish); returns the keyword arguments of every submit the add-on made."""
    client = backend_mod.get().client
    real, calls = client.submit, []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    with mock.patch.object(client, "submit", side_effect=spy):
        assert bpy.ops.dreamor.refine() == {"FINISHED"}
    return calls


def test_pin_pose_keys_pins_that_the_refine_sends_and_clear_pins_removes(walk, tiny, sub, backend_mod):
    aio = sub("armature_io")
    obj, scene = walk, bpy.context.scene
    bone = dict(zip(JOINT_NAMES, aio.rig_from_object(obj).bone_names))
    for pb in obj.pose.bones:
        pb.select = pb.name in (bone["left_knee"], bone["left_ankle"])
    scene.frame_set(50)
    assert bpy.ops.dreamor.pin_pose() == {"FINISHED"}
    anim = aio.read_animation(obj)
    row = 50 - anim.frame_start
    assert anim.pinned is not None and anim.pinned[row, [4, 7]].all() and anim.pinned.sum() == 2  # that frame only
    assert "pinned" in anim.clip_arrays()
    tiny()
    scene.dreamor.preset = "fast"
    calls = refine_and_spy(backend_mod)
    assert len(calls) == 1 and calls[0]["pinned"][row, [4, 7]].all() and calls[0]["pinned"].sum() == 2
    obj = bpy.data.objects["walk"]
    assert aio.read_animation(obj).pinned[row, [4, 7]].all()  # the refined action keeps the pins
    for pb in obj.pose.bones:
        pb.select = False
    assert bpy.ops.dreamor.clear_pins() == {"FINISHED"}  # none selected: every bone
    assert aio.read_animation(obj).pinned is None


def test_mark_noisy_keys_confidence_that_the_refine_sends_and_clear_noisy_removes(walk, tiny, sub, backend_mod):
    aio = sub("armature_io")
    obj, scene = walk, bpy.context.scene
    bone = dict(zip(JOINT_NAMES, aio.rig_from_object(obj).bone_names))
    arm = [bone[n] for n in ("left_shoulder", "left_elbow", "left_wrist")]
    for pb in obj.pose.bones:
        pb.select = pb.name in arm
    assert bpy.ops.dreamor.mark_noisy(frames="CUSTOM", frame_start=10, frame_end=20, confidence=0.3) == {"FINISHED"}
    # A noisy mark on a bone marked occluded on those frames: hidden stays hidden.
    for pb in obj.pose.bones:
        pb.select = pb.name == bone["left_knee"]
    lo = OCCLUDED[0]
    assert bpy.ops.dreamor.mark_noisy(frames="CUSTOM", frame_start=lo - 2, frame_end=lo + 2, confidence=0.6) == {"FINISHED"}
    anim = aio.read_animation(obj)
    conf, f0 = anim.confidence, anim.frame_start
    assert conf is not None and "confidence" in anim.clip_arrays()
    arm_j = [JOINT_NAMES.index(n) for n in ("left_shoulder", "left_elbow", "left_wrist")]
    np.testing.assert_allclose(conf[10 - f0 : 21 - f0][:, arm_j], 0.3, atol=1e-6)
    assert (conf[: 10 - f0][:, arm_j] == 1).all() and (conf[21 - f0 :][:, arm_j] == 1).all()
    knee = JOINT_NAMES.index("left_knee")
    np.testing.assert_allclose(conf[lo - 2 - f0 : lo - f0, knee], 0.6, atol=1e-6)  # seen: its confidence
    assert (conf[lo - f0 : lo + 3 - f0, knee] == 0).all()  # occluded: 0, whatever the noisy mark says
    others = np.ones(22, bool)
    others[arm_j + [knee]] = False
    assert (conf[:, others][anim.visible[:, others]] == 1).all()
    tiny()
    scene.dreamor.preset = "fast"
    calls = refine_and_spy(backend_mod)
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0]["confidence"], conf, atol=1e-6)
    obj = bpy.data.objects["walk"]
    np.testing.assert_allclose(aio.read_animation(obj).confidence, conf, atol=1e-6)  # the refined action keeps them
    for pb in obj.pose.bones:
        pb.select = pb.name == bone["left_knee"]
    assert bpy.ops.dreamor.clear_noisy() == {"FINISHED"}  # the selected bone's only
    after = aio.read_animation(obj).confidence
    assert after is not None and (after[:, knee][anim.visible[:, knee]] == 1).all()
    np.testing.assert_allclose(after[:, arm_j], conf[:, arm_j], atol=1e-6)
    for pb in obj.pose.bones:
        pb.select = False
    assert bpy.ops.dreamor.clear_noisy() == {"FINISHED"}  # none selected: every bone
    assert aio.read_animation(obj).confidence is None


def test_keep_visible_is_enforced_on_write(walk, sub):
    """The backend is asked to keep visible bones; if its answer differs, the write keeps them anyway."""
    aio = sub("armature_io")
    anim = aio.read_animation(walk)
    t = anim.num_frames
    mask = np.ones(t, bool)
    rng = np.random.default_rng(0)
    result = mock.Mock(
        trans=anim.trans + 0.02, root_orient=anim.root_orient + 0.01, pose_body=anim.pose_body + rng.normal(scale=0.05, size=(t, 63)),
        contacts=np.full((t, 9), 0.7),
    )  # fmt: skip
    merged = sub("posemath").merge_result(anim, mask, result, keep_visible=True)
    np.testing.assert_allclose(merged.rotmats[anim.visible], anim.local_rotmats[anim.visible])
    np.testing.assert_allclose(merged.trans, anim.trans)
    assert merged.kept_deg > 0.5 and merged.kept_cm == pytest.approx(100 * np.sqrt(3) * 0.02)
    assert not np.allclose(merged.rotmats[~anim.visible], anim.local_rotmats[~anim.visible])
    loose = sub("posemath").merge_result(anim, mask, result, keep_visible=False)
    assert loose.kept_deg == 0.0 and not np.allclose(loose.rotmats[anim.visible], anim.local_rotmats[anim.visible])


def test_refine_errors_leave_the_scene_unchanged(walk, tiny, prefs, backend_mod, tmp_path):
    obj = walk
    state = scene_state(obj)

    # Backend not running.
    with pytest.raises(RuntimeError, match="the DREAMoR backend is not running.*Backend > Start"):
        bpy.ops.dreamor.refine()
    assert_same_state(scene_state(obj), state)

    # Backend killed mid-job, one Blender started and one it attached to: reported within a
    # second (not after the client's 10 s of silence).
    prefs.python_path, prefs.device = str(fake_python(tmp_path, serve_tiny_body("--window", "8", "--step-s", "0.3"))), "cpu"
    assert bpy.ops.dreamor.backend_start() == {"FINISHED"}
    proc = backend_mod.get().proc
    for kill, why in ((proc.kill, "the backend was killed \\(signal 9\\)"), (None, "the backend process \\d+ is no longer running")):
        if kill is None:
            proc = tiny("--window", "8", "--step-s", "0.3")
            kill = lambda: (proc.kill(), proc.wait())  # noqa: E731 (reaped: it is this test's child)
        threading.Timer(0.5, kill).start()
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=f"backend stopped while refining \\({why}\\); nothing was changed"):
            bpy.ops.dreamor.refine()
        assert time.monotonic() - t0 < 3.0
        assert_same_state(scene_state(obj), state)
        assert backend_mod.status(bpy.context)[:2] == ("stopped", "Not running")
        assert not bpy.context.window_manager.dreamor_job.running

    # Nothing marked and Keep Visible Bones on: the result would be a copy, so it is refused before the backend.
    scene = bpy.context.scene
    assert bpy.ops.dreamor.clear_occluded(frames="SCENE", bones="lower_body") == {"FINISHED"}
    state = scene_state(obj)
    # Lock Feet (on by default) changes nothing either: the visible feet are put where they were captured.
    for lock in (False, True):
        scene.dreamor.keep_visible, scene.dreamor.noisy, scene.dreamor.lock_feet = True, False, lock
        with pytest.raises(RuntimeError, match=r"nothing to refine on frames 1\.\.\d+: no bone is marked occluded or noisy"):
            bpy.ops.dreamor.refine()
        assert_same_state(scene_state(obj), state)
    scene.dreamor.keep_visible = False  # cleaning a whole capture without marks stays possible

    # Not an SMPL armature: the message names the missing bones.
    data = bpy.data.armatures.new("Rig")
    other = bpy.data.objects.new("Rig", data)
    bpy.context.scene.collection.objects.link(other)
    bpy.context.view_layer.objects.active = other
    bpy.ops.object.mode_set(mode="EDIT")
    bone = data.edit_bones.new("Bone")
    bone.tail = (0.0, 0.0, 1.0)
    bpy.ops.object.mode_set(mode="OBJECT")
    tiny()
    with pytest.raises(RuntimeError, match="armature 'Rig' has no bone.*is this an SMPL armature"):
        bpy.ops.dreamor.refine()
    assert_same_state(scene_state(obj), state)
    assert other.animation_data is None


def test_cancel_writes_nothing_and_frees_the_backend(walk, tiny, sub, backend_mod):
    refine = sub("refine_run")
    obj = walk
    state = scene_state(obj)
    tiny("--window", "8", "--step-s", "0.3")
    assert not bpy.ops.dreamor.refine_cancel.poll()

    # The Cancel button, between two steps of a running job (as the modal timer calls them).
    run = refine.RefineRun(obj, bpy.context.scene)
    refine.active = run
    try:
        run.step()
        assert not run.finished and bpy.ops.dreamor.refine_cancel.poll()
        with pytest.raises(RuntimeError, match="a refine is running; wait for it or press Cancel"):
            bpy.ops.dreamor.refine()
        assert bpy.ops.dreamor.refine_cancel() == {"FINISHED"}
        assert run.step() and run.state == "cancelled"
    finally:
        refine.active = None
    with pytest.raises(refine.RefineError, match="cancelled"):
        run.apply(bpy.context)

    # Cancelling the synchronous operator (as the Cancel button would, from another thread here).
    threading.Timer(0.5, lambda: refine.active.request_cancel()).start()
    assert bpy.ops.dreamor.refine() == {"CANCELLED"}
    assert_same_state(scene_state(obj), state)
    b = backend_mod.get()
    deadline = time.monotonic() + 5
    while b.ping() and b.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.ready and not b.busy  # the backend stopped the job and is free


def test_backend_start_and_stop_from_blender(walk, prefs, backend_mod, tmp_path, addon):
    """dreamor.backend_start runs '<python> -m dreamor.cli serve ...' (here a stand-in that runs the tiny server)."""
    import importlib

    prefs.python_path, prefs.device = str(fake_python(tmp_path, serve_tiny_body())), "cpu"
    assert bpy.ops.dreamor.backend_start() == {"FINISHED"}
    b = backend_mod.get()
    assert b.owned and b.proc.poll() is None and b.connection_file.exists()
    assert backend_mod.status_line(bpy.context)[0] == "Ready on cpu"
    assert bpy.ops.dreamor.refine() == {"FINISHED"}  # it does refine
    panels = importlib.import_module(f"{addon.__name__}.panels")
    fake = mock.MagicMock()
    panels.DREAMOR_PT_backend.draw(fake, bpy.context)
    assert "Ready on cpu" in str(fake.mock_calls) and "dreamor.backend_stop" in str(fake.mock_calls)
    fake = mock.MagicMock()
    type(prefs).draw(fake, bpy.context)  # the preferences show the same status and buttons
    assert "Ready on cpu" in str(fake.mock_calls) and "dreamor.backend_stop" in str(fake.mock_calls)

    proc, conn = b.proc, b.connection_file
    assert bpy.ops.dreamor.backend_stop() == {"FINISHED"}
    assert proc.wait(timeout=5) == 0  # it shut down cleanly on request
    assert not conn.exists() and b.state == "stopped"
    assert not conn.parent.exists()  # its temporary folder (stderr log) is gone too
    assert backend_mod.status_line(bpy.context)[0] == "Not running"


def test_backend_start_reports_why_it_cannot_start(prefs, backend_mod, tmp_path):
    prefs.device = "cpu"
    with pytest.raises(RuntimeError, match="no backend Python is set.*Preferences"):
        bpy.ops.dreamor.backend_start()
    prefs.python_path = str(tmp_path / "missing" / "python")
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.dreamor.backend_start()
    prefs.python_path = str(fake_python(tmp_path, "sys.stderr.write('loading...\\nerror: cannot load models/vae.pt (no such file)\\n'); sys.exit(2)"))
    with pytest.raises(RuntimeError, match=r"the backend did not start: cannot load models/vae\.pt \(no such file\)"):
        bpy.ops.dreamor.backend_start()
    state, text, detail = backend_mod.status(bpy.context)
    assert (state, text) == ("stopped", "Not running") and "cannot load models/vae.pt" in detail
    log_dir = backend_mod.get().log_path.parent
    assert log_dir.is_dir()
    backend_mod.shutdown_owned()  # at exit: the failed start's folder is removed
    assert not log_dir.exists()
    prefs.python_path, prefs.connection_file = "", str(tmp_path / "nobody.json")
    with pytest.raises(RuntimeError, match="no connection file at .*nobody.json; is the DREAMoR backend running"):
        bpy.ops.dreamor.backend_start()


def test_real_dreamor_serve_reports_a_missing_engine(prefs, backend_mod):
    """The real `dreamor serve`: a ready backend, or a one-line reason why it cannot start."""
    prefs.python_path, prefs.device, prefs.start_timeout = sys.executable, "cpu", 40.0
    try:
        result = bpy.ops.dreamor.backend_start()
    except RuntimeError as exc:
        text = str(exc)
        assert "\n" not in text.strip() and "Traceback" not in text
        # the engine cannot run here (e.g. no trained models)
        assert "the backend did not start: " in text or "did not become ready" in text
        assert backend_mod.get().proc is None
    else:
        assert result == {"FINISHED"} and backend_mod.get().ready
        assert bpy.ops.dreamor.backend_stop() == {"FINISHED"}


@pytest.mark.skipif(os.name != "posix", reason="fake python is a shebang script")
def test_auto_device_falls_back_to_the_cpu(prefs, backend_mod, tmp_path, monkeypatch):
    """'auto' picks CUDA when a driver is there; a backend that cannot use it is restarted on the CPU."""
    body = "if args[args.index('--device') + 1] == 'cuda':\n    sys.exit('error: CUDA is not available')\n" + serve_tiny_body()
    prefs.python_path, prefs.device = str(fake_python(tmp_path, body)), "auto"
    monkeypatch.setattr(backend_mod, "resolve_device", lambda device: "cuda")
    assert bpy.ops.dreamor.backend_start() == {"FINISHED"}
    b = backend_mod.get()
    assert b.device == "cpu" and "CUDA is not available" in b.message


def test_modal_refine_steps_on_timer_events_and_esc_cancels(walk, tiny, sub, addon):
    """The modal path, driven by fake TIMER/ESC events (headless Blender has no event loop)."""
    from types import SimpleNamespace

    operators, refine = sub("operators"), sub("refine_run")
    op_cls = operators.DREAMOR_OT_refine

    class FakeOp:  # the operator's methods on a plain object (bpy cannot make operator instances)
        _timer = None
        modal, _start, _end, _finish = op_cls.modal, op_cls._start, op_cls._end, op_cls._finish

        def __init__(self):
            self.reports = []

        def report(self, kind, text):
            self.reports.append((set(kind), text))

    timer, esc = SimpleNamespace(type="TIMER", value="NOTHING"), SimpleNamespace(type="ESC", value="PRESS")
    mouse = SimpleNamespace(type="MOUSEMOVE", value="NOTHING")
    tiny("--window", "16", "--step-s", "0.05")
    obj, job = walk, bpy.context.window_manager.dreamor_job

    op = FakeOp()
    assert op._start(bpy.context) is refine.active and job.running
    header = mock.MagicMock()
    operators._draw_status_bar(header, bpy.context)  # the status bar's progress while it runs
    assert "DREAMoR:" in str(header.mock_calls) and "EVENT_ESC" in str(header.mock_calls)
    assert op.modal(bpy.context, mouse) == {"PASS_THROUGH"}  # the UI stays usable
    fractions = []
    deadline = time.monotonic() + 10
    while (ret := op.modal(bpy.context, timer)) == {"PASS_THROUGH"} and time.monotonic() < deadline:
        fractions.append(job.progress)
        time.sleep(0.05)
    assert ret == {"FINISHED"} and obj.animation_data.action.name == "walk_refined"
    assert op.reports[-1][0] == {"INFO"} and "refined frames 1..102" in op.reports[-1][1]
    assert 0 < max(fractions) <= 1 and not job.running and refine.active is None

    before = scene_state(obj)
    op = FakeOp()
    op._start(bpy.context)
    assert op.modal(bpy.context, timer) == {"PASS_THROUGH"}
    assert op.modal(bpy.context, esc) == {"CANCELLED"}
    assert op.reports[-1] == ({"WARNING"}, "refine cancelled; nothing was changed")
    assert_same_state(scene_state(obj), before)
    assert refine.active is None and not job.running


def step_until_previewed(run, timeout: float = 10.0) -> int:
    """Step a running refine (as the modal timer does) until a partial window has arrived."""
    deadline = time.monotonic() + timeout
    while not run.previewed and not run.step() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.previewed and not run.finished, (run.state, run.error)
    return run.previewed


def test_partial_windows_show_as_a_ghost_and_write_nothing(walk, tiny, sub):
    """The windows the backend streams back are previewed (drawn, on the right frames) while the scene stays as it was."""
    refine, overlay, parents = sub("refine_run"), sub("overlay"), list(sub("conventions").PARENTS[1:])
    obj, scene = walk, bpy.context.scene
    tiny("--window", "16", "--step-s", "0.3")
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 20, 80  # read frames 1..102, sent 20..80
    state = scene_state(obj)
    run = refine.active = refine.RefineRun(obj, scene, refine_frames="PREVIEW")
    try:
        a, m = run.anim, run.mask
        assert a.frame_start == 1 and a.metres_per_unit == 1.0
        joints = expected_for(a.trans[m], a.root_orient[m], a.pose_body[m], a.rest_joints, a.fps, a.visible[m]).joints
        k = step_until_previewed(run)
        assert k % 16 == 0 and k < 61 and f"({k} of 61 frames previewed)" in run.label
        np.testing.assert_allclose(run.preview[19 : 19 + k], joints[:k])  # frame 20 is read frame index 19
        assert np.isnan(run.preview[:19]).all() and np.isnan(run.preview[19 + k :]).all()

        scene.frame_current = 20 + 1  # the second frame sent
        seg = overlay.ghost_segments(scene)
        assert seg.shape == (21, 2, 3)
        np.testing.assert_allclose(seg[:, 0], joints[1, parents])
        np.testing.assert_allclose(seg[:, 1], joints[1, 1:])
        gpu, batch_for_shader = mock.MagicMock(), mock.MagicMock()
        overlay._draw_ghost(gpu, batch_for_shader, scene)  # the draw callback draws exactly those lines
        (_shader, kind, attrs), _ = batch_for_shader.call_args
        assert kind == "LINES"
        np.testing.assert_allclose(attrs["pos"], seg.reshape(-1, 3), rtol=1e-6)
        for frame in (19, 20 + k, 81):  # not sent, not arrived yet, not sent
            scene.frame_current = frame
            assert overlay.ghost_segments(scene).shape == (0, 2, 3)
        assert_same_state(scene_state(obj), state)  # previewed, not written

        run.wait()
        assert run.state == "done" and run.previewed == 61
        scene.frame_current = 21
        assert overlay.ghost_segments(scene).shape == (0, 2, 3)  # gone once the job has ended
        assert_same_state(scene_state(obj), state)
    finally:
        refine.active = None


def test_preview_of_a_centimetre_armature_is_in_its_units(empty_scene, tiny, sub):
    from blender_rigs import build_rig, key_random_motion

    from dreamor.body.skeleton import SMPL_NEUTRAL_REST_JOINTS

    refine, overlay = sub("refine_run"), sub("overlay")
    scene = empty_scene
    scene.frame_start, scene.frame_end = 1, 40
    obj = build_rig("smplx", SMPL_NEUTRAL_REST_JOINTS)
    obj.scale = (1.0, 1.0, 1.0)  # a scene modelled in centimetres
    key_random_motion(obj, "smplx", np.arange(1, 41))
    tiny("--window", "8", "--step-s", "0.3")
    run = refine.active = refine.RefineRun(obj, scene)
    try:
        a = run.anim
        assert a.metres_per_unit == pytest.approx(0.01)
        joints_cm = 100.0 * expected_for(a.trans, a.root_orient, a.pose_body, a.rest_joints, a.fps, a.visible).joints
        k = step_until_previewed(run)
        np.testing.assert_allclose(run.preview[:k], joints_cm[:k], atol=1e-9)
        scene.frame_current = 1
        np.testing.assert_allclose(overlay.ghost_segments(scene)[:, 1], joints_cm[0, 1:], atol=1e-9)
        run.wait()
        np.testing.assert_allclose(run.preview, joints_cm, atol=1e-9)
    finally:
        refine.active = None


def refine_operator(sub):
    """The Refine operator's execute path on a stand-in that keeps its reports: (kinds, text) in ``.reports``."""
    op_cls = sub("operators").DREAMOR_OT_refine

    class FakeOp:
        _start, _end, _finish, execute = op_cls._start, op_cls._end, op_cls._finish, op_cls.execute

        def __init__(self):
            self.reports = []

        def report(self, kind, text):
            self.reports.append((set(kind), text))

    return FakeOp()


def test_a_result_with_a_warning_is_written_and_reported_as_a_warning(walk, tiny, sub):
    """The backend's guard (visible joints it could not follow) reaches the animator as a WARNING report;
    the result is still written (one new action), so it can be inspected and undone."""
    tiny("--warning", "the refined motion's visible joints are 5.0 cm from where they were observed")
    op = refine_operator(sub)
    assert op.execute(bpy.context) == {"FINISHED"} and walk.animation_data.action.name == "walk_refined"
    kind, text = op.reports[-1]
    assert kind == {"WARNING"} and "refined frames 1..102" in text and "visible joints are 5.0 cm" in text


def test_the_report_says_how_much_an_earlier_refine_saved(walk, tiny, sub):
    """The real backend reuses windows an earlier refine optimised (a re-refine after one more pin): the report says so."""
    tiny("--metric", "windows=8", "--metric", "windows_reused=3")
    op = refine_operator(sub)
    assert op.execute(bpy.context) == {"FINISHED"}
    kind, text = op.reports[-1]
    assert kind == {"INFO"} and "; 3 of 8 stretches reused from an earlier refine" in text


def test_alternatives_land_as_actions_in_one_undo_step_with_the_doubt_keyed(walk, tiny, sub, capfd):
    """Alternatives = 3: the answer as walk_refined (played), the others as walk_refined_alt2/_alt3 made from the
    captured action (kept by fake users), each the backend's completion; 'doubt' keyed on every bone (0.1 m where
    hidden, 0 where seen); the report names the alternatives, says which kind each is (the backend's first one a
    head of the hypotheses network, the next a draw; also each action's 'dreamor_kind') and where the engine is
    unsure; one undo removes all."""
    aio, overlay, run = sub("armature_io"), sub("overlay"), sub("refine_run")
    obj, scene = walk, bpy.context.scene
    tiny("--metric", "alternative_heads=1")
    scene.dreamor.alternatives, scene.dreamor.keep_visible = 3, True
    before = aio.read_animation(obj)
    bpy.ops.ed.undo_push(message="before refine")
    try:
        assert bpy.ops.dreamor.refine("EXEC_DEFAULT", True) == {"FINISHED"}
    finally:
        scene.dreamor.alternatives = 1
    text = capfd.readouterr().out
    assert (f"2 alternative(s): walk_refined_alt2 ({run.HEAD_KIND}), walk_refined_alt3 ({run.DRAW_KIND})" in text
            and "unsure of frames 30..70" in text)
    assert [bpy.data.actions[n][run.KIND_PROPERTY] for n in ("walk_refined", "walk_refined_alt2", "walk_refined_alt3")] \
        == ["answer", run.HEAD_KIND, run.DRAW_KIND]
    assert obj.animation_data.action.name == "walk_refined"
    expect = expected_for(before.trans, before.root_orient, before.pose_body, before.rest_joints, before.fps,
                          before.visible, samples=3)
    occ = ~before.visible
    rot = sub("rotmath").aa_to_mat
    t = before.num_frames
    for k, name in enumerate(("walk_refined", "walk_refined_alt2", "walk_refined_alt3")):
        action = bpy.data.actions[name]
        assert aio.source_action(action) == bpy.data.actions["walk"]
        assert k == 0 or action.use_fake_user
        obj.animation_data.action = action
        obj.animation_data.action_slot = action.slots[0]
        got = aio.read_animation(obj)
        want = rot(np.concatenate([expect.extra["sample_root_orient"][k][:, None],
                                   expect.extra["sample_pose_body"][k].reshape(t, 21, 3)], 1))
        np.testing.assert_allclose(got.local_rotmats[occ], want[occ], atol=1e-5)  # alternative k's hidden joints
        np.testing.assert_allclose(got.local_rotmats[before.visible], before.local_rotmats[before.visible], atol=1e-5)
    obj.animation_data.action = bpy.data.actions["walk_refined"]
    obj.animation_data.action_slot = bpy.data.actions["walk_refined"].slots[0]
    scene.frame_set(50)  # hidden legs: doubt 0.1 m keyed, a ring each in the overlay; seen bones 0
    assert obj.pose.bones["left_knee"]["doubt"] == pytest.approx(0.1) and obj.pose.bones["head"]["doubt"] == 0.0
    assert len(overlay.doubt_rings(scene)) == len(LOWER)
    scene.frame_set(10)
    assert overlay.doubt_rings(scene) == []
    assert bpy.ops.ed.undo() == {"FINISHED"}  # one undo: every action of the refine is gone
    assert bpy.data.objects["walk"].animation_data.action.name == "walk"
    assert not [a.name for a in bpy.data.actions if a.name.startswith("walk_refined")]


def test_a_second_refine_replaces_the_first_ones_actions_and_all_survive_a_save(walk, tiny, sub, tmp_path, capfd):
    """Refine with 3 alternatives, then again with 2 from the refined action: the new set is named from the capture
    (not walk_refined.001 / walk_refined_alt2_refined...), the earlier set's actions are replaced (no stale _alt3),
    'Use Original Action' is one step away, and every action of the set survives a save while an alternative plays
    (the answer had no fake user: it was lost)."""
    aio = sub("armature_io")
    obj, scene = walk, bpy.context.scene
    tiny()
    try:
        scene.dreamor.alternatives = 3
        assert bpy.ops.dreamor.refine() == {"FINISHED"}
        scene.dreamor.alternatives = 2
        assert obj.animation_data.action.name == "walk_refined"
        bpy.ops.ed.undo_push(message="before the second refine")
        assert bpy.ops.dreamor.refine("EXEC_DEFAULT", True) == {"FINISHED"}
    finally:
        scene.dreamor.alternatives = 1
    assert "replaced 3 action(s) of the earlier refine" in capfd.readouterr().out
    names = lambda: sorted(a.name for a in bpy.data.actions if a.name.startswith("walk_"))  # noqa: E731
    assert names() == ["walk_refined", "walk_refined_alt2"]
    assert bpy.ops.ed.undo() == {"FINISHED"}  # one undo brings the earlier set back
    assert names() == ["walk_refined", "walk_refined_alt2", "walk_refined_alt3"]
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert names() == ["walk_refined", "walk_refined_alt2"]
    obj = bpy.data.objects["walk"]
    assert aio.source_action(bpy.data.actions["walk_refined"]) == bpy.data.actions["walk"]
    obj.animation_data.action = bpy.data.actions["walk_refined_alt2"]  # the animator picks the alternative
    blend = tmp_path / "picked.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert {"walk", "walk_refined", "walk_refined_alt2"} <= {a.name for a in bpy.data.actions}


def test_no_alternatives_are_written_when_nothing_is_hidden(empty_scene, walk_npz, tiny):
    """With nothing hidden the backend's alternatives are the answer itself: no copies of it are written."""
    assert bpy.ops.dreamor.import_clip(filepath=str(walk_npz)) == {"FINISHED"}
    scene = bpy.context.scene
    tiny()
    scene.dreamor.alternatives, keep = 3, scene.dreamor.keep_visible
    scene.dreamor.keep_visible = False  # with it on, a refine with nothing marked is refused (a copy)
    try:
        assert bpy.ops.dreamor.refine() == {"FINISHED"}
    finally:
        scene.dreamor.alternatives, scene.dreamor.keep_visible = 1, keep
    assert sorted(a.name for a in bpy.data.actions if "_refined" in a.name) == ["walk_refined"]


def test_the_doubt_rings_follow_the_playing_action(walk, tiny, sub):
    """Back on the capture (no 'doubt' keys) the bones still hold the refined action's last doubt values: no rings."""
    overlay, obj, scene = sub("overlay"), walk, bpy.context.scene
    tiny()
    assert bpy.ops.dreamor.refine() == {"FINISHED"}
    scene.frame_set(50)
    assert len(overlay.doubt_rings(scene)) == len(LOWER)
    obj.animation_data.action = bpy.data.actions["walk"]
    scene.frame_set(49)
    scene.frame_set(50)
    assert obj.pose.bones["left_knee"].get("doubt", 0.0) > 0  # the stale value is there...
    assert overlay.doubt_rings(scene) == []  # ...and is not drawn


def test_a_lost_backend_is_told_by_its_cause_not_by_its_last_log_line(sub):
    """A killed backend's last stderr line is its own log ('dreamor serve: job ... accepted'): no cause. A message
    that already says what to do is not told twice."""
    bp, rr = sub("backend_process"), sub("refine_run")
    log = "dreamor serve: listening\ndreamor serve: job 2be6 accepted: 90 frames on cpu, position 0\n"
    assert bp.last_error_line(log) == ""
    assert bp.exit_sentence(-9, bp.last_error_line(log)) == "the backend was killed (signal 9)"
    assert bp.exit_sentence(2, bp.last_error_line(log + "error: no models\n")) == "the backend exited with code 2: no models"
    told = rr._backend_lost("stopped answering", "the backend was stopped before this job finished; start it again and resubmit")
    assert told.count("start it again") + told.count("Start it again") == 1
    assert rr._backend_lost("stopped while refining", "the backend was killed (signal 9)").endswith(
        "nothing was changed. Start it again and press Refine")


def test_the_report_mentions_doubt_from_where_the_rings_start(sub):
    """The report spoke of doubt only over 10 cm while the viewport's rings start at 5 cm; the doubt is no bound."""
    rr, overlay = sub("refine_run"), sub("overlay")
    assert rr.DOUBT_MENTION_CM == pytest.approx(overlay.DOUBT_MIN_M * 100)
    assert rr.doubt_sentence({"doubt_from": -1, "doubt_to": -1, "doubt_max_cm": 6.2}, 1) == (
        "; the engine's doubt for the hidden joints reaches 6 cm (the viewport's rings show where)")
    assert rr.doubt_sentence({"doubt_from": -1, "doubt_to": -1, "doubt_max_cm": 3.0}, 1) == ""
    text = rr.doubt_sentence({"doubt_from": 29, "doubt_to": 69, "doubt_max_cm": 12.0}, 1)
    assert "unsure of frames 30..70" in text and "not a bound" in text


def _write_set(sub, obj, alternatives: int = 2):
    """RefineRun._write_set on ``obj``'s own motion (the answer as read, alternatives moved 1, 2 ... cm)."""
    from types import SimpleNamespace

    aio, rr = sub("armature_io"), sub("refine_run")
    anim = aio.read_animation(obj, bpy.context.scene)
    rotmats = aio.as_rotmats(np.concatenate([anim.root_orient[:, None], anim.pose_body.reshape(-1, 21, 3)], 1))
    motion = lambda shift: SimpleNamespace(trans=anim.trans + shift, rotmats=rotmats, contacts=None)  # noqa: E731
    run = SimpleNamespace(anim=anim)
    return rr.RefineRun._write_set(run, obj, obj.animation_data.action, motion(0.0),
                                   [motion(0.01 * (k + 1)) for k in range(alternatives)], None)


def test_a_refine_replaces_only_its_own_earlier_actions(walk, sub):
    """Only actions an earlier refine wrote for this armature are replaced: never a take merely named like one
    (here the capture itself), a user's copy of a refined action, nor another armature's set (a review found all
    three deleted or renamed)."""
    obj = walk
    capture = obj.animation_data.action
    capture.name = "walk_refined"  # the user's take happens to be called so
    action, _names, replaced, _kept = _write_set(sub, obj)
    assert replaced == [] and bpy.data.actions.get("walk_refined") == capture
    assert action.name == "walk_refined_refined" and action["dreamor_source_action"] == "walk_refined"
    capture.name = "walk"
    obj.animation_data.action = capture
    for a in list(bpy.data.actions):
        if a != capture:
            bpy.data.actions.remove(a)
    _write_set(sub, obj)  # walk_refined, _alt2, _alt3 for this armature
    mine = bpy.data.actions["walk_refined"].copy()  # the animator duplicates the answer to hand-edit it
    other = obj.copy()
    bpy.context.scene.collection.objects.link(other)
    other.animation_data.action = capture
    obj.animation_data.action = capture
    _write_set(sub, other)  # another armature playing the same capture: its own set
    assert {"walk_refined", "walk_refined_alt2", "walk_refined_alt3", mine.name} <= {a.name for a in bpy.data.actions}
    _action, _names, replaced, _kept = _write_set(sub, obj, alternatives=1)  # this armature again
    assert sorted(replaced) == ["walk_refined", "walk_refined_alt2", "walk_refined_alt3"]
    assert bpy.data.actions.get(mine.name) == mine


def test_a_failed_write_changes_nothing(walk, sub):
    """A result that cannot be written (NaN in an alternative) leaves the earlier refine's actions, their names, the
    played action and the capture's fake user as they were."""
    from types import SimpleNamespace

    aio, rr = sub("armature_io"), sub("refine_run")
    obj = walk
    _write_set(sub, obj)
    names = sorted(a.name for a in bpy.data.actions)
    playing, fake = obj.animation_data.action, obj.animation_data.action.use_fake_user
    anim = aio.read_animation(obj, bpy.context.scene)
    rotmats = aio.as_rotmats(np.concatenate([anim.root_orient[:, None], anim.pose_body.reshape(-1, 21, 3)], 1))
    good = SimpleNamespace(trans=anim.trans, rotmats=rotmats, contacts=None)
    bad = SimpleNamespace(trans=anim.trans * np.nan, rotmats=rotmats, contacts=None)
    with pytest.raises(rr.RefineError, match="nothing was changed"):
        rr.RefineRun._write_set(SimpleNamespace(anim=anim), obj, playing, good, [bad], None)
    assert sorted(a.name for a in bpy.data.actions) == names
    assert obj.animation_data.action == playing and playing.use_fake_user == fake
