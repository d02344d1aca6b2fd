"""Render a Workbench preview of a refined clip with the add-on's contact markers.

Builds the add-on zip (``build_addon.py --no-wheels``), installs and enables it in headless
bpy the way ``tests/blender/conftest.py`` does, imports the refined clip (and the clean clip,
offset to the side, in grey) with ``dreamor.import_clip``, adds the render-visible contact
markers with ``dreamor.create_contact_markers``, gives each pose bone a simple capsule so the
body shows in renders, and renders one frame where a foot is in contact.

    .venv/bin/python scripts/render_preview.py [--clip out/demo/refined.npz] [--clean out/demo/clean.npz]
        [--out docs/addon_refined_contacts.png] [--frame N]
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="dreamor-render-user-"))

import bpy  # noqa: E402
import bmesh  # noqa: E402
from mathutils import Vector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPO_MODULE = "dreamor_render"


def enable_addon():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_addon
    finally:
        sys.path.pop(0)
    zip_path = build_addon.build(Path(tempfile.mkdtemp(prefix="dreamor-dist-")), with_wheels=False)
    repos = bpy.context.preferences.extensions.repos
    if repos.get(REPO_MODULE) is None:
        repos.new(name=REPO_MODULE, module=REPO_MODULE, custom_directory=tempfile.mkdtemp(prefix="dreamor-repo-"),
                  source="USER")
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo=REPO_MODULE, enable_on_install=True)
    assert result == {"FINISHED"}, result
    return importlib.import_module(f"bl_ext.{REPO_MODULE}.dreamor")


def material(name, rgba):
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = rgba
    return mat


def capsule_mesh(name, length, radius, head_scale=1.25):
    """A cylinder along +Y from 0 to ``length`` with a sphere at the head (bone-local axes)."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    if length > 1e-6:
        geom = bmesh.ops.create_cone(bm, cap_ends=True, segments=12, radius1=radius, radius2=radius * 0.8, depth=length)
        bmesh.ops.rotate(bm, verts=geom["verts"], cent=(0, 0, 0),
                         matrix=__import__("mathutils").Matrix.Rotation(-math.pi / 2, 3, "X"))
        bmesh.ops.translate(bm, verts=geom["verts"], vec=(0, length / 2, 0))
    geom = bmesh.ops.create_uvsphere(bm, u_segments=12, v_segments=6, radius=radius * head_scale)
    bm.to_mesh(mesh)
    bm.free()
    for p in mesh.polygons:
        p.use_smooth = True
    return mesh


def add_body(arm, mat, radius_m=0.022):
    """One capsule per pose bone, following it with a Copy Transforms constraint."""
    coll = bpy.data.collections.new(f"Body: {arm.name}")
    bpy.context.scene.collection.children.link(coll)
    unit = 1.0 / max(arm.matrix_world.to_scale()[0], 1e-9)  # armature units per metre
    for bone in arm.data.bones:
        if bone.parent is None and len(arm.data.bones) > 22:
            continue  # the import's extra root bone (sits on the ground, not part of the body)
        big = {"head": 4.5, "pelvis": 3.0}.get(bone.name.lower(), 1.2)
        length = 0.0 if bone.name.lower() == "head" else bone.length  # the head is just a ball
        mesh = capsule_mesh(f"cap {bone.name}", length, radius_m * unit, big)
        obj = bpy.data.objects.new(f"{arm.name} body {bone.name}", mesh)
        obj.data.materials.append(mat)
        coll.objects.link(obj)
        con = obj.constraints.new("COPY_TRANSFORMS")
        con.target, con.subtarget = arm, bone.name
    return coll


def import_clip(path, before):
    assert bpy.ops.dreamor.import_clip(filepath=str(path)) == {"FINISHED"}
    new = [o for o in bpy.data.objects if o.type == "ARMATURE" and o.name not in before]
    return new[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(ROOT / "out/demo/refined.npz"))
    p.add_argument("--clean", default=str(ROOT / "out/demo/clean.npz"), help="'' to leave it out")
    p.add_argument("--out", default=str(ROOT / "docs/addon_refined_contacts.png"))
    p.add_argument("--frame", type=int, default=0, help="0: the contact frame nearest the middle of the clip")
    p.add_argument("--offset", type=float, default=1.0, help="metres between the refined and the clean body")
    args = p.parse_args(argv)

    enable_addon()
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene

    refined = import_clip(args.clip, set())
    clip = np.load(args.clip)
    contacts, trans = clip["contacts"], clip["trans"]
    n = len(trans)
    frame = args.frame
    if frame <= 0:
        feet = (contacts[:, 3:7] >= 0.5).sum(1)  # ankles and toes in contact
        cand = np.flatnonzero(feet == feet.max())
        frame = int(cand[np.argmin(np.abs(cand - n // 2))]) + 1  # most feet down, nearest the middle
    assert bpy.ops.dreamor.create_contact_markers() == {"FINISHED"}

    # walking direction (horizontal) around the chosen frame; the camera looks across it
    i = frame - 1
    a, b = max(i - 10, 0), min(i + 10, n - 1)
    fwd = np.array([*(trans[b, :2] - trans[a, :2]), 0.0])
    fwd = fwd / (np.linalg.norm(fwd) or 1.0) if np.linalg.norm(fwd) > 1e-6 else np.array([1.0, 0.0, 0.0])
    side = np.cross([0.0, 0.0, 1.0], fwd)  # horizontal, perpendicular to walking

    blue = material("Refined body", (0.55, 0.68, 0.82, 1.0))
    add_body(refined, blue)
    if args.clean and Path(args.clean).exists():
        clean = import_clip(args.clean, {o.name for o in bpy.data.objects})
        clean.location = Vector(clean.location) + Vector(side * args.offset)
        add_body(clean, material("Clean body", (0.72, 0.72, 0.72, 1.0)))
        for o in bpy.context.view_layer.objects:
            o.select_set(False)
        refined.select_set(True)
        bpy.context.view_layer.objects.active = refined
    scene.frame_set(frame)

    # body centre at this frame (world), from the pose bones
    heads = [refined.matrix_world @ pb.head for pb in refined.pose.bones]
    centre = np.mean([np.array(h) for h in heads], axis=0)
    ground_z = min(h.z for h in heads) - 0.05 if heads else 0.0
    ground_z = min(ground_z, 0.0)
    look = centre + side * (args.offset / 2 if args.clean else 0.0)

    bpy.ops.mesh.primitive_plane_add(size=20, location=(look[0], look[1], ground_z))
    plane = bpy.context.object
    plane.data.materials.append(material("Ground", (0.95, 0.94, 0.90, 1.0)))

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 35
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    view = -side * 3.4 + fwd * 1.4  # front-side, on the refined body's side
    cam.location = Vector(look + view + np.array([0, 0, 0.6]))
    target = Vector(look + np.array([0, 0, -0.1]))
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam

    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x, r.resolution_y, r.resolution_percentage = 960, 540, 100
    r.image_settings.file_format = "PNG"
    r.filepath = str(Path(args.out).resolve())
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "MATERIAL"
    shading.show_shadows = True
    shading.show_cavity = False
    shading.shadow_intensity = 0.35
    scene.display.render_aa = "8"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(write_still=True)
    on = [i for i in range(contacts.shape[1]) if contacts[frame - 1, i] >= 0.5]
    print(f"rendered frame {frame} (contacts on: {on}) to {args.out}")


if __name__ == "__main__":
    main()
