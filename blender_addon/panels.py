"""The sidebar panel (3D View > Sidebar > DREAMoR)."""
from __future__ import annotations

import bpy

from . import armature_io, backend_process, preferences


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DREAMoR"


class DREAMOR_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "DREAMoR"

    def draw(self, context):
        layout = self.layout
        obj = context.object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select an SMPL armature", icon="INFO")
            return
        try:
            rig = armature_io.rig_from_object(obj)
        except armature_io.ArmatureError as exc:
            col = layout.column(align=True)
            for i, line in enumerate(_wrap(str(exc), 38)):
                col.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
            return
        layout.label(text=f"{obj.name}: {rig.convention.label}", icon="ARMATURE_DATA")
        ad = obj.animation_data
        if ad is not None and ad.action is not None:
            row = layout.row(align=True)
            row.label(text=f"Action: {ad.action.name}", icon="ACTION")
            if armature_io.source_action(ad.action) is not None:
                row.operator("dreamor.restore_action", text="", icon="LOOP_BACK")


def draw_backend_status(layout, context) -> None:
    """The status light, why it is off, and Start/Stop (also drawn in the add-on preferences)."""
    state, text, detail = backend_process.status(context)
    layout.label(text=text, icon=backend_process.light_icon(state))
    if detail:
        col = layout.column(align=True)
        col.scale_y = 0.8
        for line in _wrap(detail, 42):
            col.label(text=line)
    prefs = preferences.preferences(context)
    attach = prefs is not None and bool(prefs.connection_file.strip())
    row = layout.row(align=True)
    if state in ("stopped", "missing"):
        row.operator("dreamor.backend_start", text="Connect" if attach else "Start", icon="LINKED" if attach else "PLAY")
    else:
        b = backend_process.get()
        row.operator("dreamor.backend_stop", text="Stop" if b.owned else "Disconnect", icon="PAUSE" if b.owned else "UNLINKED")


class DREAMOR_PT_backend(_Sidebar, bpy.types.Panel):
    bl_label = "Backend"
    bl_parent_id = "DREAMOR_PT_main"

    def draw(self, context):
        draw_backend_status(self.layout, context)


class DREAMOR_PT_occlusion(_Sidebar, bpy.types.Panel):
    bl_label = "Occlusion"
    bl_parent_id = "DREAMOR_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.dreamor
        layout.prop(settings, "mark_frames", text="")
        layout.prop(settings, "include_children")
        row = layout.row(align=True)
        for idname, icon in (("dreamor.mark_occluded", "HIDE_ON"), ("dreamor.clear_occluded", "HIDE_OFF")):
            op = row.operator(idname, icon=icon)
            op.frames = settings.mark_frames
            op.include_children = settings.include_children
        layout.operator("dreamor.select_occluded", icon="RESTRICT_SELECT_OFF")
        row = layout.row(align=True)
        row.operator("dreamor.pin_pose", icon="PINNED")
        row.operator("dreamor.clear_pins", icon="UNPINNED")
        layout.prop(settings, "noisy_confidence", slider=True)
        row = layout.row(align=True)
        op = row.operator("dreamor.mark_noisy", icon="MOD_NOISE")
        op.frames, op.include_children, op.confidence = settings.mark_frames, settings.include_children, settings.noisy_confidence
        row.operator("dreamor.clear_noisy", icon="X")


class DREAMOR_PT_refine(_Sidebar, bpy.types.Panel):
    bl_label = "Refine"
    bl_parent_id = "DREAMOR_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.dreamor
        job = context.window_manager.dreamor_job
        col = layout.column()
        col.enabled = not job.running
        col.prop(settings, "preset")
        col.prop(settings, "refine_frames")
        col.prop(settings, "keep_visible")
        col.prop(settings, "noisy")
        col.prop(settings, "lock_feet")
        col.prop(settings, "alternatives")
        if job.running:
            layout.progress(factor=job.progress, type="BAR", text=job.stage or "Refining...")
            layout.operator("dreamor.refine_cancel", icon="CANCEL")
        else:
            big = layout.row()
            big.scale_y = 1.4
            big.operator("dreamor.refine", icon="PLAY")
            if not backend_process.get().ready:
                layout.label(text="Start the backend first (Backend above)", icon="INFO")


class DREAMOR_PT_contacts(_Sidebar, bpy.types.Panel):
    bl_label = "Contacts"
    bl_parent_id = "DREAMOR_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.dreamor
        layout.prop(settings, "show_contacts")
        sub = layout.column()
        sub.active = settings.show_contacts
        sub.prop(settings, "show_trail")
        sub.prop(settings, "contact_threshold", slider=True)
        row = layout.row(align=True)
        row.operator("dreamor.create_contact_markers", text="Markers", icon="MESH_UVSPHERE")
        row.operator("dreamor.remove_contact_markers", text="", icon="X")
        layout.prop(settings, "show_doubt")


class DREAMOR_PT_files(_Sidebar, bpy.types.Panel):
    bl_label = "Clip Files"
    bl_parent_id = "DREAMOR_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        row = self.layout.row(align=True)
        row.operator("dreamor.import_clip", text="Import", icon="IMPORT")
        row.operator("dreamor.export_clip", text="Export", icon="EXPORT")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def _menu_import(self, context):
    self.layout.operator("dreamor.import_clip", text="DREAMoR Clip (.npz)")


def _menu_export(self, context):
    self.layout.operator("dreamor.export_clip", text="DREAMoR Clip (.npz)")


def register_menus():
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def unregister_menus():
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)


classes = (DREAMOR_PT_main, DREAMOR_PT_backend, DREAMOR_PT_occlusion, DREAMOR_PT_refine, DREAMOR_PT_contacts, DREAMOR_PT_files)
