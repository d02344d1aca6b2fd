"""Settings: add-on preferences (the backend), per-scene options, and the running job's state."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

FRAME_ITEMS = (
    ("PREVIEW", "Preview Range", "The preview range (the scene range when no preview range is set)"),
    ("SCENE", "Scene Range", "The whole scene frame range"),
    ("CURRENT", "Current Frame", "Only the current frame"),
)


class DreamorPreferences(bpy.types.AddonPreferences):
    """Where the backend lives and what it runs on."""

    bl_idname = __package__

    python_path: StringProperty(
        name="Backend Python",
        description="The Python executable that has the 'dreamor' package installed (its virtualenv's python)",
        subtype="FILE_PATH",
        default="",
    )
    device: EnumProperty(
        name="Device",
        description="Where the backend runs the models",
        items=(
            ("auto", "Automatic", "A GPU when there is one, otherwise the CPU"),
            ("cuda", "GPU (CUDA)", "An NVIDIA GPU"),
            ("cpu", "CPU", "The CPU (slower, always available)"),
        ),
        default="auto",
    )
    connection_file: StringProperty(
        name="Connection File",
        description="Connect to a backend that is already running (the file its 'dreamor serve --connection-file' "
        "wrote); empty to start one with the Python above",
        subtype="FILE_PATH",
        default="",
    )
    start_timeout: FloatProperty(
        name="Start Timeout (s)",
        description="Seconds to wait for a starting backend to load its models and answer",
        default=120.0,
        min=5.0,
        max=3600.0,
    )

    def draw(self, context):
        from . import panels

        layout = self.layout
        col = layout.column()
        col.prop(self, "python_path")
        col.prop(self, "device")
        col.prop(self, "start_timeout")
        layout.prop(self, "connection_file")
        box = layout.box()
        panels.draw_backend_status(box, context)


def preferences(context=None) -> DreamorPreferences | None:
    """The add-on's preferences, or None when the add-on is not enabled under this name."""
    addon = (context or bpy.context).preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


class DreamorSceneSettings(bpy.types.PropertyGroup):
    """Options shown in the sidebar panel; saved with the .blend file."""

    mark_frames: EnumProperty(name="Frames", description="Frames to mark or clear", items=FRAME_ITEMS, default="PREVIEW")
    include_children: BoolProperty(
        name="Include Children",
        description="Marking a bone occluded marks the bones below it too (a hidden knee hides the foot)",
        default=False,
    )
    noisy_confidence: FloatProperty(
        name="Confidence",
        description="Mark Noisy: how far the marked bones' capture is trusted (1 = trusted, lower = smoothed more)",
        default=0.5, min=0.05, max=0.95,
    )  # fmt: skip
    preset: EnumProperty(
        name="Quality",
        description="Refinement preset: more optimisation steps cost time",
        items=(
            ("fast", "Fast", "40 optimisation steps: about a third of Default's time"),
            ("default", "Default", "120 optimisation steps: the balance of accuracy and time"),
            ("best", "Best", "300 optimisation steps: about 2.4x as long as Default"),
        ),
        default="default",
    )
    keep_visible: BoolProperty(
        name="Keep Visible Bones",
        description="Bones that were visible keep their captured motion exactly; only occluded bones change",
        default=True,
    )
    noisy: BoolProperty(
        name="Noisy Capture",
        description="The captured joints are noisy (e.g. tracked from video): the refinement smooths them instead of "
                    "keeping them where they were captured",
        default=False,
    )
    lock_feet: BoolProperty(
        name="Lock Feet",
        description="Feet the refined motion puts on the ground do not slide (held in place by IK on the legs)",
        default=True,
    )
    alternatives: IntProperty(
        name="Alternatives",
        description="Completions to write: the answer as <action>_refined and the others as <action>_refined_alt2, "
                    "_alt3, ...; switch actions to pick one (each further one costs little time)",
        default=1,
        min=1,
        max=8,
    )
    refine_frames: EnumProperty(
        name="Frames",
        description="Frames to refine",
        items=(
            ("ALL", "All", "The whole scene frame range"),
            ("PREVIEW", "Preview Range", "Only the preview range"),
        ),
        default="ALL",
    )
    show_contacts: BoolProperty(
        name="Contact Preview",
        description="Draw the contacts in the viewport: discs at joints in contact, a footprint trail",
        default=True,
    )
    show_doubt: BoolProperty(
        name="Doubt Preview",
        description="Draw a ring around joints the refine is unsure of (its keyed 'doubt'): as wide as the doubt, "
                    "yellow from 5 cm to red at 20 cm",
        default=True,
    )
    show_trail: BoolProperty(
        name="Footprint Trail",
        description="Also draw where the feet touch the ground over the whole frame range",
        default=True,
    )
    contact_threshold: FloatProperty(
        name="Threshold", description="A joint is in contact when its contact value is at least this", default=0.5,
        min=0.0, max=1.0,
    )


class DreamorJobState(bpy.types.PropertyGroup):
    """The refine job in flight, for the panel (the Refine operator fills it; reset on file load)."""

    running: BoolProperty(default=False)
    progress: FloatProperty(name="Progress", subtype="FACTOR", min=0.0, max=1.0, default=0.0)
    stage: StringProperty(default="")


classes = (DreamorPreferences, DreamorSceneSettings, DreamorJobState)


def register_properties():
    bpy.types.Scene.dreamor = PointerProperty(type=DreamorSceneSettings)
    bpy.types.WindowManager.dreamor_job = PointerProperty(type=DreamorJobState)


def unregister_properties():
    del bpy.types.WindowManager.dreamor_job
    del bpy.types.Scene.dreamor
