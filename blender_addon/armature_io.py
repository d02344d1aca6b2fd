"""Move motion between an SMPL armature and the clip arrays the backend speaks.

The thin bpy layer of the add-on: everything here turns Blender data into NumPy arrays
and back; the maths lives in small functions over arrays.

Conventions (DESIGN.md; ``dreamor.skeleton`` on the backend):

- ``rest_joints`` (22, 3): the armature's rest-pose joint heads in SMPL's native frame
  (+Y up, facing +Z, +X = body's left), metres, object scale included.
- ``local_rotmats`` (T, 22, 3, 3): joint 0 maps the native body frame to the Z-up world
  (``root_orient``); joint j > 0 is relative to its parent, so that the backend's FK
  ``G_j = G_parent @ L_j``, ``J_j = J_parent + G_parent @ (rest_j - rest_parent)``,
  ``J_0 = rest_0 + trans`` reproduces every bone's world head, and every bone's world
  orientation is ``G_j @ K @ Q0_j`` (``Q0_j`` its rest orientation in armature space, ``K``
  the armature's axes -> native axes, see ``conventions.canonical_axes``).
- World: Blender's world frame in metres (Z-up); ``metres_per_unit`` converts when the scene
  is modelled in centimetres or millimetres (found from the body's height unless given).

Bone matrices: ``P`` is a bone's posed matrix in armature space (``pose_bone.matrix``),
``B`` its rest matrix (``bone.matrix_local``); ``D = Q Q0^T`` is its rotation away from rest.
Per-bone pose scale and location on bones other than the pelvis are not part of the clip.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import bpy
import numpy as np
from bpy_extras import anim_utils

from . import rotmath
from .conventions import (
    BLENDER_TO_NATIVE,
    CONFIDENCE_PROP,
    CONTACT_JOINTS,
    CONTACT_PROP,
    DOUBT_PROP,
    NUM_JOINTS,
    PARENTS,
    PINNED_PROP,
    VISIBLE_PROP,
    Convention,
    canonical_axes,
    match_convention,
)
from .posemath import (  # noqa: F401  (ArmatureAnimation, ArmatureError, clip_to_basis: part of this module's API)
    ArmatureAnimation,
    ArmatureError,
    as_rotmats,
    clip_to_basis,
    pose_to_clip,
    rest_joints,
    step_keys,
    uniform_scale,
)


@dataclass
class Rig:
    """An armature object matched to the SMPL-22 skeleton (rest data only; no animation)."""

    obj: bpy.types.Object
    convention: Convention
    rest: np.ndarray  # (22, 4, 4) bone.matrix_local of the SMPL bones, armature space
    axes: np.ndarray  # (3, 3) K: armature-space vectors -> SMPL native frame
    metres_per_unit: float  # Blender units -> metres
    chain: tuple[str, ...]  # every bone the SMPL bones depend on, parents first
    above_pelvis: tuple[str, ...]  # bones above the pelvis (e.g. 'root', 'm_avg_root')

    @property
    def bone_names(self) -> tuple[str, ...]:
        return self.convention.names

    @property
    def contact_bone_names(self) -> tuple[str, ...]:
        return tuple(self.convention.names[j] for j in CONTACT_JOINTS)

    @property
    def name(self) -> str:
        return self.obj.name

    def rest_joints(self, world: np.ndarray) -> np.ndarray:
        """(22, 3) rest joints in metres, native frame, for an object world matrix (4, 4)."""
        return rest_joints(self, world)


def _bone_matrices(coll, prop: str) -> np.ndarray:
    """foreach_get of a 4x4 matrix property (Blender stores columns first) -> (n, 4, 4)."""
    n = len(coll)
    buf = np.empty(n * 16, np.float32)
    coll.foreach_get(prop, buf)
    return buf.reshape(n, 4, 4).transpose(0, 2, 1).astype(np.float64)


def rig_from_object(obj, metres_per_unit: float | None = None) -> Rig:
    """Match an armature object to the SMPL-22 skeleton; ArmatureError names what is missing."""
    if obj is None:
        raise ArmatureError("no object selected; select an SMPL armature")
    if obj.type != "ARMATURE":
        raise ArmatureError(f"'{obj.name}' is a {obj.type.lower()}, not an armature; select an SMPL armature")
    bones = obj.data.bones
    try:
        conv = match_convention(obj.name, bones.keys())
    except ValueError as exc:
        raise ArmatureError(str(exc)) from None
    names = conv.names
    for j in range(1, NUM_JOINTS):
        bone, want = bones[names[j]], names[PARENTS[j]]
        parent = bone.parent
        while parent is not None and parent.name not in names:
            parent = parent.parent
        if parent is None or parent.name != want:
            raise ArmatureError(
                f"armature '{obj.name}': bone '{names[j]}' should be below '{want}' in the hierarchy "
                f"(SMPL's skeleton), but its parent is '{bone.parent.name if bone.parent else 'none'}'"
            )
    all_rest = _bone_matrices(bones, "matrix_local")
    index = {b.name: i for i, b in enumerate(bones)}
    rest = all_rest[[index[n] for n in names]]
    try:
        axes = canonical_axes(rest[:, :3, 3])
    except ValueError as exc:
        raise ArmatureError(f"armature '{obj.name}': {exc}") from None
    chain: list[str] = []
    for n in names:
        up, b = [], bones[n]
        while b is not None and b.name not in chain and b.name not in up:
            up.append(b.name)
            b = b.parent
        chain.extend(reversed(up))
    above, b = [], bones[names[0]].parent
    while b is not None:
        above.append(b.name)
        b = b.parent
    if metres_per_unit is None:
        metres_per_unit = _guess_metres_per_unit(obj, rest[:, :3, 3] @ axes.T)
    return Rig(obj, conv, rest, axes, float(metres_per_unit), tuple(chain), tuple(above))


def _guess_metres_per_unit(obj, native_heads: np.ndarray) -> float:
    """1 for scenes in metres; 0.01 / 0.001 when the body is 100x / 1000x too tall for metres."""
    scale = float(uniform_scale(obj.name, np.asarray(obj.matrix_world)))
    height = float(np.ptp(native_heads[:, 1])) * scale  # ankle to head, ~1.3 m for adults
    for factor in (1.0, 0.01, 0.001):
        if 0.2 <= height * factor <= 5.0:
            return factor
    return 1.0


# --------------------------------------------------------------------------- channels


def active_channelbag(obj, create: bool = False):
    """The channelbag (fcurves) of the object's assigned action slot; None if it has none.

    With ``create``, an action and slot are made when missing (for occlusion marks on an
    armature that has none yet).
    """
    ad = obj.animation_data
    if ad is None or ad.action is None:
        if not create:
            return None
        ad = ad or obj.animation_data_create()
        ad.action = bpy.data.actions.new(f"{obj.name}Action")
    if ad.action_slot is None:
        if not create:
            return None
        slot = anim_utils.action_get_first_suitable_slot(ad.action, "OBJECT")
        ad.action_slot = slot or ad.action.slots.new("OBJECT", obj.name)
    if create:
        return anim_utils.action_ensure_channelbag_for_slot(ad.action, ad.action_slot)
    return anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)


def _fcurve_map(channelbag) -> dict[tuple[str, int], bpy.types.FCurve]:
    if channelbag is None:
        return {}
    return {(fc.data_path, fc.array_index): fc for fc in channelbag.fcurves if not fc.mute}


def sample_fcurve(fc, frames: np.ndarray) -> np.ndarray:
    """(T,) values of an F-curve at integer ``frames``; keys read directly when on every frame."""
    n = len(fc.keyframe_points)
    if n == len(frames) and len(fc.modifiers) == 0:
        co = np.empty(2 * n, np.float32)
        fc.keyframe_points.foreach_get("co", co)
        if np.array_equal(co[0::2], frames.astype(np.float32)):
            return co[1::2].astype(np.float64)
    evaluate = fc.evaluate
    return np.array([evaluate(f) for f in frames.tolist()], np.float64)


def _channel(fcurves, owner, prop: str, static, frames: np.ndarray) -> np.ndarray:
    """(T, n) samples of a (vector) property; channels without an F-curve keep their value."""
    path = owner.path_from_id(prop)
    static = np.atleast_1d(np.asarray(static, np.float64))
    out = np.repeat(static[None], len(frames), axis=0)
    for i in range(len(static)):
        fc = fcurves.get((path, i))
        if fc is not None:
            out[:, i] = sample_fcurve(fc, frames)
    return out


def _rotation_mats(fcurves, pb, frames) -> np.ndarray:
    mode = pb.rotation_mode
    if mode == "QUATERNION":
        return rotmath.quat_to_mat(_channel(fcurves, pb, "rotation_quaternion", pb.rotation_quaternion, frames))
    if mode == "AXIS_ANGLE":
        return rotmath.baa_to_mat(_channel(fcurves, pb, "rotation_axis_angle", pb.rotation_axis_angle, frames))
    return rotmath.eul_to_mat(_channel(fcurves, pb, "rotation_euler", pb.rotation_euler, frames), mode)


_BONE_TRANSFORMS = ("location", "rotation_quaternion", "rotation_axis_angle", "rotation_euler", "scale")
_OBJECT_TRANSFORMS = {
    "location", "rotation_euler", "rotation_quaternion", "rotation_axis_angle", "scale",
    "delta_location", "delta_rotation_euler", "delta_rotation_quaternion", "delta_scale",
}  # fmt: skip


def _needs_evaluation(rig: Rig) -> bool:
    """True when the pose depends on more than the action's F-curves (constraints, NLA, drivers...)."""
    obj = rig.obj
    ad = obj.animation_data
    if obj.parent is not None or len(obj.constraints):
        return True
    if ad is not None:
        if ad.use_tweak_mode or ad.action_influence < 1.0 or ad.action_blend_type != "REPLACE":
            return True
        if any(not t.mute and len(t.strips) for t in ad.nla_tracks):
            return True
        if len(ad.drivers):
            return True
        for (path, _i) in _fcurve_map(active_channelbag(obj)):
            if path in _OBJECT_TRANSFORMS:
                return True
    for name in rig.chain:
        bone, pb = obj.data.bones[name], obj.pose.bones[name]
        if len(pb.constraints) or not bone.use_inherit_rotation or bone.inherit_scale != "FULL":
            return True
        if not bone.use_local_location or bone.use_relative_parent:
            return True
    return False


def _pose_from_fcurves(rig: Rig, frames: np.ndarray) -> np.ndarray:
    """(T, 22, 4, 4) armature-space pose matrices of the SMPL bones, from the action alone."""
    obj = rig.obj
    fcurves = _fcurve_map(active_channelbag(obj))
    bones = obj.data.bones
    t = len(frames)
    posed: dict[str, np.ndarray] = {}
    for name in rig.chain:
        pb, bone = obj.pose.bones[name], bones[name]
        basis = np.zeros((t, 4, 4))
        scale = _channel(fcurves, pb, "scale", pb.scale, frames)
        basis[:, :3, :3] = _rotation_mats(fcurves, pb, frames) * scale[:, None, :]
        basis[:, :3, 3] = _channel(fcurves, pb, "location", pb.location, frames)
        basis[:, 3, 3] = 1.0
        rest = np.asarray(bone.matrix_local, np.float64)
        if bone.parent is not None and bone.parent.name in posed:
            rel = np.linalg.inv(np.asarray(bone.parent.matrix_local, np.float64)) @ rest
            posed[name] = posed[bone.parent.name] @ rel @ basis
        else:
            posed[name] = rest @ basis
    return np.stack([posed[n] for n in rig.bone_names], axis=1)


def _pose_by_evaluation(rig: Rig, scene, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 22, 4, 4) pose matrices and (T, 4, 4) object matrices, stepping the scene frame by frame."""
    obj = rig.obj
    pbones = obj.pose.bones
    idx = [pbones.find(n) for n in rig.bone_names]
    poses = np.empty((len(frames), NUM_JOINTS, 4, 4))
    worlds = np.empty((len(frames), 4, 4))
    current = scene.frame_current
    try:
        for i, f in enumerate(frames.tolist()):
            scene.frame_set(int(f))
            poses[i] = _bone_matrices(pbones, "matrix")[idx]
            worlds[i] = np.asarray(obj.matrix_world, np.float64)
    finally:
        scene.frame_set(current)
    return poses, worlds


def _sample_props(obj, names, prop: str, default: float, frames: np.ndarray) -> np.ndarray | None:
    """(T, len(names)) samples of a custom property on pose bones; None if no bone has it."""
    fcurves = _fcurve_map(active_channelbag(obj))
    out = np.full((len(frames), len(names)), float(default))
    found = False
    for i, name in enumerate(names):
        pb = obj.pose.bones[name]
        if prop not in pb:
            continue
        found = True
        fc = fcurves.get((pb.path_from_id(f'["{prop}"]'), 0))
        out[:, i] = sample_fcurve(fc, frames) if fc is not None else float(pb[prop])
    return out if found else None


# --------------------------------------------------------------------------- reading


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def read_animation(
    obj,
    scene=None,
    frame_range: tuple[int, int] | None = None,
    metres_per_unit: float | None = None,
    method: str = "auto",
    update: bool = True,
) -> ArmatureAnimation:
    """Read the armature's animation over ``frame_range`` (default: the scene range), inclusive.

    ``method``: 'fcurves' samples the action directly (fast), 'evaluate' steps the scene
    frame by frame (constraints, NLA, drivers, animated object), 'auto' picks.
    ``update``: bring object matrices up to date first (never from a draw callback).
    """
    scene = scene or bpy.context.scene
    if update:
        bpy.context.view_layer.update()  # object matrices up to date after script edits
    rig = rig_from_object(obj, metres_per_unit)
    ad = obj.animation_data
    if ad is None or (ad.action is None and not any(len(t.strips) for t in ad.nla_tracks)):
        raise ArmatureError(f"armature '{obj.name}' has no animation; assign an action with its motion")
    start, end = frame_range if frame_range is not None else (scene.frame_start, scene.frame_end)
    if end <= start:
        raise ArmatureError(
            f"the frame range {start}..{end} has a single frame; refinement needs a motion: "
            "set a longer scene or preview range"
        )
    if ad.action is not None and not ad.use_tweak_mode:
        keyed = {path for path, _i in _fcurve_map(active_channelbag(obj))}
        transforms = {obj.pose.bones[n].path_from_id(p) for n in rig.chain for p in _BONE_TRANSFORMS}
        if not (keyed & transforms):
            if not any(len(t.strips) for t in ad.nla_tracks):
                raise ArmatureError(
                    f"armature '{obj.name}': action '{ad.action.name}' has no keyframes on the SMPL bones' "
                    "location or rotation; key or import its motion first"
                )
    frames = np.arange(start, end + 1)
    if method == "auto":
        method = "evaluate" if _needs_evaluation(rig) else "fcurves"
    if method == "fcurves":
        poses = _pose_from_fcurves(rig, frames)
        worlds = np.repeat(np.asarray(obj.matrix_world, np.float64)[None], len(frames), axis=0)
    elif method == "evaluate":
        poses, worlds = _pose_by_evaluation(rig, scene, frames)
    else:
        raise ValueError(f"method must be 'auto', 'fcurves' or 'evaluate', not {method!r}")
    trans, rotmats, joints = pose_to_clip(rig, poses, worlds)
    from .marks import mark_values, visibility  # marks builds on this module

    visible = visibility(obj, rig.bone_names, frames)
    pinned = visibility(obj, rig.bone_names, frames, PINNED_PROP)
    confidence = np.clip(mark_values(obj, rig.bone_names, frames, CONFIDENCE_PROP), 0.0, 1.0)
    confidence[~visible] = 0.0  # hidden stays hidden, whatever its confidence
    contacts = _sample_props(obj, rig.contact_bone_names, CONTACT_PROP, 0.0, frames)
    return ArmatureAnimation(
        trans=trans,
        local_rotmats=rotmats,
        rest_joints=rig.rest_joints(worlds[0]),
        joints=joints,
        visible=visible,
        pinned=pinned if pinned.any() else None,
        confidence=confidence if (confidence[visible] < 1.0).any() else None,
        contacts=np.clip(contacts, 0.0, 1.0) if contacts is not None else None,
        fps=scene_fps(scene),
        frame_start=int(start),
        frame_end=int(end),
        metres_per_unit=rig.metres_per_unit,
        method=method,
    )


# --------------------------------------------------------------------------- writing


def _key_curve(channelbag, path: str, index: int, group: str, frames: np.ndarray, values: np.ndarray, interp: int):
    fc = channelbag.fcurves.new(path, index=index, group_name=group)
    kp = fc.keyframe_points
    kp.add(len(frames))
    co = np.empty(2 * len(frames), np.float32)
    co[0::2], co[1::2] = frames, values
    kp.foreach_set("co", co)
    kp.foreach_set("interpolation", np.full(len(frames), interp, np.int32))
    fc.update()
    return fc


LINEAR, CONSTANT = 1, 0  # Keyframe.interpolation enum values


def _rotation_channels(mode: str, mats: np.ndarray) -> tuple[str, np.ndarray]:
    """(T, 3, 3) -> (data path property, (T, n) continuous values) for a bone's rotation mode."""
    if mode == "QUATERNION":
        return "rotation_quaternion", rotmath.quat_continuous(rotmath.mat_to_quat(mats))
    if mode == "AXIS_ANGLE":
        return "rotation_axis_angle", rotmath.quat_to_baa(rotmath.quat_continuous(rotmath.mat_to_quat(mats)))
    return "rotation_euler", rotmath.eul_continuous(rotmath.mat_to_eul(mats, mode))


def ensure_bone_props(obj, names, prop: str, default, description: str):
    """Give pose bones a custom property (bool or float in [0, 1]) if they lack it."""
    for name in names:
        pb = obj.pose.bones[name]
        if prop not in pb:
            pb[prop] = default
            ui = pb.id_properties_ui(prop)
            if isinstance(default, float):
                ui.update(min=0.0, max=1.0, soft_min=0.0, soft_max=1.0, description=description)
            else:
                ui.update(description=description)


VISIBLE_DESCRIPTION = "DREAMoR: False where this joint was occluded during capture"
CONTACT_DESCRIPTION = "DREAMoR: ground contact probability of this joint (0..1)"
DOUBT_DESCRIPTION = "DREAMoR: how far the refined joint may be off, metres (0 where it was seen)"


def write_animation(
    obj,
    trans: np.ndarray,
    rotations: np.ndarray,
    frame_start: int,
    contacts: np.ndarray | None = None,
    visible: np.ndarray | None = None,
    action_name: str | None = None,
    metres_per_unit: float | None = None,
    doubt: np.ndarray | None = None,
    source: bpy.types.Action | None = None,
) -> bpy.types.Action:
    """Key the clip arrays on a **new action** and assign it; the previous action is kept.

    trans: (T, 3) metres; rotations: (T, 22, 3) axis-angle or (T, 22, 3, 3) local rotations
    (joint 0 = root orientation); keys land on frames ``frame_start .. frame_start + T - 1``.
    contacts: (T, 9) in [0, 1] keyed as the 'contact' property of the contact bones;
    visible: (T, 22) bool keyed as 'visible' marks; doubt: (T, 22) metres keyed as the 'doubt' property of
    every bone. The new action starts as a copy of ``source`` (default: the object's current action;
    occlusion marks, fingers, other channels stay), with the SMPL bones' transforms replaced. The previous action gets a fake user so it is never lost. One undo
    step when called from an operator with the UNDO option (or followed by an undo push).
    """
    bpy.context.view_layer.update()
    rig = rig_from_object(obj, metres_per_unit)
    rotmats = as_rotmats(rotations)
    trans = np.asarray(trans, np.float64)
    t = len(trans)
    if trans.shape != (t, 3) or rotmats.shape != (t, NUM_JOINTS, 3, 3):
        raise ValueError(f"trans {trans.shape} and rotations {rotmats.shape} must be (T, 3) and (T, 22, ...)")
    for key, arr, shape in (("contacts", contacts, (t, 9)), ("visible", visible, (t, NUM_JOINTS)),
                            ("doubt", doubt, (t, NUM_JOINTS))):
        if arr is not None and np.shape(arr) != shape:
            raise ValueError(f"{key} has shape {np.shape(arr)}, expected {shape}")
    if not (np.all(np.isfinite(trans)) and np.all(np.isfinite(rotmats))):
        raise ValueError("trans/rotations hold NaN or infinite values; nothing was written")
    world = np.asarray(obj.matrix_world, np.float64)
    basis, location = clip_to_basis(rig, trans, rotmats, world)
    channels = {}  # (bone, prop) -> (T, n) values
    for j, name in enumerate(rig.bone_names):
        prop, values = _rotation_channels(obj.pose.bones[name].rotation_mode, basis[:, j])
        channels[(name, prop)] = values
    channels[(rig.bone_names[0], "location")] = location
    if contacts is not None:
        ensure_bone_props(obj, rig.contact_bone_names, CONTACT_PROP, 0.0, CONTACT_DESCRIPTION)
    if visible is not None:
        ensure_bone_props(obj, rig.bone_names, VISIBLE_PROP, True, VISIBLE_DESCRIPTION)
    if doubt is not None:
        if not np.all(np.isfinite(doubt)):
            raise ValueError("doubt holds NaN or infinite values; nothing was written")
        ensure_bone_props(obj, rig.bone_names, DOUBT_PROP, 0.0, DOUBT_DESCRIPTION)

    # From here on only bpy writes that cannot fail on bad input.
    ad = obj.animation_data or obj.animation_data_create()
    previous, prev_slot = source or ad.action, ad.action_slot
    if previous is not None:
        action = previous.copy()
        action.name = action_name or _refined_name(previous.name)
        previous.use_fake_user = True
        action.use_fake_user = False
        slot = action.slots.get(prev_slot.identifier) if prev_slot is not None else None
        action["dreamor_source_action"] = previous.name  # Refine points it at the capture (refine_run._write_set)
    else:
        action = bpy.data.actions.new(action_name or f"{obj.name}Action")
        slot = None
    ad.action = action
    if slot is None:
        slot = ad.action_slot or action.slots.new("OBJECT", obj.name)
    ad.action_slot = slot
    bag = anim_utils.action_ensure_channelbag_for_slot(action, slot)

    replaced = {obj.pose.bones[n].path_from_id(p) for n in rig.chain for p in _BONE_TRANSFORMS}
    if contacts is not None:
        replaced |= {obj.pose.bones[n].path_from_id(f'["{CONTACT_PROP}"]') for n in rig.contact_bone_names}
    if visible is not None:
        replaced |= {obj.pose.bones[n].path_from_id(f'["{VISIBLE_PROP}"]') for n in rig.bone_names}
    if doubt is not None:
        replaced |= {obj.pose.bones[n].path_from_id(f'["{DOUBT_PROP}"]') for n in rig.bone_names}
    for fc in [fc for fc in bag.fcurves if fc.data_path in replaced]:
        bag.fcurves.remove(fc)
    for name in rig.chain:  # unkeyed channels rest, so the keyed ones tell the whole pose
        pb = obj.pose.bones[name]
        pb.location = (0.0, 0.0, 0.0)
        pb.scale = (1.0, 1.0, 1.0)
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pb.rotation_axis_angle = (0.0, 0.0, 1.0, 0.0)
        pb.rotation_euler = (0.0, 0.0, 0.0)

    frames = np.arange(frame_start, frame_start + t, dtype=np.float64)
    for (name, prop), values in channels.items():
        path = obj.pose.bones[name].path_from_id(prop)
        for i in range(values.shape[1]):
            _key_curve(bag, path, i, name, frames, values[:, i], LINEAR)
    if contacts is not None:
        for k, name in enumerate(rig.contact_bone_names):
            path = obj.pose.bones[name].path_from_id(f'["{CONTACT_PROP}"]')
            _key_curve(bag, path, 0, name, frames, np.clip(contacts[:, k], 0.0, 1.0), LINEAR)
    if visible is not None:
        for j, name in enumerate(rig.bone_names):
            path = obj.pose.bones[name].path_from_id(f'["{VISIBLE_PROP}"]')
            f, v = step_keys(frames, np.asarray(visible[:, j], bool).astype(np.float64))
            _key_curve(bag, path, 0, name, f, v, CONSTANT)
    if doubt is not None:
        for j, name in enumerate(rig.bone_names):
            path = obj.pose.bones[name].path_from_id(f'["{DOUBT_PROP}"]')
            _key_curve(bag, path, 0, name, frames, np.asarray(doubt[:, j], np.float64), LINEAR)
    obj.update_tag(refresh={"OBJECT", "DATA"})
    return action


def _refined_name(name: str) -> str:
    base = name[: -len("_refined")] if name.endswith("_refined") else name
    return f"{base}_refined"


#: the armature a refine wrote an action for (``refine_run``): only such actions are ever replaced by a later refine
REFINED_FOR = "dreamor_refined_for"


def refine_root(source) -> str:
    """The name a refine of ``source`` names its actions from: for an action a refine wrote, the capture it was made
    from (even if that action is gone or renamed since); else ``source``'s own name."""
    root = source.get("dreamor_source_action") if source.get(REFINED_FOR) is not None else None
    return str(root) if root else source.name


def refined_set(obj_name: str, base: str) -> list:
    """The actions an earlier refine wrote for the armature ``obj_name`` from ``base``: named exactly
    '<base>_refined' or '<base>_refined_altN' and stamped for that armature. A user's copy ('..._refined.001'), a take
    merely named so, another armature's set: none of them."""
    pattern = re.compile(re.escape(base) + r"_refined(?:_alt\d+)?")
    return [a for a in bpy.data.actions if pattern.fullmatch(a.name) and a.get(REFINED_FOR) == obj_name]


def source_action(action) -> bpy.types.Action | None:
    """The action a refined action was made from (kept with a fake user), if it still exists."""
    name = action.get("dreamor_source_action") if action is not None else None
    return bpy.data.actions.get(name) if name else None


# --------------------------------------------------------------------------- new armatures

_LEAF_TIPS = {15: ("up", 0.2), 10: ("along", 0.08), 11: ("along", 0.08), 20: ("along", 0.1), 21: ("along", 0.1)}
_TAIL_CHILD = {0: 3, 9: 12}  # joints with several children point at this one


def create_armature(name: str, rest_joints: np.ndarray, collection=None, root_bone: str = "root"):
    """A new SMPL armature object (SMPL-X / Meshcapade bone names, quaternion rotation mode).

    rest_joints: (22, 3) metres in SMPL's native frame. Bones are built Z-up in metres under
    a ``root`` bone at the origin; the object's transform is identity. Needs object mode.
    """
    rest_joints = np.asarray(rest_joints, np.float64)
    if rest_joints.shape != (NUM_JOINTS, 3) or not np.all(np.isfinite(rest_joints)):
        raise ValueError(f"rest_joints must be finite (22, 3), got {rest_joints.shape}")
    heads = rest_joints @ BLENDER_TO_NATIVE  # native -> Blender: v_b = A^T v_n
    from .conventions import CHILDREN, JOINT_NAMES

    tails = np.empty_like(heads)
    for j in range(NUM_JOINTS):
        kids = CHILDREN[j]
        if j in _TAIL_CHILD or len(kids) == 1:
            tails[j] = heads[_TAIL_CHILD.get(j, kids[0] if kids else j)]
        else:
            how, length = _LEAF_TIPS[j]
            if how == "up":
                direction = np.array([0.0, 0.0, 1.0])
            else:
                direction = heads[j] - heads[PARENTS[j]]
                if j in (10, 11):
                    direction[2] = 0.0
                direction /= np.linalg.norm(direction)
            tails[j] = heads[j] + length * direction
        if np.linalg.norm(tails[j] - heads[j]) < 1e-4:
            tails[j] = heads[j] + np.array([0.0, 0.0, 0.05])

    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    (collection or bpy.context.scene.collection).objects.link(obj)
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = obj
    try:
        bpy.ops.object.mode_set(mode="EDIT")
        root = data.edit_bones.new(root_bone)
        root.head, root.tail = (0.0, 0.0, 0.0), (0.0, 0.0, 0.1)
        made = []
        for j, jname in enumerate(JOINT_NAMES):
            eb = data.edit_bones.new(jname)
            eb.head, eb.tail = heads[j].tolist(), tails[j].tolist()
            eb.parent = root if j == 0 else made[PARENTS[j]]
            made.append(eb)
        bpy.ops.object.mode_set(mode="OBJECT")
    except BaseException:
        if bpy.context.object is obj and obj.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous_active
        bpy.data.objects.remove(obj)
        bpy.data.armatures.remove(data)
        raise
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return obj
