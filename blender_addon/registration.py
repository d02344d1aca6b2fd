"""Registering the add-on with Blender: its classes, properties, menus, overlay and file handlers."""
from __future__ import annotations

import atexit

import bpy
from bpy.app.handlers import persistent

from . import backend_process, operators, overlay, panels, preferences, refine_run

_classes = preferences.classes + operators.classes + panels.classes


@persistent
def _on_load_pre(*_args):
    """A file is about to replace the scene: a running refine cannot write into it any more."""
    if refine_run.active is not None:
        refine_run.active.cancel()
        refine_run.active = None


@persistent
def _on_load_post(*_args):
    job = getattr(bpy.context.window_manager, "dreamor_job", None)
    if job is not None and refine_run.active is None:
        job.running, job.progress, job.stage = False, 0.0, ""


def register():
    for cls in _classes:
        bpy.utils.register_class(cls)
    preferences.register_properties()
    panels.register_menus()
    overlay.register_overlay()
    bpy.app.handlers.load_pre.append(_on_load_pre)
    bpy.app.handlers.load_post.append(_on_load_post)
    atexit.register(backend_process.shutdown_owned)  # a backend Blender started ends with Blender


def unregister():
    atexit.unregister(backend_process.shutdown_owned)
    _on_load_pre()
    backend_process.unwatch()
    backend_process.shutdown_owned()
    for handlers, fn in ((bpy.app.handlers.load_pre, _on_load_pre), (bpy.app.handlers.load_post, _on_load_post)):
        if fn in handlers:
            handlers.remove(fn)
    overlay.unregister_overlay()
    panels.unregister_menus()
    preferences.unregister_properties()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
