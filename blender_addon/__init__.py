"""DREAMoR for Blender: mark occluded bones, refine SMPL motion with the DREAMoR backend,
preview contacts. Registration only; see operators.py, panels.py and armature_io.py."""
from __future__ import annotations

import atexit

import bpy
from bpy.app.handlers import persistent

from . import backend, operators, overlay, panels, preferences, refine

_classes = preferences.classes + operators.classes + panels.classes


@persistent
def _on_load_pre(*_args):
    """A file is about to replace the scene: a running refine cannot write into it any more."""
    if refine.active is not None:
        refine.active.cancel()
        refine.active = None


@persistent
def _on_load_post(*_args):
    job = getattr(bpy.context.window_manager, "dreamor_job", None)
    if job is not None and refine.active is None:
        job.running, job.progress, job.stage = False, 0.0, ""


def register():
    for cls in _classes:
        bpy.utils.register_class(cls)
    preferences.register_properties()
    panels.register_menus()
    overlay.register_overlay()
    bpy.app.handlers.load_pre.append(_on_load_pre)
    bpy.app.handlers.load_post.append(_on_load_post)
    atexit.register(backend.shutdown_owned)  # a backend Blender started ends with Blender


def unregister():
    atexit.unregister(backend.shutdown_owned)
    _on_load_pre()
    backend.unwatch()
    backend.shutdown_owned()
    for handlers, fn in ((bpy.app.handlers.load_pre, _on_load_pre), (bpy.app.handlers.load_post, _on_load_post)):
        if fn in handlers:
            handlers.remove(fn)
    overlay.unregister_overlay()
    panels.unregister_menus()
    preferences.unregister_properties()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
