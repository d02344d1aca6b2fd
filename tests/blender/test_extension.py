"""The built zip, installed as a Blender extension: what it holds and what it registers."""
from __future__ import annotations

import ast
import importlib
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_zip_layout_and_manifest(addon_zip, build_addon):
    with zipfile.ZipFile(addon_zip) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        for f in build_addon.WIRE_FILES:
            src = ROOT / "backend" / "dreamor" / "server" / f
            if src.exists():  # verbatim copies: one source for the wire format
                assert zf.read(f"dreamor_wire/{f}") == src.read_bytes()
        for f in ("skeleton.py", "smpl22_rest_joints.json"):  # one source for the skeleton
            assert zf.read(f"dreamor_body/{f}") == (ROOT / "backend" / "dreamor" / "body" / f).read_bytes()
    assert {"__init__.py", "armature_io.py", "operators.py", "panels.py", "preferences.py", "overlay.py"} <= names
    assert not any(n.startswith("wheels/") or "__pycache__" in n for n in names)
    assert manifest["id"] == "dreamor" and manifest["schema_version"] == "1.0.0"
    assert manifest["blender_version_min"] == "4.2.0" and manifest["type"] == "add-on"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert "wheels" not in manifest  # --no-wheels


def test_manifest_lists_wheels(tmp_path, build_addon):
    wheels = [tmp_path / "pyzmq-27.3.0-cp311-cp311-win_amd64.whl", tmp_path / "pyzmq-27.3.0-cp311-cp311-macosx_10_15_universal2.whl"]
    manifest = tomllib.loads(build_addon.manifest_text(wheels))
    assert manifest["wheels"] == [f"./wheels/{w.name}" for w in wheels]


def test_addon_never_imports_torch_or_dreamor():
    """The add-on is NumPy + bpy only (the wire package adds zmq, lazily)."""
    for path in (ROOT / "blender_addon").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                assert mod.split(".")[0] not in {"torch", "dreamor", "zmq", "scipy"}, f"{path.name} imports {mod}"


@pytest.mark.blender
def test_installed_extension_registers(addon):
    import bpy

    for op in ("mark_occluded", "clear_occluded", "select_occluded", "import_clip", "export_clip",
               "create_contact_markers", "remove_contact_markers", "restore_action",
               "refine", "refine_cancel", "backend_start", "backend_stop"):  # fmt: skip
        assert hasattr(bpy.ops.dreamor, op), op
    assert addon.__name__ == "bl_ext.dreamor_tests.dreamor"
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    assert prefs.device == "auto" and prefs.python_path == ""
    settings = bpy.context.scene.dreamor
    assert (settings.preset, settings.keep_visible, settings.refine_frames) == ("default", True, "ALL")
    assert hasattr(bpy.types, "DREAMOR_PT_refine")
    overlay = importlib.import_module(f"{addon.__name__}.overlay")
    assert overlay._handle is not None
    backend = importlib.import_module(f"{addon.__name__}.backend_process")
    text, _icon = backend.status_line(bpy.context)
    assert text


@pytest.mark.blender
def test_disable_enable_cycle(addon):
    import bpy

    assert bpy.ops.preferences.addon_disable(module=addon.__name__) == {"FINISHED"}
    assert not hasattr(bpy.ops.dreamor, "mark_occluded") or not hasattr(bpy.types, "DREAMOR_OT_mark_occluded")
    assert not hasattr(bpy.types.Scene, "dreamor")
    assert bpy.ops.preferences.addon_enable(module=addon.__name__) == {"FINISHED"}
    assert hasattr(bpy.types.Scene, "dreamor") and hasattr(bpy.types, "DREAMOR_OT_mark_occluded")


@pytest.mark.blender
def test_operator_undo_is_one_step(empty_scene, tmp_path):
    """Marking through the operator is one undo step (as from the UI: Python calls pass undo=True)."""
    import bpy
    import numpy as np

    from dreamor.data.clip import Clip, save_clip

    bpy.ops.ed.undo_push(message="start")  # headless Blender starts its undo system on the first push
    t = 20
    path = save_clip(Clip(trans=np.zeros((t, 3)), root_orient=np.zeros((t, 3)), pose_body=np.zeros((t, 63)), fps=24.0), tmp_path / "c.npz")
    bpy.ops.dreamor.import_clip(filepath=str(path))
    bpy.ops.ed.undo_push(message="imported")
    bpy.ops.dreamor.mark_occluded("EXEC_DEFAULT", True, frames="CUSTOM", frame_start=3, frame_end=4, bones="left_knee")
    obj = bpy.context.object
    assert "visible" in obj.pose.bones["left_knee"]
    bpy.ops.ed.undo()
    assert "visible" not in bpy.data.objects["c"].pose.bones["left_knee"]
    assert bpy.data.objects["c"].animation_data.action is not None  # the import is still there


@pytest.mark.blender
def test_operators_say_why_they_cannot_run(empty_scene):
    """A script (or the greyed-out button's tooltip) is told what to select, not Blender's bare 'context is incorrect'."""
    import bpy

    for op in (bpy.ops.dreamor.refine, bpy.ops.dreamor.mark_occluded):
        with pytest.raises(RuntimeError, match=r"select an SMPL armature first \(nothing is active\)"):
            op()
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(RuntimeError, match=r"select an SMPL armature first \(the active object 'Cube' is a mesh\)"):
        bpy.ops.dreamor.refine()
