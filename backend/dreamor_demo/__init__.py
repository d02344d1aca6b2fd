"""The demo and headless-Blender helpers: everything that imports ``bpy`` outside the add-on.

``dreamor`` itself never imports bpy (DESIGN.md); this package sits above it: ``demo.py`` (`dreamor demo`, which
the CLI imports lazily), ``render.py`` (its Workbench pictures and contact plot) and ``headless.py`` (bpy as a
Python module driving the real add-on, also used by ``scripts/render_preview.py`` and the Blender tests' demo).
"""
