"""DREAMoR for Blender: mark occluded bones, refine SMPL motion with the DREAMoR backend,
preview contacts. Registration only; see operators.py, panels.py and armature_io.py."""
from __future__ import annotations

import bpy

from . import operators, overlay, panels, preferences

_classes = preferences.classes + operators.classes + panels.classes


def register():
    for cls in _classes:
        bpy.utils.register_class(cls)
    preferences.register_properties()
    panels.register_menus()
    overlay.register_overlay()


def unregister():
    overlay.unregister_overlay()
    panels.unregister_menus()
    preferences.unregister_properties()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
