"""Fixtures for the Blender tests: real bpy 5.0.1 headless, the add-on installed from its zip.

The add-on is built with ``scripts/build_addon.py --no-wheels`` and installed as an
extension into a temporary local repository, exactly as a user's Blender would install it
(``bpy.ops.extensions.package_install_files``). Blender's user folders point at a temporary
directory so the tests never touch the real user configuration.
"""
from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

import pytest

_USER = tempfile.mkdtemp(prefix="dreamor-blender-user-")
os.environ.setdefault("BLENDER_USER_RESOURCES", _USER)

ROOT = Path(__file__).resolve().parents[2]
REPO_MODULE = "dreamor_tests"


@pytest.fixture(scope="session")
def addon_zip(build_addon, tmp_path_factory) -> Path:
    return build_addon.build(tmp_path_factory.mktemp("dist"), with_wheels=False)


@pytest.fixture(scope="session")
def addon(addon_zip, tmp_path_factory):
    """The installed add-on's package (``bl_ext.dreamor_tests.dreamor``), enabled."""
    bpy = pytest.importorskip("bpy")
    repos = bpy.context.preferences.extensions.repos
    if repos.get(REPO_MODULE) is None:
        repos.new(name=REPO_MODULE, module=REPO_MODULE, custom_directory=str(tmp_path_factory.mktemp("repo")), source="USER")
    result = bpy.ops.extensions.package_install_files(filepath=str(addon_zip), repo=REPO_MODULE, enable_on_install=True)
    assert result == {"FINISHED"}
    return importlib.import_module(f"bl_ext.{REPO_MODULE}.dreamor")


@pytest.fixture()
def sub(addon):
    """Import a submodule of the installed add-on: ``sub('armature_io')``."""
    return lambda name: importlib.import_module(f"{addon.__name__}.{name}")


@pytest.fixture()
def empty_scene(addon):
    """An empty scene (the add-on stays enabled)."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    yield bpy.context.scene
