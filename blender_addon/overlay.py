"""Contact and refine preview: a viewport overlay (GPU draw handler) and render-visible contact markers.

The overlay draws, for every SMPL armature in the scene with keyed 'contact' properties, a
disc at each contact joint that is in contact at the current frame, and a footprint trail
(where the ankles and toes touch down over the scene range). Where Refine keyed a 'doubt' on the
bones (how far the backend says a hidden joint may be off), a ring around each doubtful joint at the
current frame, as wide as the doubt, yellow at ``DOUBT_MIN_M`` to red at ``DOUBT_RED_M`` (``doubt_rings``). While a Refine runs, it also
draws a ghost skeleton of the windows the backend has already sent back (``refine_run.active``'s
preview) at the current frame; the modal Refine redraws the 3D views on every timer tick, so a
new window shows without touching the mouse. The geometry is plain NumPy (``contact_discs``,
``trail_discs``, ``ghost_segments``) so it can be tested headless; only the ``_draw*`` functions
touch ``gpu``, and shaders are made inside the draw callback (they cannot exist in background mode).

Markers are small mesh spheres whose scale a driver takes from the bone's 'contact' value,
so the preview shows in renders too.
"""
from __future__ import annotations

import bmesh
import bpy
import numpy as np

from . import armature_io, refine_run
from .conventions import CONTACT_JOINTS, CONTACT_PROP, DOUBT_PROP, JOINT_NAMES, PARENTS

#: RGBA per contact joint (pelvis, l/r knee, l/r ankle, l/r toe, l/r wrist).
CONTACT_COLOURS = np.array(
    [
        [0.90, 0.20, 0.20, 1.0],
        [0.65, 0.35, 0.95, 1.0], [0.65, 0.35, 0.95, 1.0],
        [1.00, 0.80, 0.10, 1.0], [1.00, 0.80, 0.10, 1.0],
        [1.00, 0.45, 0.05, 1.0], [1.00, 0.45, 0.05, 1.0],
        [0.10, 0.80, 0.95, 1.0], [0.10, 0.80, 0.95, 1.0],
    ]
)  # fmt: skip
TRAIL_CONTACTS = (3, 4, 5, 6)  # ankles and toes, as indices into CONTACT_JOINTS
DISC_RADIUS_M = 0.05
_SEGMENTS = 20
#: RGBA and width (pixels) of the refine preview's ghost skeleton.
GHOST_COLOUR = (0.55, 1.0, 0.35, 0.9)
GHOST_WIDTH_PX = 3.0
#: doubt (metres) from which a joint gets a ring, and at which the ring is fully red.
DOUBT_MIN_M, DOUBT_RED_M = 0.05, 0.20


def disc_triangles(centres: np.ndarray, radius: float, segments: int = _SEGMENTS) -> np.ndarray:
    """(N, 3) centres -> (N * segments * 3, 3) vertices of horizontal discs (triangle list)."""
    centres = np.asarray(centres, np.float64).reshape(-1, 3)
    ang = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], -1) * radius  # (S+1, 3)
    tri = np.stack([np.zeros((segments, 3)), ring[:-1], ring[1:]], axis=1)  # (S, 3, 3)
    return (centres[:, None, None, :] + tri[None]).reshape(-1, 3)


def _rigs(scene):
    """(object, rig) of every visible SMPL armature in the scene."""
    for obj in scene.objects:
        if obj.type != "ARMATURE" or not obj.visible_get():
            continue
        try:
            yield obj, armature_io.rig_from_object(obj)
        except armature_io.ArmatureError:
            continue


def _smpl_armatures(scene):
    """The visible SMPL armatures that carry keyed contacts."""
    for obj, rig in _rigs(scene):
        if any(CONTACT_PROP in obj.pose.bones[n] for n in rig.contact_bone_names):
            yield obj, rig


def _keyed(obj) -> set[str]:
    """The F-curve paths of the action the armature plays: a bone keeps the last custom-property value it was given
    when the armature switches to an action without those keys (the capture after a refine), so only keyed ones count."""
    bag = armature_io.active_channelbag(obj)
    return {fc.data_path for fc in bag.fcurves} if bag is not None else set()


def contact_discs(scene, threshold: float = 0.5) -> list[tuple[np.ndarray, tuple]]:
    """[(triangle vertices (M, 3) world units, RGBA)] for joints in contact at the current frame."""
    out = []
    for obj, rig in _smpl_armatures(scene):
        world = np.asarray(obj.matrix_world, np.float64)
        radius = DISC_RADIUS_M / rig.metres_per_unit
        keyed = _keyed(obj)
        for k, name in enumerate(rig.contact_bone_names):
            pb = obj.pose.bones[name]
            if pb.path_from_id(f'["{CONTACT_PROP}"]') not in keyed:
                continue
            value = float(pb.get(CONTACT_PROP, 0.0))
            if value < threshold:
                continue
            head = world[:3, :3] @ np.asarray(pb.head, np.float64) + world[:3, 3]
            colour = CONTACT_COLOURS[k].copy()
            colour[3] = 0.35 + 0.55 * value
            out.append((disc_triangles(head, radius), tuple(colour)))
    return out


def doubt_colour(doubt_m: float) -> tuple:
    """RGBA: yellow at DOUBT_MIN_M, red from DOUBT_RED_M."""
    f = min(max((doubt_m - DOUBT_MIN_M) / (DOUBT_RED_M - DOUBT_MIN_M), 0.0), 1.0)
    return (1.0, 0.85 * (1.0 - f), 0.1, 0.45)


def doubt_rings(scene) -> list[tuple[np.ndarray, tuple]]:
    """[(triangle vertices (M, 3) world units, RGBA)]: a disc at every joint whose keyed 'doubt' at the current
    frame is at least DOUBT_MIN_M, its radius the doubt (capped at 2 x DOUBT_RED_M)."""
    out = []
    for obj, rig in _rigs(scene):
        world = np.asarray(obj.matrix_world, np.float64)
        keyed = _keyed(obj)
        for name in rig.bone_names:
            pb = obj.pose.bones[name]
            if pb.path_from_id(f'["{DOUBT_PROP}"]') not in keyed:
                continue
            value = float(pb.get(DOUBT_PROP, 0.0))
            if value < DOUBT_MIN_M:
                continue
            head = world[:3, :3] @ np.asarray(pb.head, np.float64) + world[:3, 3]
            radius = min(value, 2 * DOUBT_RED_M) / rig.metres_per_unit
            out.append((disc_triangles(head, radius), doubt_colour(value)))
    return out


_trail_cache: dict = {}


def _trail_key(obj, scene):
    ad = obj.animation_data
    action = ad.action if ad is not None else None
    bag = armature_io.active_channelbag(obj)
    keys = sum(len(fc.keyframe_points) for fc in bag.fcurves) if bag is not None else 0
    return (obj.name, action.as_pointer() if action else 0, keys, scene.frame_start, scene.frame_end,
            tuple(np.round(np.asarray(obj.matrix_world), 5).ravel()))  # fmt: skip


def trail_discs(scene, threshold: float = 0.5) -> list[tuple[np.ndarray, tuple]]:
    """[(triangle vertices, RGBA)] of the ankles/toes over the scene range where in contact."""
    out = []
    for obj, _rig in _smpl_armatures(scene):
        key = _trail_key(obj, scene)
        hit = _trail_cache.get(obj.name)
        if hit is None or hit[0] != key:
            try:
                # From a draw callback: the action's F-curves only, no depsgraph updates.
                anim = armature_io.read_animation(obj, scene, method="fcurves", update=False)
            except armature_io.ArmatureError:
                _trail_cache[obj.name] = (key, [])
                continue
            items = []
            if anim.contacts is not None:
                world_joints = anim.joints / anim.metres_per_unit  # back to Blender units
                radius = 0.5 * DISC_RADIUS_M / anim.metres_per_unit
                for k in TRAIL_CONTACTS:
                    on = anim.contacts[:, k] >= threshold
                    if np.any(on):
                        colour = CONTACT_COLOURS[k].copy()
                        colour[3] = 0.3
                        items.append((disc_triangles(world_joints[on, CONTACT_JOINTS[k]], radius), tuple(colour)))
            hit = (key, items)
            _trail_cache[obj.name] = hit
        out.extend(hit[1])
    return out


def ghost_segments(scene) -> np.ndarray:
    """(S, 2, 3) parent -> child bones (world units) of the running refine's preview at the
    current frame: S = 21 where the backend has sent that frame back, else 0 (no refine running,
    the frame not previewed yet, or the refined armature not in ``scene``)."""
    run = refine_run.active
    none = np.zeros((0, 2, 3))
    if run is None or run.finished or run.obj_name not in scene.objects:
        return none
    joints = run.preview_at(scene.frame_current)
    if joints is None:
        return none
    return np.stack([joints[list(PARENTS[1:])], joints[1:]], axis=1)


def _draw_ghost(gpu, batch_for_shader, scene) -> None:
    """Lines of ``ghost_segments``, drawn over everything (a body mesh must not hide them)."""
    segments = ghost_segments(scene)
    if not len(segments):
        return
    shader = gpu.shader.from_builtin("POLYLINE_UNIFORM_COLOR")
    batch = batch_for_shader(shader, "LINES", {"pos": segments.reshape(-1, 3).astype(np.float32)})
    shader.uniform_float("viewportSize", gpu.state.viewport_get()[2:])
    shader.uniform_float("lineWidth", GHOST_WIDTH_PX)
    shader.uniform_float("color", GHOST_COLOUR)
    gpu.state.blend_set("ALPHA")
    gpu.state.depth_test_set("NONE")
    batch.draw(shader)
    gpu.state.blend_set("NONE")


def _draw_contacts(gpu, batch_for_shader, scene, settings) -> None:
    """Discs of ``contact_discs`` (and ``trail_discs``), depth-tested."""
    items = contact_discs(scene, settings.contact_threshold) if settings.show_contacts else []
    if settings.show_contacts and settings.show_trail:
        items += trail_discs(scene, settings.contact_threshold)
    if settings.show_doubt:
        items += doubt_rings(scene)
    if not items:
        return
    shader = gpu.shader.from_builtin("UNIFORM_COLOR")
    gpu.state.blend_set("ALPHA")
    gpu.state.depth_test_set("LESS_EQUAL")
    for verts, colour in items:
        batch = batch_for_shader(shader, "TRIS", {"pos": verts.astype(np.float32)})
        shader.uniform_float("color", colour)
        batch.draw(shader)
    gpu.state.depth_test_set("NONE")
    gpu.state.blend_set("NONE")


_ghost_failed = False


def _draw():
    global _ghost_failed
    scene = bpy.context.scene
    settings = getattr(scene, "dreamor", None)
    if settings is None:
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    # Never let a draw callback spam every redraw: a part that fails is switched off.
    if not _ghost_failed:
        try:
            _draw_ghost(gpu, batch_for_shader, scene)
        except Exception as exc:
            print(f"DREAMoR refine preview disabled: {exc.__class__.__name__}: {exc}")
            _ghost_failed = True
    if settings.show_contacts or settings.show_doubt:
        try:
            _draw_contacts(gpu, batch_for_shader, scene, settings)
        except Exception as exc:
            print(f"DREAMoR contact preview disabled: {exc.__class__.__name__}: {exc}")
            settings.show_contacts = settings.show_doubt = False


_handle = None


def register_overlay():
    global _handle
    if _handle is None:
        _handle = bpy.types.SpaceView3D.draw_handler_add(_draw, (), "WINDOW", "POST_VIEW")


def unregister_overlay():
    global _handle
    if _handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_handle, "WINDOW")
        _handle = None
    _trail_cache.clear()


# --------------------------------------------------------------------------- render markers

MARKER_TAG = "dreamor_contact_marker_of"


def _marker_collection_name(obj) -> str:
    return f"DREAMoR Contacts: {obj.name}"


def _marker_mesh() -> bpy.types.Mesh:
    mesh = bpy.data.meshes.get("DREAMoR Contact Marker")
    if mesh is None:
        mesh = bpy.data.meshes.new("DREAMoR Contact Marker")
        bm = bmesh.new()
        bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=8, radius=1.0)
        bm.to_mesh(mesh)
        bm.free()
    return mesh


def _marker_material(k: int) -> bpy.types.Material:
    name = f"DREAMoR Contact {JOINT_NAMES[CONTACT_JOINTS[k]]}"
    mat = bpy.data.materials.get(name)
    if mat is None:
        mat = bpy.data.materials.new(name)
        colour = tuple(CONTACT_COLOURS[k])
        mat.diffuse_color = colour
        if mat.node_tree is None:
            mat.use_nodes = True
        bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = colour
            bsdf.inputs["Emission Color"].default_value = colour
            bsdf.inputs["Emission Strength"].default_value = 2.0
    return mat


def remove_contact_markers(obj) -> int:
    """Delete the markers made for this armature; returns how many were removed."""
    removed = 0
    for marker in [o for o in bpy.data.objects if o.get(MARKER_TAG) == obj.name]:
        bpy.data.objects.remove(marker)
        removed += 1
    coll = bpy.data.collections.get(_marker_collection_name(obj))
    if coll is not None and not coll.objects:
        bpy.data.collections.remove(coll)
    return removed


def create_contact_markers(obj, scene=None, radius_m: float = DISC_RADIUS_M) -> list[bpy.types.Object]:
    """Small spheres that follow the 9 contact bones and are sized by their 'contact' value.

    Each sphere copies its bone's head location (constraint) and its scale is driven by
    ``radius * contact``, so it vanishes out of contact; it renders like any mesh.
    Replaces markers made earlier for the same armature.
    """
    scene = scene or bpy.context.scene
    rig = armature_io.rig_from_object(obj)
    armature_io.ensure_bone_props(obj, rig.contact_bone_names, CONTACT_PROP, 0.0, armature_io.CONTACT_DESCRIPTION)
    remove_contact_markers(obj)
    coll = bpy.data.collections.get(_marker_collection_name(obj))
    if coll is None:
        coll = bpy.data.collections.new(_marker_collection_name(obj))
        scene.collection.children.link(coll)
    mesh = _marker_mesh()
    radius = radius_m / rig.metres_per_unit
    made = []
    for k, bone in enumerate(rig.contact_bone_names):
        marker = bpy.data.objects.new(f"{obj.name} contact {JOINT_NAMES[CONTACT_JOINTS[k]]}", mesh)
        marker[MARKER_TAG] = obj.name
        coll.objects.link(marker)
        _assign_object_material(marker, _marker_material(k))
        con = marker.constraints.new("COPY_LOCATION")
        con.target, con.subtarget, con.head_tail = obj, bone, 0.0
        path = obj.pose.bones[bone].path_from_id(f'["{CONTACT_PROP}"]')
        for i in range(3):
            fc = marker.driver_add("scale", i)
            drv = fc.driver
            drv.type = "SCRIPTED"
            var = drv.variables.new()
            var.name = "contact"
            var.type = "SINGLE_PROP"
            var.targets[0].id_type = "OBJECT"
            var.targets[0].id = obj
            var.targets[0].data_path = path
            drv.expression = f"{radius:.6g} * contact"
            for mod in list(fc.modifiers):
                fc.modifiers.remove(mod)
        made.append(marker)
    return made


def _assign_object_material(obj, mat):
    """Give ``obj`` its own material on the shared mesh (material slot linked to the object)."""
    if not obj.data.materials:
        obj.data.materials.append(None)
    obj.material_slots[0].link = "OBJECT"
    obj.material_slots[0].material = mat
