"""The demo's pictures: before/after Workbench renders (headless Blender) and the contact timeline.

The render scene: the refined armature where it is, a copy of it playing the captured action
beside it (image left), a capsule body on each, the add-on's contact markers on the refined one
and a camera that follows both across the walk. Leg capsules take their colour from the bones'
``visible`` marks through drivers, so hidden bones show red in the input and teal in the result.
A thin grey body inside each plays the clean clip: where it shows, the motion is off.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import headless

INPUT_RGB, INPUT_HIDDEN_RGB = (0.80, 0.66, 0.55), (0.90, 0.25, 0.22)
REFINED_RGB, REFINED_HIDDEN_RGB = (0.55, 0.68, 0.84), (0.20, 0.70, 0.62)
CLEAN_RGB = (0.35, 0.35, 0.35)
GAP_M = 1.1  # between the two bodies, across the view
STILLS = 4
NOTE = "left: captured (hidden red)  right: refined (hidden teal)  thin grey: clean  spheres: contacts"


def _colour_by_visibility(capsule, arm, bone: str, seen, hidden) -> None:
    """Drive ``capsule.color`` from the bone's keyed 'visible' mark: ``seen`` when 1, ``hidden`` when 0."""
    path = arm.pose.bones[bone].path_from_id('["visible"]')
    for i, (s, h) in enumerate(zip(seen, hidden)):
        drv = capsule.driver_add("color", i).driver
        drv.type = "SCRIPTED"
        var = drv.variables.new()
        var.name, var.type = "v", "SINGLE_PROP"
        var.targets[0].id_type, var.targets[0].id, var.targets[0].data_path = "OBJECT", arm, path
        drv.expression = f"{h:.3f} + {s - h:.3f} * v"
    capsule.color[3] = 1.0


def _body(arm, name: str, seen, hidden) -> None:
    for bone, capsule in headless.add_body(arm, headless.material(name, (*seen, 1.0))).items():
        if "visible" in arm.pose.bones[bone]:
            _colour_by_visibility(capsule, arm, bone, seen, hidden)


def _copy(obj, name: str, action, location):
    """A copy of the armature object playing ``action`` at ``location`` (world, m)."""
    bpy = headless.import_bpy()
    copy = obj.copy()
    copy.name, copy.location = name, tuple(location)
    bpy.context.scene.collection.objects.link(copy)
    copy.animation_data.action = action
    copy.animation_data.action_slot = action.slots[0]
    return copy


def render_before_after(obj, captured, clean, pelvis: np.ndarray, out: Path, hidden: tuple[int, int], quick: bool,
                        log) -> None:
    """Build the render scene around ``obj`` (refined; ``pelvis`` (T, 3) its world pelvis path over the
    scene range), its input action ``captured`` and the ``clean`` one, and write ``before_after.png``
    (and ``before_after.mp4`` when Blender can encode video) into ``out``."""
    from scipy.ndimage import gaussian_filter1d

    bpy = headless.import_bpy()
    scene = bpy.context.scene
    lo, hi = scene.frame_start, scene.frame_end

    bpy.context.view_layer.objects.active = obj
    bpy.ops.dreamor.create_contact_markers()
    for marker in bpy.data.collections[f"DREAMoR Contacts: {obj.name}"].objects:
        marker.color = marker.active_material.diffuse_color

    # The walking path fixes the view: from the front-left of the mean direction.
    fwd = pelvis[-1] - pelvis[0]
    fwd[2] = 0.0
    fwd = fwd / np.linalg.norm(fwd) if np.linalg.norm(fwd) > 1e-3 else np.array([1.0, 0.0, 0.0])
    side = np.cross([0.0, 0.0, 1.0], fwd)
    offset = -side * 4.0 + fwd * 1.5 + np.array([0.0, 0.0, 0.45])
    view = -offset / np.linalg.norm(offset)
    right = np.cross(view, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    before = _copy(obj, f"{obj.name} input", captured, -right * GAP_M)
    _body(before, "Input body", INPUT_RGB, INPUT_HIDDEN_RGB)
    _body(obj, "Refined body", REFINED_RGB, REFINED_HIDDEN_RGB)
    for name, location in (("clean, beside the input", -right * GAP_M), ("clean, in the refined", (0.0, 0.0, 0.0))):
        headless.add_body(_copy(obj, f"{obj.name} {name}", clean, location),
                          headless.material("Clean body", (*CLEAN_RGB, 1.0)), radius_m=0.008)
    centre = gaussian_filter1d(pelvis - right * GAP_M / 2, 6.0, axis=0, mode="nearest")
    centre[:, 2] = 0.8
    ground = headless.ground_plane(centre.mean(0))
    ground.color = (0.95, 0.94, 0.90, 1.0)
    headless.follow(headless.camera(), centre, offset, lo)

    a, b = hidden
    headless.workbench(scene, 800, 450)
    headless.stamp(scene, NOTE)
    frames = np.linspace(a, b, STILLS + 2).round().astype(int)[1:-1]
    log(f"before_after.png: rendering frames {', '.join(map(str, frames))} ...")
    stills = [headless.render_still(scene, int(f), out / f".still_{f:04d}.png") for f in frames]
    headless.tile_images(stills, 2, out / "before_after.png")
    for p in stills:
        p.unlink()
    if headless.can_encode_video():
        log(f"before_after.mp4: rendering frames {lo}-{hi} (Blender's FFmpeg encoder) ...")
        headless.workbench(scene, 480 if quick else 640, 270 if quick else 360, aa="FXAA")
        headless.stamp(scene, NOTE)
        headless.render_video(scene, out / "before_after.mp4", lo, hi)
    else:
        log("no video: this Blender was built without FFmpeg")
    scene.render.filepath = "//render_"
    scene.frame_set(int(frames[0]))


def contact_plot(refined: np.ndarray, labels: np.ndarray, hidden: tuple[int, int], path: Path) -> Path:
    """Refined contact values (T, 9) over the clean clip's labels (T, 9), the hidden frames shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dreamor.body.skeleton import CONTACT_JOINTS, JOINT_GROUPS, JOINT_NAMES

    frames = np.arange(1, len(refined) + 1)
    fig, axes = plt.subplots(len(CONTACT_JOINTS), 1, figsize=(9, 7), sharex=True)
    for k, ax in enumerate(axes):
        if CONTACT_JOINTS[k] in JOINT_GROUPS["lower_body"]:
            ax.axvspan(hidden[0] - 0.5, hidden[1] + 0.5, color="#f4d6d2", lw=0)
        ax.fill_between(frames, 0, labels[:, k], step="mid", color="#9a9a9a", alpha=0.6, lw=0)
        ax.plot(frames, refined[:, k], color="#1f5fa8", lw=1.4)
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set_ylim(-0.05, 1.05)
        ax.set_yticks([])
        ax.set_ylabel(JOINT_NAMES[CONTACT_JOINTS[k]], rotation=0, ha="right", va="center", fontsize=8)
    axes[0].set_title("contacts: refined (blue line) vs clean clip's labels (grey); hidden on the red frames",
                      fontsize=9)
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
