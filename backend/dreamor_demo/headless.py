"""Headless Blender (bpy 5.0.1 as a Python module) driving the real add-on, for `dreamor demo`
and ``scripts/render_preview.py``: enabling the add-on from its built zip, a simple body for
renders, a Workbench camera and render set-up, and image tiling.

bpy is not a dependency of ``dreamor`` (it comes with the ``[test]`` extra, which
``bash scripts/dev.sh`` installs), so nothing here imports it at module level: :func:`import_bpy`
turns its absence into one DreamorError line. Blender's user folders point at a temporary
directory (as in ``tests/blender/conftest.py``), so the user's Blender configuration is never
touched.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from dreamor.errors import DreamorError

ROOT = Path(__file__).resolve().parents[2]  # the repository checkout (blender_addon/, scripts/)
REPO_MODULE = "dreamor_headless"  # the extension repository the add-on is installed into
BPY_MISSING = ("Blender as a Python module is not installed here: pip install bpy==5.0.1 "
               "(or run the demo with: bash scripts/dev.sh demo)")
BPY_BROKEN = ("Blender as a Python module (bpy) is installed but does not load ({}); on Linux it needs the "
              "X11/OpenGL client libraries (libX11, libXrender, libXfixes, libXi, libxkbcommon, libSM, libGL), "
              "e.g. apt install libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libgl1")


def import_bpy():
    """``bpy``, with Blender's user folders in a temporary directory; DreamorError when missing."""
    if "bpy" not in sys.modules and "BLENDER_USER_RESOURCES" not in os.environ:
        user = tempfile.mkdtemp(prefix="dreamor-blender-user-")
        os.environ["BLENDER_USER_RESOURCES"] = user
        atexit.register(shutil.rmtree, user, ignore_errors=True)
    try:
        import bpy
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "bpy"
        raise DreamorError(BPY_MISSING if missing else BPY_BROKEN.format(exc)) from None
    return bpy


def enable_addon(work: Path):
    """Build the add-on zip (no wheels: this Python has pyzmq) into ``work``, install it into a
    temporary extension repository and enable it; returns the add-on's package module."""
    bpy = import_bpy()
    name = f"bl_ext.{REPO_MODULE}.dreamor"
    if name in sys.modules and bpy.context.preferences.addons.get(name) is not None:
        return sys.modules[name]
    build_script = ROOT / "scripts" / "build_addon.py"
    if not build_script.exists():
        raise DreamorError(f"{build_script} is missing: run this from a clone of the repository "
                           "(bash scripts/dev.sh demo)")
    sys.path.insert(0, str(build_script.parent))
    try:
        import build_addon
    finally:
        sys.path.pop(0)
    zip_path = build_addon.build(work / "dist", with_wheels=False, require_wire=True)
    repos = bpy.context.preferences.extensions.repos
    if repos.get(REPO_MODULE) is None:
        (work / "extensions").mkdir(parents=True, exist_ok=True)
        repos.new(name=REPO_MODULE, module=REPO_MODULE, custom_directory=str(work / "extensions"), source="USER")
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo=REPO_MODULE, enable_on_install=True)
    if result != {"FINISHED"}:
        raise DreamorError(f"Blender could not install the add-on from {zip_path}")
    return importlib.import_module(name)


def addon_module(addon, name: str):
    """A submodule of the installed add-on: ``addon_module(addon, 'armature_io')``."""
    return importlib.import_module(f"{addon.__name__}.{name}")


# --------------------------------------------------------------------------- bodies


def material(name: str, rgba) -> "bpy.types.Material":
    bpy = import_bpy()
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = rgba
    return mat


def capsule_mesh(name: str, length: float, radius: float, head_scale: float = 1.25):
    """A cylinder along +Y from 0 to ``length`` with a sphere at the head (bone-local axes)."""
    bpy = import_bpy()
    import bmesh
    from mathutils import Matrix

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    if length > 1e-6:
        geom = bmesh.ops.create_cone(bm, cap_ends=True, segments=12, radius1=radius, radius2=radius * 0.8, depth=length)
        bmesh.ops.rotate(bm, verts=geom["verts"], cent=(0, 0, 0), matrix=Matrix.Rotation(-math.pi / 2, 3, "X"))
        bmesh.ops.translate(bm, verts=geom["verts"], vec=(0, length / 2, 0))
    bmesh.ops.create_uvsphere(bm, u_segments=12, v_segments=6, radius=radius * head_scale)
    bm.to_mesh(mesh)
    bm.free()
    for p in mesh.polygons:
        p.use_smooth = True
    return mesh


def add_body(arm, mat, radius_m: float = 0.022) -> dict[str, "bpy.types.Object"]:
    """One capsule per pose bone of ``arm`` (Copy Transforms), in a collection of its own, coloured
    like ``mat`` (material and object colour); returns {bone name: capsule object}."""
    bpy = import_bpy()
    coll = bpy.data.collections.new(f"Body: {arm.name}")
    bpy.context.scene.collection.children.link(coll)
    unit = 1.0 / max(arm.matrix_world.to_scale()[0], 1e-9)  # armature units per metre
    made = {}
    for bone in arm.data.bones:
        if bone.parent is None and len(arm.data.bones) > 22:
            continue  # the import's extra root bone (sits on the ground, not part of the body)
        big = {"head": 4.5, "pelvis": 3.0}.get(bone.name.lower(), 1.2)
        length = 0.0 if bone.name.lower() == "head" else bone.length  # the head is just a ball
        mesh = capsule_mesh(f"cap {bone.name}", length, radius_m * unit, big)
        obj = bpy.data.objects.new(f"{arm.name} body {bone.name}", mesh)
        obj.data.materials.append(mat)
        obj.color = mat.diffuse_color
        coll.objects.link(obj)
        con = obj.constraints.new("COPY_TRANSFORMS")
        con.target, con.subtarget = arm, bone.name
        made[bone.name] = obj
    return made


# --------------------------------------------------------------------------- camera and render


def ground_plane(centre, z: float = 0.0, size: float = 40.0):
    bpy = import_bpy()
    bpy.ops.mesh.primitive_plane_add(size=size, location=(float(centre[0]), float(centre[1]), z))
    plane = bpy.context.object
    plane.name = "Ground"
    plane.data.materials.append(material("Ground", (0.95, 0.94, 0.90, 1.0)))
    return plane


def camera(name: str = "Camera", lens: float = 35.0):
    """A new camera, made the scene's camera."""
    bpy = import_bpy()
    scene = bpy.context.scene
    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    cam.data.lens = lens
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def look_at(cam, location, target) -> None:
    """Put ``cam`` at ``location`` (world, m) looking at ``target``, Z up."""
    from mathutils import Vector

    cam.location = Vector(np.asarray(location, float))
    cam.rotation_euler = (Vector(np.asarray(target, float)) - cam.location).to_track_quat("-Z", "Y").to_euler()


def follow(cam, targets: np.ndarray, offset: np.ndarray, frame_start: int = 1) -> None:
    """Key ``cam`` on every frame at ``targets[i] + offset`` looking at ``targets[i]``.

    targets: (T, 3) world points (smooth them first: the camera keeps its distance).
    """
    for i, target in enumerate(np.asarray(targets, float)):
        look_at(cam, target + offset, target)
        cam.keyframe_insert("location", frame=frame_start + i)
        cam.keyframe_insert("rotation_euler", frame=frame_start + i)


def workbench(scene, width: int, height: int, aa: str = "8", sky=(0.83, 0.87, 0.92)) -> None:
    """Workbench render settings: studio light, soft shadows, object colours (``obj.color``),
    an opaque ``sky`` background and the Standard view transform (colours as given)."""
    bpy = import_bpy()
    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
    r.image_settings.file_format = "PNG"
    r.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    scene.world = scene.world or bpy.data.worlds.new("Sky")
    scene.world.color = sky
    shading = scene.display.shading
    shading.light, shading.studio_light = "STUDIO", "paint.sl"  # lights the ground as well as the bodies
    shading.color_type = "OBJECT"
    shading.show_shadows = True
    shading.show_cavity = False
    shading.shadow_intensity = 0.35
    scene.display.render_aa = aa


def stamp(scene, note: str) -> None:
    """Burn the frame number and ``note`` into the bottom of every render."""
    r = scene.render
    r.use_stamp = True
    for field in ("use_stamp_date", "use_stamp_time", "use_stamp_render_time", "use_stamp_camera", "use_stamp_lens",
                  "use_stamp_scene", "use_stamp_filename", "use_stamp_memory", "use_stamp_hostname",
                  "use_stamp_marker", "use_stamp_frame_range", "use_stamp_sequencer_strip"):
        setattr(r, field, False)
    r.use_stamp_frame = True
    r.use_stamp_note, r.stamp_note_text = bool(note), note
    r.stamp_font_size = max(8, r.resolution_x // 60)
    r.stamp_background = (0.1, 0.1, 0.1, 1.0)


@contextlib.contextmanager
def quiet():
    """Send what Blender prints from C (render logs, EGL warnings) to a scratch file while inside;
    its tail goes to stderr when the block fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            log.seek(0)
            text = log.read()[-4000:].decode(errors="replace")
            os.dup2(saved[1], 2)
            sys.stderr.write(text)
            raise
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def render_still(scene, frame: int, path: Path) -> Path:
    """Render ``frame`` to the PNG ``path``."""
    bpy = import_bpy()
    scene.frame_set(frame)
    scene.render.image_settings.media_type = "IMAGE"
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    with quiet():
        bpy.ops.render.render(write_still=True)
    return path


def render_video(scene, path: Path, frame_start: int, frame_end: int) -> Path:
    """Render frames ``frame_start..frame_end`` to an H.264 MP4 with Blender's FFmpeg encoder."""
    bpy = import_bpy()
    r = scene.render
    r.image_settings.media_type = "VIDEO"
    r.image_settings.file_format = "FFMPEG"
    r.ffmpeg.format, r.ffmpeg.codec = "MPEG4", "H264"
    r.ffmpeg.constant_rate_factor = "MEDIUM"
    scene.frame_start, scene.frame_end = frame_start, frame_end
    r.filepath = str(path)
    r.use_file_extension = False
    with quiet():
        bpy.ops.render.render(animation=True)
    r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "PNG"
    return path


def can_encode_video() -> bool:
    return bool(import_bpy().app.build_options.codec_ffmpeg)


def tile_images(paths: list[Path], columns: int, out: Path) -> Path:
    """Tile same-sized PNGs row by row (left to right, top to bottom) into one RGB PNG, with bpy's images."""
    bpy = import_bpy()
    images = [bpy.data.images.load(str(p)) for p in paths]
    w, h = images[0].size
    rows = math.ceil(len(images) / columns)
    canvas = np.ones((rows * h, columns * w, 4), np.float32)
    for k, img in enumerate(images):
        if tuple(img.size) != (w, h):
            raise ValueError(f"{paths[k]} is {tuple(img.size)}, not {(w, h)}")
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
        r, c = divmod(k, columns)
        y0 = (rows - 1 - r) * h  # Blender's pixel rows go bottom-up
        canvas[y0:y0 + h, c * w:(c + 1) * w] = px.reshape(h, w, 4)
        bpy.data.images.remove(img)
    grid = bpy.data.images.new("tiles", columns * w, rows * h, alpha=False)
    grid.pixels.foreach_set(canvas.ravel())
    grid.filepath_raw, grid.file_format = str(out), "PNG"
    grid.save()
    bpy.data.images.remove(grid)
    return out
