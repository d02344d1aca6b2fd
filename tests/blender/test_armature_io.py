"""armature -> arrays -> armature, for the three naming conventions, in real headless bpy."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
torch = pytest.importorskip("torch")

from blender_rigs import CONVENTIONS, bone_names, build_rig, fcurve_snapshot, key_random_motion, world_matrices  # noqa: E402

from dreamor.body.kinematics import forward_kinematics  # noqa: E402
from dreamor.body.skeleton import SMPL_NEUTRAL_REST_JOINTS

pytestmark = pytest.mark.blender

T = 24


def _rest(seed=1):
    """A non-neutral body: SMPL neutral with a random (small) change of every bone."""
    rng = np.random.default_rng(seed)
    return SMPL_NEUTRAL_REST_JOINTS * (1.0 + 0.05 * rng.normal(size=(22, 1)))


def _setup(scene, fps: float, convention: str, transformed: bool):
    scene.render.fps, scene.render.fps_base = int(round(fps)), 1.0
    scene.frame_start, scene.frame_end = 5, 5 + T - 1
    obj = build_rig(convention, _rest())
    if transformed:
        obj.rotation_euler = (0.4, -0.3, 1.1)
        s = obj.scale[0] * 1.2
        obj.scale = (s, s, s)
        obj.location = (1.0, -2.0, 0.5)
    key_random_motion(obj, convention, np.arange(scene.frame_start, scene.frame_end + 1))
    return obj


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("fps", [24, 30, 60])
@pytest.mark.parametrize("transformed", [False, True], ids=["plain", "rotated-scaled"])
def test_round_trip_reproduces_world_matrices(empty_scene, sub, convention, fps, transformed):
    aio = sub("armature_io")
    scene = empty_scene
    obj = _setup(scene, fps, convention, transformed)
    names = bone_names(convention)
    frames = np.arange(scene.frame_start, scene.frame_end + 1)
    before = world_matrices(obj, names, frames)
    original = obj.animation_data.action
    snapshot = fcurve_snapshot(original)

    anim = aio.read_animation(obj)
    assert anim.method == "fcurves"
    assert anim.num_frames == T and anim.fps == pytest.approx(fps)
    assert (anim.frame_start, anim.frame_end) == (scene.frame_start, scene.frame_end)
    # SMPL's native frame, metres: a standing body about 1.3 m from ankles to head.
    assert 1.0 < np.ptp(anim.rest_joints[:, 1]) < 2.0

    # The backend's FK on the arrays lands on every bone's world head (metres) ...
    fk = forward_kinematics(torch.tensor(anim.local_rotmats), torch.tensor(anim.rest_joints), torch.tensor(anim.trans))
    np.testing.assert_allclose(fk.joints.numpy(), anim.joints, atol=5e-5)
    np.testing.assert_allclose(anim.joints, before[..., :3, 3], atol=5e-5)
    # ... and every world orientation is G_j @ K @ Q0_j.
    rig = aio.rig_from_object(obj)
    rest_rot = rig.axes @ rig.rest[:, :3, :3]
    world_rot = before[..., :3, :3] / np.linalg.norm(before[..., :3, 0], axis=-1)[..., None, None]
    np.testing.assert_allclose(fk.global_rotmats.numpy() @ rest_rot, world_rot, atol=5e-5)

    # Write the arrays back as a new action: every bone's world matrix is reproduced.
    action = aio.write_animation(obj, anim.trans, anim.local_rotmats, anim.frame_start)
    assert action != original and obj.animation_data.action == action
    after = world_matrices(obj, names, frames)
    np.testing.assert_allclose(after, before, atol=1e-4)
    # The original action is untouched and kept.
    assert original.use_fake_user and bpy.data.actions.get(original.name) == original
    now = fcurve_snapshot(original)
    assert now.keys() == snapshot.keys()
    assert all(np.array_equal(now[k], snapshot[k]) for k in snapshot)


def test_every_rotation_mode(empty_scene, sub):
    """Bones in all eight rotation modes, in one armature, read and write exactly."""
    aio = sub("armature_io")
    scene = empty_scene
    scene.frame_start, scene.frame_end = 1, 12
    obj = build_rig("smpl", _rest(2))
    modes = ["QUATERNION", "AXIS_ANGLE", "XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]
    for j, pb in enumerate(obj.pose.bones):
        pb.rotation_mode = modes[j % len(modes)]
    key_random_motion(obj, "smpl", np.arange(1, 13), seed=3)
    names = bone_names("smpl")
    before = world_matrices(obj, names, range(1, 13))
    anim = aio.read_animation(obj)
    aa = np.concatenate([anim.root_orient[:, None], anim.pose_body.reshape(-1, 21, 3)], axis=1)
    aio.write_animation(obj, anim.trans, aa, anim.frame_start)  # axis-angle in, like the wire
    np.testing.assert_allclose(world_matrices(obj, names, range(1, 13)), before, atol=1e-4)
    bag = aio.active_channelbag(obj)
    paths = {fc.data_path for fc in bag.fcurves}
    assert f'pose.bones["{names[1]}"].rotation_axis_angle' in paths
    assert f'pose.bones["{names[2]}"].rotation_euler' in paths


def test_evaluated_path_with_constraint_and_animated_object(empty_scene, sub):
    """A constraint and an animated object need frame-by-frame evaluation; it still matches FK."""
    aio = sub("armature_io")
    scene = empty_scene
    scene.frame_start, scene.frame_end = 1, 10
    obj = build_rig("smplx", _rest(4))
    key_random_motion(obj, "smplx", np.arange(1, 11), seed=5)
    obj.location = (0, 0, 0)
    obj.keyframe_insert("location", frame=1)
    obj.location = (1.0, 2.0, 0.0)
    obj.keyframe_insert("location", frame=10)
    con = obj.pose.bones["left_elbow"].constraints.new("LIMIT_ROTATION")
    con.use_limit_x, con.max_x = True, 0.1
    fast_would_be = aio.read_animation(obj, method="fcurves")
    anim = aio.read_animation(obj)
    assert anim.method == "evaluate"
    names = bone_names("smplx")
    before = world_matrices(obj, names, range(1, 11))
    np.testing.assert_allclose(anim.joints, before[..., :3, 3], atol=5e-5)
    assert not np.allclose(fast_would_be.joints, anim.joints, atol=1e-3)
    fk = forward_kinematics(torch.tensor(anim.local_rotmats), torch.tensor(anim.rest_joints), torch.tensor(anim.trans))
    np.testing.assert_allclose(fk.joints.numpy(), anim.joints, atol=5e-5)


def test_centimetre_scene_units_are_detected(empty_scene, sub):
    """A rig in centimetres with no object scale (170-unit-tall body) reads in metres."""
    aio = sub("armature_io")
    scene = empty_scene
    scene.frame_start, scene.frame_end = 1, 6
    obj = build_rig("smplx", _rest(6))
    obj.scale = (1.0, 1.0, 1.0)
    key_random_motion(obj, "smplx", np.arange(1, 7), seed=7)
    before = world_matrices(obj, bone_names("smplx"), range(1, 7))
    anim = aio.read_animation(obj)
    assert anim.metres_per_unit == pytest.approx(0.01)
    np.testing.assert_allclose(anim.rest_joints, _rest(6), atol=5e-5)
    aio.write_animation(obj, anim.trans, anim.local_rotmats, 1)
    np.testing.assert_allclose(world_matrices(obj, bone_names("smplx"), range(1, 7)), before, atol=1e-4 * 100)


def test_clear_errors(empty_scene, sub):
    aio = sub("armature_io")
    scene = empty_scene
    mesh_obj = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    scene.collection.objects.link(mesh_obj)
    with pytest.raises(aio.ArmatureError, match="'Cube' is a mesh, not an armature"):
        aio.read_animation(mesh_obj)

    arm = bpy.data.objects.new("Armature", bpy.data.armatures.new("Armature"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    b = arm.data.edit_bones.new("Bone")
    b.tail = (0, 0, 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(aio.ArmatureError, match=r"armature 'Armature' has no bones 'pelvis' or 'm_avg_Pelvis'.*is this an SMPL armature\?"):
        aio.read_animation(arm)

    rig = build_rig("smplx", _rest(), name="Armature.001")
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    rig.data.edit_bones.remove(rig.data.edit_bones["left_knee"])
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(aio.ArmatureError, match=r"has no bone 'left_knee' or 'm_avg_L_Knee'; is this an SMPL armature\?"):
        aio.rig_from_object(rig)

    rig = build_rig("smpl_fbx", _rest(), name="Still")
    with pytest.raises(aio.ArmatureError, match="has no animation"):
        aio.read_animation(rig)
    sub("marks").set_visibility(rig, ["m_avg_L_Knee"], 2, 3, False)  # an action with marks only
    with pytest.raises(aio.ArmatureError, match="has no keyframes on the SMPL bones"):
        aio.read_animation(rig)
    key_random_motion(rig, "smpl_fbx", np.arange(1, 5))
    with pytest.raises(aio.ArmatureError, match="single frame"):
        aio.read_animation(rig, frame_range=(3, 3))
    rig.scale = (0.01, 0.02, 0.01)
    with pytest.raises(aio.ArmatureError, match="non-uniform"):
        aio.read_animation(rig, frame_range=(1, 4))


def test_a_rest_pose_with_no_up_or_left_is_told(empty_scene, sub):
    """Every joint on one vertical line (no left), or all at one point: an ArmatureError, not a traceback."""
    aio = sub("armature_io")
    line = np.zeros((22, 3))
    line[:, 1] = np.linspace(0.0, 1.6, 22)
    rig = build_rig("smpl_fbx", line, name="Line")
    with pytest.raises(aio.ArmatureError, match="no left-right direction"):
        aio.rig_from_object(rig)
    with pytest.raises(ValueError, match="no up direction"):
        sub("conventions").canonical_axes(np.zeros((22, 3)))


def test_conventions_use_the_backend_skeleton(sub):
    from dreamor.body import skeleton

    conv = sub("conventions")
    assert conv.JOINT_NAMES == skeleton.JOINT_NAMES and conv.PARENTS == skeleton.PARENTS
    assert conv.CONTACT_JOINTS == skeleton.CONTACT_JOINTS and conv.JOINT_GROUPS == skeleton.JOINT_GROUPS
    np.testing.assert_array_equal(conv.SMPL_NEUTRAL_REST_JOINTS, skeleton.SMPL_NEUTRAL_REST_JOINTS)
    fbx = conv.match_convention("A", [f"f_avg_{n}" for n in conv.SMPL_CAPS_NAMES])
    assert fbx.key == "smpl_fbx"
    assert conv.parse_joints("f_avg_L_Knee, head, feet", fbx) == (4, 7, 8, 10, 11, 15)  # bone, joint, group
    with pytest.raises(ValueError, match="unknown joint or group name.*L_Knee"):
        conv.parse_joints("L_Knee")  # a bone name without its armature's convention


def test_rotmath_matches_mathutils(sub):
    from mathutils import Euler, Matrix, Quaternion

    rm = sub("rotmath")
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(50, 3)) * 1.5
    aa[0] = 0.0
    aa[1] = [np.pi, 0, 0]
    mats = rm.aa_to_mat(aa)
    for a, m in zip(aa, mats):
        ang = np.linalg.norm(a)
        ref = Quaternion(a / ang if ang else (1, 0, 0), ang).to_matrix()
        np.testing.assert_allclose(m, np.asarray(ref), atol=1e-6)
    np.testing.assert_allclose(rm.quat_to_mat(rm.mat_to_quat(mats)), mats, atol=1e-9)
    np.testing.assert_allclose(rm.aa_to_mat(rm.mat_to_aa(mats)), mats, atol=1e-9)
    for order in rm.EULER_ORDERS:
        eul = rm.mat_to_eul(mats, order)
        np.testing.assert_allclose(rm.eul_to_mat(eul, order), mats, atol=1e-9)
        ref = np.asarray(Matrix(mats[5].tolist()).to_euler(order))
        np.testing.assert_allclose(rm.eul_to_mat(ref, order), mats[5], atol=1e-6)
        np.testing.assert_allclose(rm.eul_to_mat(eul[7], order), np.asarray(Euler(eul[7], order).to_matrix()), atol=1e-6)
