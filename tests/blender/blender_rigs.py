"""Test armatures in the three conventions users have, built like the real rigs, and helpers.

- 'smplx': the SMPL-X / Meshcapade add-on: bones built in SMPL's own frame (Y-up, facing
  +Z) in centimetres under a ``root`` bone; the object is rotated 90 degrees about X and
  scaled 0.01; bones point at their child; quaternions.
- 'smpl': SMPL for Blender: ``Pelvis``, ``L_Hip``, ... built Z-up in metres, ``Pelvis`` is
  the top bone; bones point at their child with assorted rolls; axis-angle.
- 'smpl_fbx': the SMPL FBX as Blender imports it: ``m_avg_*`` under ``m_avg_root``, Y-up
  armature space in centimetres, object rotated 90 degrees about X and scaled 0.01, and
  every bone "Y along bone" of its FBX joint, i.e. all bones point up the armature's Y axis
  (identity rest orientation) whatever the skeleton's direction; Euler rotations. Also
  the SMPL hands (``m_avg_L_Hand``...), 24 joints as in SMPL.
"""
from __future__ import annotations

import bpy
import numpy as np

SMPL_CAPS = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle",
    "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip
A = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # Blender -> native
CONVENTIONS = ("smplx", "smpl", "smpl_fbx")


def bone_names(convention: str) -> list[str]:
    from dreamor.body.skeleton import JOINT_NAMES

    if convention == "smplx":
        return list(JOINT_NAMES)
    if convention == "smpl":
        return list(SMPL_CAPS)
    return [f"m_avg_{n}" for n in SMPL_CAPS]


def _child_tail(j, heads, parents, children, fallback):
    kids = children[j]
    if j == 0:
        return heads[3]
    if j == 9:
        return heads[12]
    if len(kids) == 1:
        return heads[kids[0]]
    return heads[j] + fallback(j)


def build_rig(convention: str, rest_joints: np.ndarray, name: str | None = None, with_hands: bool = False):
    """A new armature object in ``convention`` with the given (22, 3) native rest joints (metres)."""
    from dreamor.body.skeleton import CHILDREN, PARENTS

    names = bone_names(convention)
    name = name or f"{convention}_rig"
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    eb = data.edit_bones
    if convention == "smplx":
        heads = rest_joints * 100.0  # armature space = SMPL native frame, centimetres
        up = np.array([0.0, 10.0, 0.0])
        tails = [_child_tail(j, heads, PARENTS, CHILDREN, lambda j: up) for j in range(22)]
        top = eb.new("root")
        top.head, top.tail = (0.0, 0.0, 0.0), (0.0, 10.0, 0.0)
        rolls = np.zeros(22)
    elif convention == "smpl":
        heads = rest_joints @ A  # Z-up metres
        tails = [_child_tail(j, heads, PARENTS, CHILDREN, lambda j: np.array([0.0, 0.0, 0.08])) for j in range(22)]
        top = None
        rolls = np.linspace(-1.2, 1.5, 22)
    else:
        heads = rest_joints * 100.0
        tails = [heads[j] + np.array([0.0, 5.0, 0.0]) for j in range(22)]  # Y along bone
        top = eb.new("m_avg_root")
        top.head, top.tail = (0.0, 0.0, 0.0), (0.0, 5.0, 0.0)
        rolls = np.zeros(22)
    made = []
    for j in range(22):
        b = eb.new(names[j])
        b.head, b.tail, b.roll = tuple(heads[j]), tuple(tails[j]), float(rolls[j])
        b.parent = top if j == 0 else made[PARENTS[j]]
        made.append(b)
    if with_hands:
        for side, wrist in (("L", 20), ("R", 21)):
            hand = eb.new(f"m_avg_{side}_Hand" if convention == "smpl_fbx" else f"{side}_Hand")
            offset = (heads[wrist] - heads[PARENTS[wrist]]) * 0.4
            hand.head = tuple(heads[wrist] + offset)
            hand.tail = tuple(heads[wrist] + offset + (np.array([0.0, 5.0, 0.0]) if convention != "smpl" else offset))
            hand.parent = made[wrist]
    bpy.ops.object.mode_set(mode="OBJECT")
    if convention in ("smplx", "smpl_fbx"):
        obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
        obj.scale = (0.01, 0.01, 0.01)
    modes = {"smplx": "QUATERNION", "smpl": "AXIS_ANGLE", "smpl_fbx": "ZXY"}
    for pb in obj.pose.bones:
        pb.rotation_mode = modes[convention]
    return obj


def key_random_motion(obj, convention: str, frames: np.ndarray, seed: int = 0, key_root: bool = True):
    """Key random (smooth-ish) rotations on every SMPL bone and a pelvis location, natively per mode.

    Keys are inserted with ``keyframe_insert`` on a few frames (Bezier in between), so the
    read path has to evaluate F-curves, as with hand-keyed animation. The top bone ('root'),
    when there is one and ``key_root``, gets a location and rotation too.
    """
    from dreamor.body.skeleton import JOINT_NAMES  # noqa: F401 (ensures torch side imports work)

    rng = np.random.default_rng(seed)
    names = bone_names(convention)
    top = {"smplx": "root", "smpl_fbx": "m_avg_root"}.get(convention)
    unit = 100.0 if convention != "smpl" else 1.0
    key_frames = list(frames[:: max(1, len(frames) // 6)]) + [frames[-1]]
    for f in key_frames:
        for n in names + ([top] if (top and key_root) else []):
            pb = obj.pose.bones[n]
            rot = rng.normal(size=3) * (0.6 if n != top else 0.3)
            _set_rotation(pb, rot)
            pb.keyframe_insert(_rot_path(pb), frame=float(f), group=n)
            if n in (names[0], top):
                pb.location = tuple(rng.normal(size=3) * 0.3 * unit)
                pb.keyframe_insert("location", frame=float(f), group=n)
    return obj


def _rot_path(pb) -> str:
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(pb.rotation_mode, "rotation_euler")


def _set_rotation(pb, aa):
    from mathutils import Vector

    angle = float(np.linalg.norm(aa))
    axis = Vector(aa / angle) if angle > 0 else Vector((0.0, 1.0, 0.0))
    if pb.rotation_mode == "QUATERNION":
        from mathutils import Quaternion

        pb.rotation_quaternion = Quaternion(axis, angle)
    elif pb.rotation_mode == "AXIS_ANGLE":
        pb.rotation_axis_angle = (angle, *axis)
    else:
        from mathutils import Quaternion

        pb.rotation_euler = Quaternion(axis, angle).to_euler(pb.rotation_mode)


def world_matrices(obj, names, frames) -> np.ndarray:
    """(T, n, 4, 4) evaluated world matrices (object @ pose bone) at each frame."""
    scene = bpy.context.scene
    out = np.empty((len(frames), len(names), 4, 4))
    for i, f in enumerate(frames):
        scene.frame_set(int(f))
        mw = np.asarray(obj.matrix_world)
        for k, n in enumerate(names):
            out[i, k] = mw @ np.asarray(obj.pose.bones[n].matrix)
    return out


def fcurve_snapshot(action) -> dict:
    """{(data_path, index): keyframe co array} of every F-curve in an action (all slots)."""
    out = {}
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for fc in bag.fcurves:
                    co = np.empty(2 * len(fc.keyframe_points), np.float32)
                    fc.keyframe_points.foreach_get("co", co)
                    out[(fc.data_path, fc.array_index)] = co
    return out
