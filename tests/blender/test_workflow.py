"""The animator's path, through the operators: import a clip, mark occlusion, write a refined
action as Refine will, undo, save and reload, export; plus contact preview and markers."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_rigs import fcurve_snapshot  # noqa: E402

from dreamor.body.skeleton import JOINT_GROUPS, JOINT_NAMES, SMPL_NEUTRAL_REST_JOINTS  # noqa: E402
from dreamor.data.clip import Clip, load_clip, save_clip  # noqa: E402

pytestmark = pytest.mark.blender

T = 90


def _clip(t=T, seed=0, **kw) -> Clip:
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.normal(scale=0.02, size=(t, 66)), axis=0)
    return Clip(
        trans=steps[:, :3] + [0.0, 0.0, 1.0],
        root_orient=np.array([np.pi / 2, 0.0, 0.0]) + 0.2 * steps[:, 3:6],
        pose_body=0.5 * steps[:, 3:66],
        fps=30.0,
        rest_joints=SMPL_NEUTRAL_REST_JOINTS * 1.03,
        **kw,
    )


@pytest.fixture()
def imported(empty_scene, sub, tmp_path):
    contacts = (np.random.default_rng(1).uniform(size=(T, 9)) > 0.5).astype(float)
    path = save_clip(_clip(contacts=contacts), tmp_path / "walk.npz")
    assert bpy.ops.dreamor.import_clip(filepath=str(path)) == {"FINISHED"}
    return bpy.context.object, path


def test_import_creates_an_animated_smpl_armature(imported, sub):
    obj, path = imported
    aio = sub("armature_io")
    clip = load_clip(path)
    scene = bpy.context.scene
    assert obj.type == "ARMATURE" and obj.name == "walk"
    assert obj.data.bones["pelvis"].parent.name == "root"
    assert all(pb.rotation_mode == "QUATERNION" for pb in obj.pose.bones)
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1, T, 30)
    anim = aio.read_animation(obj)
    np.testing.assert_allclose(anim.rest_joints, clip.rest_joints, atol=1e-6)
    np.testing.assert_allclose(anim.trans, clip.trans, atol=1e-5)
    np.testing.assert_allclose(anim.local_rotmats, sub("rotmath").aa_to_mat(clip.local_aa), atol=1e-5)
    np.testing.assert_allclose(anim.contacts, clip.contacts, atol=1e-6)


def test_mark_refine_undo_save_reload(imported, sub, tmp_path):
    obj, path = imported
    aio, marks = sub("armature_io"), sub("marks")
    scene = bpy.context.scene
    lower = [JOINT_NAMES[i] for i in JOINT_GROUPS["lower_body"]]

    # Mark the lower body occluded over the preview range, from the selection.
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 30, 59
    for pb in obj.pose.bones:
        pb.select = pb.name in lower
    assert bpy.ops.dreamor.mark_occluded(frames="PREVIEW") == {"FINISHED"}
    anim = aio.read_animation(obj)
    expect = np.ones((T, 22), bool)
    expect[29:59, list(JOINT_GROUPS["lower_body"])] = False
    np.testing.assert_array_equal(anim.visible, expect)
    # Children follow when asked: marking the left hip with children marks the whole leg.
    for pb in obj.pose.bones:
        pb.select = pb.name == "left_hip"
    assert bpy.ops.dreamor.mark_occluded(frames="CUSTOM", frame_start=5, frame_end=6, include_children=True) == {"FINISHED"}
    leg = marks.visibility(obj, ["left_hip", "left_knee", "left_ankle", "left_foot", "spine1"], [4, 5, 6, 7])
    np.testing.assert_array_equal(leg, [[1, 1, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]])
    assert bpy.ops.dreamor.clear_occluded(frames="CUSTOM", frame_start=5, frame_end=6, bones="left_leg") == {"FINISHED"}
    np.testing.assert_array_equal(aio.read_animation(obj).visible, expect)
    # Select all occluded bones at a marked frame.
    scene.frame_set(40)
    assert bpy.ops.dreamor.select_occluded(frames="CURRENT") == {"FINISHED"}
    assert sorted(pb.name for pb in obj.pose.bones if pb.select) == sorted(lower)

    # Write an action of arrays back, as Refine will.
    original = obj.animation_data.action
    before = fcurve_snapshot(original)
    bpy.ops.ed.undo_push(message="before refine")
    refined_trans = anim.trans + [0.0, 0.0, 0.05]
    contacts = np.zeros((T, 9))
    contacts[:, 5:7] = 1.0  # toes down
    new = aio.write_animation(obj, refined_trans, anim.local_rotmats, anim.frame_start, contacts=contacts)
    bpy.ops.ed.undo_push(message="DREAMoR Refine")

    assert new.name == "walk_refined" and obj.animation_data.action == new
    assert aio.source_action(new) == original
    bag = aio.active_channelbag(obj)
    rot = bag.fcurves.find('pose.bones["left_knee"].rotation_quaternion', index=0)
    xs = np.array([k.co[0] for k in rot.keyframe_points])
    np.testing.assert_array_equal(xs, np.arange(1, T + 1))  # a key on every frame
    for name in ("left_foot", "right_foot", "pelvis"):
        fc = bag.fcurves.find(f'pose.bones["{name}"]["contact"]', index=0)
        assert fc is not None and len(fc.keyframe_points) == T
    now = aio.read_animation(obj)
    np.testing.assert_allclose(now.trans, refined_trans, atol=1e-5)
    np.testing.assert_allclose(now.contacts, contacts)
    np.testing.assert_array_equal(now.visible, expect)  # marks carried over to the new action
    after = fcurve_snapshot(original)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)

    # One undo restores the previous state.
    assert bpy.ops.ed.undo() == {"FINISHED"}
    obj = bpy.data.objects["walk"]
    assert obj.animation_data.action.name == "walk"
    assert bpy.data.actions.get("walk_refined") is None
    np.testing.assert_allclose(aio.read_animation(obj).trans, anim.trans, atol=1e-6)
    assert bpy.ops.ed.redo() == {"FINISHED"}
    obj = bpy.data.objects["walk"]
    assert obj.animation_data.action.name == "walk_refined"

    # Save, reload: marks, contacts and the original action survive.
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.data.objects.get("walk") is None
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    obj = bpy.data.objects["walk"]
    assert obj.animation_data.action.name == "walk_refined"
    assert bpy.data.actions.get("walk") is not None and bpy.data.actions["walk"].use_fake_user
    again = aio.read_animation(obj)
    np.testing.assert_array_equal(again.visible, expect)
    np.testing.assert_allclose(again.contacts, contacts)
    np.testing.assert_allclose(again.trans, refined_trans, atol=1e-5)

    # Back to the original with one operator.
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.dreamor.restore_action() == {"FINISHED"}
    assert obj.animation_data.action.name == "walk"


def test_export_round_trip(imported, tmp_path):
    obj, path = imported
    out = tmp_path / "out.npz"
    bpy.ops.dreamor.mark_occluded(frames="CUSTOM", frame_start=10, frame_end=20, bones="right_knee")
    assert bpy.ops.dreamor.export_clip(filepath=str(out)) == {"FINISHED"}
    clip, src = load_clip(out), load_clip(path)
    assert clip.fps == 30.0 and clip.num_frames == T
    np.testing.assert_allclose(clip.trans, src.trans, atol=1e-5)
    np.testing.assert_allclose(clip.rest_joints, src.rest_joints, atol=1e-6)
    np.testing.assert_allclose(clip.contacts, src.contacts, atol=1e-6)
    assert clip.joints.shape == (T, 22, 3)
    assert not clip.visible[9:20, 5].any() and clip.visible[:9].all() and clip.visible[:, :5].all()


def test_import_errors_leave_nothing_behind(empty_scene, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, trans=np.zeros((10, 3)), root_orient=np.zeros((10, 3)), pose_body=np.zeros((9, 63)), mocap_framerate=30.0)
    counts = (len(bpy.data.objects), len(bpy.data.armatures), len(bpy.data.actions))
    with pytest.raises(RuntimeError, match="'pose_body' has shape \\(9, 63\\), expected \\(10, 63\\)"):
        bpy.ops.dreamor.import_clip(filepath=str(bad))
    np.savez(bad, trans=np.zeros((10, 3)), root_orient=np.full((10, 3), np.nan), pose_body=np.zeros((10, 63)), mocap_framerate=30.0)
    with pytest.raises(RuntimeError, match="NaN"):
        bpy.ops.dreamor.import_clip(filepath=str(bad))
    with pytest.raises(RuntimeError, match="missing.npz: no such file"):
        bpy.ops.dreamor.import_clip(filepath=str(tmp_path / "missing.npz"))
    # the messages a new user meets first: the bundled sample is a BVH; numpy's own wording never shows
    for name, content, why in (("walk.bvh", b"HIERARCHY\nROOT Hips\n", "a BVH file; Import Clip reads clip files \\(.npz\\): convert"),
                               ("empty.npz", b"", "not a readable .npz clip \\(the file is empty\\)"),
                               ("notes.txt", b"hello", "not a readable .npz clip \\(not a NumPy .npz archive\\)")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(RuntimeError, match=why) as err:
            bpy.ops.dreamor.import_clip(filepath=str(tmp_path / name))
        assert not any(w in str(err.value) for w in ("ValueError", "EOFError", "pickle"))
    assert (len(bpy.data.objects), len(bpy.data.armatures), len(bpy.data.actions)) == counts


def test_a_failed_import_leaves_the_active_object_in_its_mode(imported, tmp_path):
    obj, _ = imported
    bpy.ops.object.mode_set(mode="POSE")
    counts = (len(bpy.data.objects), len(bpy.data.armatures), len(bpy.data.actions))
    bad = tmp_path / "flat.npz"
    np.savez(bad, trans=np.zeros((5, 3)), root_orient=np.zeros((5, 3)), pose_body=np.zeros((5, 63)),
             mocap_framerate=30.0, rest_joints=np.zeros((22, 3)))
    with pytest.raises(RuntimeError, match="'rest_joints': the rest pose has no up direction"):
        bpy.ops.dreamor.import_clip(filepath=str(bad))
    np.savez(bad, trans=np.zeros((5, 3)), root_orient=np.zeros((5, 3)), pose_body=np.zeros((5, 63)),
             mocap_framerate=np.array([]))
    with pytest.raises(RuntimeError, match="key 'mocap_framerate' does not hold numbers"):
        bpy.ops.dreamor.import_clip(filepath=str(bad))
    np.savez(bad, trans=np.array([["a"] * 3] * 5), root_orient=np.zeros((5, 3)), pose_body=np.zeros((5, 63)),
             mocap_framerate=30.0)
    with pytest.raises(RuntimeError, match="key 'trans' does not hold numbers"):
        bpy.ops.dreamor.import_clip(filepath=str(bad))
    assert bpy.context.view_layer.objects.active == obj and obj.mode == "POSE"
    assert (len(bpy.data.objects), len(bpy.data.armatures), len(bpy.data.actions)) == counts
    bpy.ops.object.mode_set(mode="OBJECT")


def test_export_errors_name_the_path_asked_for(imported, tmp_path):
    (tmp_path / "afile").write_text("x")
    for path, msg in ((tmp_path / "afile" / "out.npz", "is a file, not a folder"),
                      (tmp_path, "it is a folder")):
        with pytest.raises(RuntimeError, match=f"cannot export to .*{msg}"):
            bpy.ops.dreamor.export_clip(filepath=str(path))
    assert bpy.ops.dreamor.export_clip(filepath=str(tmp_path / "noext")) == {"FINISHED"}
    assert (tmp_path / "noext.npz").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_refine_in_edit_mode_is_refused_before_the_job(imported, sub):
    obj, _ = imported
    run_mod = sub("refine_run")
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        with pytest.raises(run_mod.RefineError, match="is in edit mode"):
            run_mod.RefineRun(obj, bpy.context.scene, preset="fast")  # no backend runs: the mode is told first
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    scene = bpy.context.scene
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 200, 300
    try:
        with pytest.raises(run_mod.RefineError, match="preview range, 200..300.*move it over the motion"):
            run_mod.RefineRun(obj, scene, preset="fast", refine_frames="PREVIEW")
    finally:
        scene.use_preview_range = False


def test_operator_errors_are_sentences(empty_scene, imported):
    obj, _ = imported
    for pb in obj.pose.bones:
        pb.select = False
    with pytest.raises(RuntimeError, match="no SMPL bones selected"):
        bpy.ops.dreamor.mark_occluded()
    with pytest.raises(RuntimeError, match="unknown joint or group name"):
        bpy.ops.dreamor.mark_occluded(bones="left_tail")
    # a range beside the motion marks nothing of it: refused, and no key is added out there
    end = int(obj.animation_data.action.frame_range[1])
    with pytest.raises(RuntimeError, match=f"frames {end + 400}..{end + 500} lie outside the motion \\(frames 1..{end}\\)"):
        bpy.ops.dreamor.mark_occluded(frames="CUSTOM", frame_start=end + 400, frame_end=end + 500, bones="lower_body")
    assert int(obj.animation_data.action.frame_range[1]) == end
    assert bpy.ops.dreamor.mark_occluded(frames="CUSTOM", frame_start=end - 2, frame_end=end + 50, bones="left_knee") == {"FINISHED"}


def test_contact_preview_and_markers(imported, sub):
    obj, path = imported
    overlay = sub("overlay")
    clip = load_clip(path)
    scene = bpy.context.scene
    frame = int(np.argmax(clip.contacts[:, 5] > 0.5)) + 1  # left toe down here
    scene.frame_set(frame)
    discs = overlay.contact_discs(scene)
    assert len(discs) == int((clip.contacts[frame - 1] >= 0.5).sum())
    verts = np.concatenate([d[0] for d in discs])
    assert verts.shape[1] == 3 and np.all(np.isfinite(verts))
    # the left toe's disc is centred on its world head
    head = np.asarray(obj.matrix_world @ obj.pose.bones["left_foot"].head)
    centres = [d[0].reshape(-1, 3, 3)[:, 0].mean(0) for d in discs]
    assert min(np.linalg.norm(c - head) for c in centres) < 1e-5
    trail = overlay.trail_discs(scene)
    on = (clip.contacts[:, 3:7] >= 0.5).sum()
    assert sum(len(t[0]) for t in trail) == on * overlay._SEGMENTS * 3

    assert bpy.ops.dreamor.create_contact_markers() == {"FINISHED"}
    markers = [o for o in bpy.data.objects if o.get(overlay.MARKER_TAG) == obj.name]
    assert len(markers) == 9
    toe = next(m for m in markers if m.name.endswith("left_foot"))
    down = frame
    up = int(np.argmax(clip.contacts[:, 5] < 0.5)) + 1
    scene.frame_set(down)
    assert toe.matrix_world.to_scale()[0] == pytest.approx(overlay.DISC_RADIUS_M, rel=1e-4)
    np.testing.assert_allclose(toe.matrix_world.translation, obj.matrix_world @ obj.pose.bones["left_foot"].head, atol=1e-5)
    scene.frame_set(up)
    assert toe.matrix_world.to_scale()[0] == pytest.approx(0.0, abs=1e-7)
    assert bpy.ops.dreamor.remove_contact_markers() == {"FINISHED"}
    assert not [o for o in bpy.data.objects if o.get(overlay.MARKER_TAG) == obj.name]


def test_amass_style_file_without_rest_joints(empty_scene, sub, tmp_path):
    """Raw AMASS 'poses' at 120 fps, no rest joints: SMPL neutral skeleton, scene at 120 fps."""
    from dreamor.body.skeleton import SMPL_NEUTRAL_REST_JOINTS

    t = 30
    rng = np.random.default_rng(3)
    path = tmp_path / "amass.npz"
    np.savez(path, poses=rng.normal(scale=0.2, size=(t, 156)), trans=rng.normal(size=(t, 3)), mocap_framerate=120.0, betas=np.zeros(16))
    assert bpy.ops.dreamor.import_clip(filepath=str(path), frame_start=10) == {"FINISHED"}
    scene = bpy.context.scene
    assert scene.render.fps / scene.render.fps_base == 120 and (scene.frame_start, scene.frame_end) == (10, 39)
    anim = sub("armature_io").read_animation(bpy.context.object)
    np.testing.assert_allclose(anim.rest_joints, SMPL_NEUTRAL_REST_JOINTS, atol=1e-6)
    assert anim.contacts is None and anim.visible.all()


def test_panels_draw(imported, addon):
    """Every panel's draw runs against a real context (headless Blender never draws them)."""
    import importlib
    from unittest import mock

    panels = importlib.import_module(f"{addon.__name__}.panels")
    for running in (True, False):
        bpy.context.window_manager.dreamor_job.running = running
        for cls in panels.classes:
            fake = mock.MagicMock()
            cls.draw(fake, bpy.context)
            assert fake.layout.method_calls, cls.__name__
    fake = mock.MagicMock()
    panels.DREAMOR_PT_refine.draw(fake, bpy.context)
    assert "dreamor.refine" in str(fake.mock_calls)
