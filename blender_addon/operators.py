"""Operators, all under ``bpy.ops.dreamor.*`` so scripts and headless Blender can drive them.

Each one runs synchronously (``execute``), makes one undo step when it changes the scene, and
reports a sentence a user can act on when it cannot do its job (from Python that surfaces as a
RuntimeError). Refine and Start Backend are modal when started from the UI (``invoke``), so
Blender stays responsive while they wait.
"""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import armature_io, backend_process, clipfile, marks, overlay, refine_run
from .conventions import (CONFIDENCE_PROP, PINNED_PROP, SMPL_NEUTRAL_REST_JOINTS, VISIBLE_PROP, canonical_axes, descendants,
                          parse_joints)
from .preferences import FRAME_ITEMS, preferences

CUSTOM_ITEM = ("CUSTOM", "Custom", "frame_start .. frame_end of this operator")


def frame_span(scene, mode: str, start: int = 0, end: int = 0) -> tuple[int, int]:
    """Inclusive frame range for 'PREVIEW' (falls back to the scene range), 'SCENE', 'CURRENT', 'CUSTOM'."""
    if mode == "CURRENT":
        return scene.frame_current, scene.frame_current
    if mode == "CUSTOM":
        return min(start, end), max(start, end)
    if mode == "PREVIEW" and scene.use_preview_range:
        return scene.frame_preview_start, scene.frame_preview_end
    return scene.frame_start, scene.frame_end


def _armature_poll(cls, context) -> bool:
    """Whether the active object is an armature; if not, the reason Blender shows (and a script's error reads)."""
    obj = context.object
    if obj is not None and obj.type == "ARMATURE":
        return True
    what = "nothing is active" if obj is None else f"the active object '{obj.name}' is a {obj.type.lower()}"
    cls.poll_message_set(f"select an SMPL armature first ({what})")
    return False


def _rig_or_report(op, context):
    try:
        return armature_io.rig_from_object(context.object)
    except armature_io.ArmatureError as exc:
        op.report({"ERROR"}, str(exc))
        return None


class _MarkOptions:
    frames: EnumProperty(name="Frames", items=FRAME_ITEMS + (CUSTOM_ITEM,), default="PREVIEW")
    frame_start: IntProperty(name="Start", description="First frame when Frames is Custom", default=1)
    frame_end: IntProperty(name="End", description="Last frame when Frames is Custom", default=1)
    include_children: BoolProperty(
        name="Include Children", description="Also the bones below the chosen ones", default=False
    )
    bones: StringProperty(
        name="Bones",
        description="Joint names or groups, comma-separated (e.g. 'lower_body' or 'left_knee'); "
        "empty = the selected bones",
        default="",
    )

    def joints(self, context, rig) -> tuple[int, ...]:
        if self.bones.strip():
            chosen = parse_joints(self.bones, rig.convention)
        else:
            index = {n: j for j, n in enumerate(rig.bone_names)}
            chosen = tuple(index[pb.name] for pb in context.object.pose.bones if pb.select and pb.name in index)
        if self.include_children:
            chosen = tuple(sorted(descendants(chosen)))
        return chosen

    def run(self, context, value: float, prop: str, what: str):
        """Key mark ``prop`` = ``value`` on the chosen bones and frames; ``what`` names the mark in the report."""
        rig = _rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        try:
            joints = self.joints(context, rig)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not joints:
            self.report({"ERROR"}, "no SMPL bones selected; select bones in Pose Mode (or pass bones='lower_body')")
            return {"CANCELLED"}
        lo, hi = frame_span(context.scene, self.frames, self.frame_start, self.frame_end)
        keys = refine_run.keyed_range(context.object)
        if keys is not None and (hi < keys[0] or lo > keys[1]):  # a mark there would mark nothing of the motion
            self.report({"ERROR"}, f"frames {lo}..{hi} lie outside the motion (frames {keys[0]}..{keys[1]}); "
                                   "choose frames over the motion (the scene or preview range, or Custom)")
            return {"CANCELLED"}
        names = [rig.bone_names[j] for j in joints]
        marks.set_mark(context.object, names, lo, hi, value, prop)
        self.report({"INFO"}, f"marked {len(names)} bone(s) {what} on frames {lo}..{hi}")
        return {"FINISHED"}


class DREAMOR_OT_mark_occluded(_MarkOptions, bpy.types.Operator):
    """Mark the selected bones as occluded (not seen by the capture) over a frame range"""

    bl_idname = "dreamor.mark_occluded"
    bl_label = "Mark Occluded"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(_armature_poll)

    def execute(self, context):
        return self.run(context, 0.0, VISIBLE_PROP, "occluded")


class DREAMOR_OT_clear_occluded(_MarkOptions, bpy.types.Operator):
    """Mark the selected bones as visible again over a frame range"""

    bl_idname = "dreamor.clear_occluded"
    bl_label = "Clear Occluded"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(_armature_poll)

    def execute(self, context):
        return self.run(context, 1.0, VISIBLE_PROP, "visible")


class DREAMOR_OT_mark_noisy(_MarkOptions, bpy.types.Operator):
    """Mark the selected bones as noisy over a frame range: the refine smooths them instead of meeting them"""

    bl_idname = "dreamor.mark_noisy"
    bl_label = "Mark Noisy"
    bl_options = {"REGISTER", "UNDO"}

    confidence: FloatProperty(
        name="Confidence",
        description="How far the captured motion of these bones is trusted (1 = trusted, lower = smoothed more)",
        default=0.5, min=0.05, max=0.95,
    )  # fmt: skip

    poll = classmethod(_armature_poll)

    def execute(self, context):
        return self.run(context, self.confidence, CONFIDENCE_PROP, f"noisy (confidence {self.confidence:.2f})")


def _selected_bones(context, rig) -> list[str]:
    """The selected pose bones of the active armature that are SMPL bones of ``rig``."""
    return [pb.name for pb in context.object.pose.bones if pb.select and pb.name in rig.bone_names]


class _ClearMarks:
    """Remove mark ``prop`` (keys and property) from the selected bones, or from every bone when none is selected."""

    bl_options = {"REGISTER", "UNDO"}
    prop = ""
    what = ""  # the marks, in the report

    poll = classmethod(_armature_poll)

    def execute(self, context):
        rig = _rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        names = _selected_bones(context, rig) or list(rig.bone_names)
        count = marks.clear_all(context.object, names, prop=self.prop)
        self.report({"INFO"}, f"cleared the {self.what} of {count} bone(s)")
        return {"FINISHED"}


class DREAMOR_OT_clear_noisy(_ClearMarks, bpy.types.Operator):
    """Remove the noisy marks of the selected bones (all bones when none is selected)"""

    bl_idname = "dreamor.clear_noisy"
    bl_label = "Clear Noisy"
    prop, what = CONFIDENCE_PROP, "noisy marks"


class DREAMOR_OT_pin_pose(bpy.types.Operator):
    """Pin the selected bones' pose at the current frame: the refine returns them there (key the pose first)"""

    bl_idname = "dreamor.pin_pose"
    bl_label = "Pin Pose"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(_armature_poll)

    def execute(self, context):
        rig = _rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        names = _selected_bones(context, rig)
        if not names:
            self.report({"ERROR"}, "no SMPL bones selected; select the bones to pin in Pose Mode")
            return {"CANCELLED"}
        frame = context.scene.frame_current
        marks.set_visibility(context.object, names, frame, frame, True, prop=PINNED_PROP)
        self.report({"INFO"}, f"pinned {len(names)} bone(s) at frame {frame}")
        return {"FINISHED"}


class DREAMOR_OT_clear_pins(_ClearMarks, bpy.types.Operator):
    """Remove the pins of the selected bones (all bones when none is selected)"""

    bl_idname = "dreamor.clear_pins"
    bl_label = "Clear Pins"
    prop, what = PINNED_PROP, "pins"


class DREAMOR_OT_select_occluded(bpy.types.Operator):
    """Select the bones marked occluded (at the current frame, or anywhere in a range)"""

    bl_idname = "dreamor.select_occluded"
    bl_label = "Select Occluded"
    bl_options = {"REGISTER", "UNDO"}

    frames: EnumProperty(name="Frames", items=FRAME_ITEMS, default="CURRENT")
    extend: BoolProperty(name="Extend", description="Keep the current selection", default=False)

    poll = classmethod(_armature_poll)

    def execute(self, context):
        rig = _rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        obj = context.object
        lo, hi = frame_span(context.scene, self.frames)
        occluded = ~marks.visibility(obj, rig.bone_names, np.arange(lo, hi + 1)).all(axis=0)
        if not self.extend:
            for pb in obj.pose.bones:
                pb.select = False
        for name, occ in zip(rig.bone_names, occluded):
            if occ:
                obj.pose.bones[name].select = True
        self.report({"INFO"}, f"{int(occluded.sum())} occluded bone(s) on frames {lo}..{hi}")
        return {"FINISHED"}


class DREAMOR_OT_restore_action(bpy.types.Operator):
    """Switch the armature back to the action a refined action was made from"""

    bl_idname = "dreamor.restore_action"
    bl_label = "Use Original Action"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.object
        ad = obj.animation_data if obj is not None else None
        return ad is not None and armature_io.source_action(ad.action) is not None

    def execute(self, context):
        ad = context.object.animation_data
        source = armature_io.source_action(ad.action)
        slot_id = ad.action_slot.identifier if ad.action_slot else None
        ad.action = source
        if slot_id and source.slots.get(slot_id) is not None:
            ad.action_slot = source.slots[slot_id]
        self.report({"INFO"}, f"using action '{source.name}'")
        return {"FINISHED"}


# --------------------------------------------------------------------------- clip files


def import_clip(context, filepath: str, frame_start: int = 1, set_scene: bool = True):
    """Create a new SMPL armature animated by the clip; nothing is left behind on failure."""
    arrays = clipfile.load_clip_arrays(filepath)
    rest = arrays["rest_joints"] if arrays["rest_joints"] is not None else SMPL_NEUTRAL_REST_JOINTS
    try:
        canonical_axes(rest)
    except ValueError as exc:
        raise clipfile.ClipFileError(f"{filepath}: 'rest_joints': {exc}") from None
    t = len(arrays["trans"])
    rotations = np.concatenate([arrays["root_orient"][:, None], arrays["pose_body"].reshape(t, 21, 3)], axis=1)
    before, before_mode = context.view_layer.objects.active, context.object.mode if context.object else "OBJECT"
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    name = Path(filepath).stem or "SMPL"
    obj = None
    try:
        obj = armature_io.create_armature(name, rest, context.collection)
        armature_io.write_animation(
            obj, arrays["trans"], rotations, frame_start,
            contacts=arrays["contacts"], visible=arrays["visible"], action_name=name,
        )  # fmt: skip
    except BaseException:
        if obj is not None:
            ad, data = obj.animation_data, obj.data
            action = ad.action if ad is not None else None
            bpy.data.objects.remove(obj)
            bpy.data.armatures.remove(data)
            if action is not None and action.users == 0:
                bpy.data.actions.remove(action)
        if before is not None:  # the scene as it was: the active object, in its mode
            context.view_layer.objects.active = before
            if before_mode != "OBJECT":
                try:
                    bpy.ops.object.mode_set(mode=before_mode)
                except RuntimeError:  # a mode that cannot be entered again here: the import's own error matters
                    pass
        raise
    obj["dreamor_source_file"] = str(filepath)
    if set_scene:
        scene = context.scene
        fps = arrays["fps"]
        scene.render.fps = max(1, int(round(fps)))
        scene.render.fps_base = scene.render.fps / fps
        scene.frame_start, scene.frame_end = frame_start, frame_start + t - 1
    for other in context.view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


class DREAMOR_OT_import_clip(bpy.types.Operator, ImportHelper):
    """Import a clip (.npz: trans, root_orient, pose_body, ...) as a new SMPL armature"""

    bl_idname = "dreamor.import_clip"
    bl_label = "Import Clip (.npz)"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    frame_start: IntProperty(name="Start Frame", description="Frame of the clip's first pose", default=1)
    set_scene: BoolProperty(
        name="Set Scene Rate and Range", description="Use the clip's frame rate and length for the scene", default=True
    )

    def execute(self, context):
        try:
            obj = import_clip(context, self.filepath, self.frame_start, self.set_scene)
        except (clipfile.ClipFileError, armature_io.ArmatureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        n = obj.animation_data.action and obj.animation_data.action.frame_range
        self.report({"INFO"}, f"imported '{obj.name}' (frames {int(n[0])}..{int(n[1])})")
        return {"FINISHED"}


class DREAMOR_OT_export_clip(bpy.types.Operator, ExportHelper):
    """Export the selected SMPL armature's animation as a clip (.npz) for the backend"""

    bl_idname = "dreamor.export_clip"
    bl_label = "Export Clip (.npz)"

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    frames: EnumProperty(name="Frames", items=FRAME_ITEMS[:2], default="SCENE")

    poll = classmethod(_armature_poll)

    def execute(self, context):
        try:
            anim = armature_io.read_animation(context.object, context.scene, frame_span(context.scene, self.frames))
            if not self.filepath.lower().endswith(".npz") and not Path(self.filepath).is_dir():  # a script's path
                self.filepath += ".npz"
            clipfile.save_clip_arrays(self.filepath, anim.clip_arrays())
        except (armature_io.ArmatureError, clipfile.ClipFileError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"exported {anim.num_frames} frames at {anim.fps:g} fps to {self.filepath}")
        return {"FINISHED"}


# --------------------------------------------------------------------------- contact markers


class DREAMOR_OT_create_contact_markers(bpy.types.Operator):
    """Add small spheres at the contact joints, sized by their contact value, that show in renders"""

    bl_idname = "dreamor.create_contact_markers"
    bl_label = "Create Contact Markers"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(_armature_poll)

    def execute(self, context):
        try:
            made = overlay.create_contact_markers(context.object, context.scene)
        except armature_io.ArmatureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"created {len(made)} contact markers")
        return {"FINISHED"}


class DREAMOR_OT_remove_contact_markers(bpy.types.Operator):
    """Delete the contact markers of the selected armature"""

    bl_idname = "dreamor.remove_contact_markers"
    bl_label = "Remove Contact Markers"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(_armature_poll)

    def execute(self, context):
        n = overlay.remove_contact_markers(context.object)
        self.report({"INFO"}, f"removed {n} contact markers")
        return {"FINISHED"}


# --------------------------------------------------------------------------- refine / backend
# Refine is modal in the UI (progress in ``wm.dreamor_job``, the panel and the status bar;
# Esc or the Cancel button cancel) and synchronous from scripts and in background mode.
# The logic lives in refine_run.py (one job) and backend_process.py (the process and connection).


def _sync_job_ui(context, run: refine_run.RefineRun | None) -> None:
    job = context.window_manager.dreamor_job
    job.running = run is not None and not run.finished
    job.progress = run.fraction if run is not None else 0.0
    job.stage = run.label if run is not None else ""
    if job.running and not bpy.app.background:
        context.window_manager.progress_update(int(1000 * job.progress))
    backend_process.tag_redraw()


def _draw_status_bar(header, context):
    """The status bar while a refine runs: a progress bar and how to cancel."""
    run = refine_run.active
    layout = header.layout
    if run is None:
        return
    layout.progress(factor=run.fraction, type="BAR", text=f"DREAMoR: {run.label}")
    layout.label(text="Cancel", icon="EVENT_ESC")


class DREAMOR_OT_refine(bpy.types.Operator):
    """Refine the selected SMPL armature's motion with the DREAMoR backend: occluded bones are filled in,
    contacts keyed; the result is a new action (the original is kept)"""

    bl_idname = "dreamor.refine"
    bl_label = "Refine"
    # UNDO: one undo step, pushed when it finishes. No REGISTER: "Adjust Last Operation"
    # would run the whole job again.
    bl_options = {"UNDO"}

    @classmethod
    def poll(cls, context):
        if not _armature_poll(cls, context):
            return False
        if refine_run.active is not None and not refine_run.active.finished:
            cls.poll_message_set("a refine is running; wait for it or press Cancel")
            return False
        return True

    def _start(self, context) -> refine_run.RefineRun | None:
        settings = context.scene.dreamor
        try:
            run = refine_run.RefineRun(context.object, context.scene, settings.preset, settings.keep_visible, settings.refine_frames,
                                   noisy=settings.noisy, lock_feet=settings.lock_feet,
                                   alternatives=settings.alternatives)
        except (refine_run.RefineError, backend_process.BackendUnavailable) as exc:
            self.report({"ERROR"}, str(exc))
            backend_process.tag_redraw()
            return None
        refine_run.active = run
        _sync_job_ui(context, run)
        return run

    def execute(self, context):
        """Synchronous: scripts and background mode (no timers there)."""
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        try:
            run.wait()
        except BaseException:  # e.g. KeyboardInterrupt: do not leave the job running
            run.cancel()
            self._end(context)
            raise
        return self._finish(context, run)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        if context.workspace is not None:
            context.workspace.status_text_set(_draw_status_bar)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        run = refine_run.active
        if run is None:  # cleared by a file load
            self._end(context)
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            run.cancel()
        elif event.type == "TIMER":
            run.step()
        else:
            return {"PASS_THROUGH"}
        _sync_job_ui(context, run)
        if run.finished:
            self._end(context)
            return self._finish(context, run)
        return {"RUNNING_MODAL"} if event.type == "ESC" else {"PASS_THROUGH"}

    def cancel(self, context):
        """Blender ends the modal (file load, quit): cancel the job, write nothing."""
        if refine_run.active is not None:
            refine_run.active.cancel()
        self._end(context)

    def _end(self, context) -> None:
        wm = context.window_manager
        timer = getattr(self, "_timer", None)
        if timer is not None:
            wm.event_timer_remove(timer)
            self._timer = None
            wm.progress_end()
            if context.workspace is not None:
                context.workspace.status_text_set(None)
        refine_run.active = None
        _sync_job_ui(context, None)

    def _finish(self, context, run: refine_run.RefineRun):
        refine_run.active = None
        _sync_job_ui(context, None)
        if run.state == "cancelled":
            self.report({"WARNING"}, run.error)
            return {"CANCELLED"}
        if run.state != "done":
            self.report({"ERROR"}, run.error)
            return {"CANCELLED"}
        try:
            text = run.apply(context)
        except refine_run.RefineError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        warning = run.warning()
        self.report({"WARNING"} if warning else {"INFO"}, f"{text}. {warning}" if warning else text)  # Blender says "Warning"
        return {"FINISHED"}


class DREAMOR_OT_refine_cancel(bpy.types.Operator):
    """Cancel the running Refine (nothing is written)"""

    bl_idname = "dreamor.refine_cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return refine_run.active is not None and not refine_run.active.finished

    def execute(self, context):
        refine_run.active.request_cancel()
        self.report({"INFO"}, "cancelling the refine...")
        return {"FINISHED"}


class DREAMOR_OT_backend_start(bpy.types.Operator):
    """Start the DREAMoR backend with the Python set in the add-on preferences
    (or connect to a running one when a connection file is set there)"""

    bl_idname = "dreamor.backend_start"
    bl_label = "Start Backend"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return backend_process.get().state == "stopped"

    def _begin(self, context) -> bool:
        """Start or attach; True when there is something to wait for."""
        prefs = preferences(context)
        b = backend_process.get()
        try:
            if prefs is not None and prefs.connection_file.strip():
                b.attach(prefs.connection_file.strip())
                return False
            b.start(prefs.python_path if prefs else "", prefs.device if prefs else "auto", prefs.start_timeout if prefs else 120.0)
        except backend_process.BackendUnavailable as exc:
            b.message = str(exc)
            return False
        return True

    def _report_end(self):
        b = backend_process.get()
        backend_process.tag_redraw()
        if b.ready:
            backend_process.watch()  # pings now and then while it runs (UI only)
            how = "started" if b.owned else "connected to"
            self.report({"INFO"}, f"{how} the DREAMoR backend: ready on {b.device_name}")
            return {"FINISHED"}
        self.report({"ERROR"}, f"{b.message or 'the backend did not start'}")
        return {"CANCELLED"}

    def execute(self, context):
        if self._begin(context):
            backend_process.get().wait_started()
        return self._report_end()

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if not self._begin(context):
            return self._report_end()
        backend_process.watch()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        backend_process.tag_redraw()
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if backend_process.get().poll_start() == "starting":
            backend_process.tag_redraw()
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._report_end()

    def cancel(self, context):
        context.window_manager.event_timer_remove(self._timer)  # the watcher timer finishes the start


class DREAMOR_OT_backend_stop(bpy.types.Operator):
    """Stop the DREAMoR backend started from Blender (shutdown request, then terminate),
    or disconnect from one started elsewhere"""

    bl_idname = "dreamor.backend_stop"
    bl_label = "Stop Backend"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return backend_process.get().state != "stopped"

    def execute(self, context):
        if refine_run.active is not None:
            refine_run.active.cancel()
        text = backend_process.get().stop()
        backend_process.tag_redraw()
        self.report({"INFO"}, text)
        return {"FINISHED"}


classes = (
    DREAMOR_OT_pin_pose,
    DREAMOR_OT_clear_pins,
    DREAMOR_OT_mark_noisy,
    DREAMOR_OT_clear_noisy,
    DREAMOR_OT_mark_occluded,
    DREAMOR_OT_clear_occluded,
    DREAMOR_OT_select_occluded,
    DREAMOR_OT_restore_action,
    DREAMOR_OT_import_clip,
    DREAMOR_OT_export_clip,
    DREAMOR_OT_create_contact_markers,
    DREAMOR_OT_remove_contact_markers,
    DREAMOR_OT_refine,
    DREAMOR_OT_refine_cancel,
    DREAMOR_OT_backend_start,
    DREAMOR_OT_backend_stop,
)
