"""`dreamor demo`: the main job on the bundled sample, in headless Blender through the real add-on.

Builds and enables the add-on, imports the bundled Bandai Namco walk (retargeted to SMPL-22, put on an SMPL neutral body)
with ``dreamor.import_clip``, marks the lower body occluded over the middle half of the clip
with ``dreamor.mark_occluded`` and turns the clean motion into a capture: the hidden leg bones
freeze at their last seen pose and every bone gets a little seeded rotation jitter (the pelvis a
little position jitter). It then starts the backend from the add-on (``dreamor.backend_start``
with this Python), refines with ``dreamor.refine``, stops the backend and writes to ``--out``:
``demo.blend`` (clean, captured and refined actions; contacts keyed), ``before_after.png``
(Workbench renders of four frames, captured input left, refined right), ``before_after.mp4``
(the whole clip, when Blender has its FFmpeg encoder), ``contacts.png`` (refined contacts vs
the clean clip's labels), ``metrics.json`` = {"input": {...}, "refined": {...}, "settings":
{...}} measured against the clean clip on the motion read back from the armature, and the
clean / input / refined clips as ``.npz``. Nothing is written to ``--out`` unless it all works.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from dreamor.errors import DreamorError

SAMPLE = "dataset-2_walk-turn-left_normal_001.bvh"
QUICK_FRAMES = 60
NOISE_DEG = 1.0  # capture jitter: per-axis Gaussian sigma on every bone's local rotation (degrees)
NOISE_M = 0.01  # ... and on the pelvis position (metres)
SEED = 0
KEYS = ("occ_cm", "vis_cm", "all_cm", "legs_cm", "skate_cm", "pen_freq", "accel_ms2", "contact_acc")
STEPS = ("addon", "import", "mark", "capture", "backend_start", "refine", "read_back", "render_save")


class Steps:
    """Numbered progress lines ``[k/8] ...``; remembers when each step began (timings for metrics.json)."""

    def __init__(self):
        self.began: dict[str, float] = {}

    def __call__(self, name: str, text: str) -> None:
        self.began[name] = time.perf_counter()
        print(f"[{STEPS.index(name) + 1}/{len(STEPS)}] {text}", flush=True)

    def seconds(self) -> dict[str, float]:
        """Seconds per step so far, and 'total'."""
        times = [*self.began.values(), time.perf_counter()]
        out = {name: round(b - a, 1) for name, a, b in zip(self.began, times, times[1:])}
        return {**out, "total": round(times[-1] - times[0], 1)}


def note(text: str) -> None:
    print(f"      {text}", flush=True)


class Ticker:
    """Print ``poll()``'s line from a thread while the main thread blocks in an operator
    (headless Blender runs them synchronously); a line is printed when it changes."""

    def __init__(self, poll, every_s: float = 0.25):
        self.poll, self.every_s = poll, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = None
        while not self._stop.wait(self.every_s):
            line = self.poll()
            if line and line != last:
                note(line)
                last = line

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def op(name: str, **kwargs) -> None:
    """Run ``bpy.ops.dreamor.<name>``; its error report becomes a DreamorError."""
    import bpy

    try:
        result = getattr(bpy.ops.dreamor, name)(**kwargs)
    except RuntimeError as exc:
        raise DreamorError(f"dreamor.{name}: {str(exc).strip().removeprefix('Error: ')}") from None
    if result != {"FINISHED"}:
        raise DreamorError(f"dreamor.{name} ended with {result}")


def clean_clip(quick: bool):
    """The bundled walk retargeted to SMPL-22 at 30 Hz and put on an SMPL neutral body (what an animator's
    SMPL / SMPL-X armature has, not the capture's own skeleton: ``bodies.repose_clip``), with joints and
    contact labels."""
    from dreamor.body.proportions import repose_clip
    from dreamor.body.skeleton import SMPL_NEUTRAL_REST_JOINTS
    from dreamor.data.convert import read_motion

    with resources.as_file(resources.files("dreamor").joinpath("assets/samples", SAMPLE)) as sample:
        clean = repose_clip(read_motion(sample), SMPL_NEUTRAL_REST_JOINTS)
    if quick:
        n = QUICK_FRAMES
        clean = replace(clean, trans=clean.trans[:n], root_orient=clean.root_orient[:n], pose_body=clean.pose_body[:n],
                        joints=clean.joints[:n], contacts=clean.contacts[:n])
    return clean


def capture(obj, aio, rotmath, rng: np.random.Generator):
    """Make the armature's motion a capture: hidden bones (the 'visible' marks) hold their last
    seen local rotation, every bone's rotation and the pelvis position get Gaussian jitter.
    Written as a new action '<name>_captured' (the clean one is kept); returns (action, mean
    joint displacement in cm on visible joints)."""
    from dreamor.body.fill import hold_last_seen

    anim = aio.read_animation(obj)
    held, _ = hold_last_seen(anim.local_rotmats, anim.visible)
    jitter = rotmath.aa_to_mat(rng.normal(0.0, np.radians(NOISE_DEG), size=held.shape[:2] + (3,)))
    trans = anim.trans + rng.normal(0.0, NOISE_M, size=anim.trans.shape)
    action = aio.write_animation(obj, trans, jitter @ held, anim.frame_start, action_name=f"{obj.name}_captured")
    moved = np.linalg.norm(aio.read_animation(obj).joints - anim.joints, axis=-1)
    return action, float(100 * moved[anim.visible].mean())


def run_demo(out: Path, staging: Path, work: Path, quick: bool, device: str) -> dict:
    """The whole job; every output goes to ``staging`` (moved to ``out`` afterwards), scratch files to ``work``."""
    from dreamor.body.skeleton import JOINT_GROUPS, JOINT_NAMES
    from dreamor.data.clip import load_clip, save_clip
    from dreamor.evaluate import metrics as M

    from . import headless
    from .render import contact_plot, render_before_after

    step = Steps()
    step("addon", "headless Blender: building, installing and enabling the DREAMoR add-on ...")
    bpy = headless.import_bpy()
    addon = headless.enable_addon(work)
    aio, rotmath, backend, refine = (headless.addon_module(addon, m)
                                     for m in ("armature_io", "rotmath", "backend_process", "refine_run"))
    note(f"Blender {bpy.app.version_string}, add-on {addon.__name__}")
    note(f"files are written to {staging.name}/ first and moved to {out}/ when the demo has finished")
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene

    step("import", f"importing the bundled walk {SAMPLE} (retargeted to SMPL-22, 30 Hz, on an SMPL neutral body) with dreamor.import_clip ...")
    clean = clean_clip(quick)
    t = clean.num_frames
    clean_npz = save_clip(replace(clean, contacts=None), staging / "clean.npz")  # a capture brings no contact labels
    op("import_clip", filepath=str(clean_npz))
    obj = bpy.context.object
    obj.name, obj.data.name, obj.animation_data.action.name = "walk", "walk", "walk_clean"
    obj["dreamor_source_file"] = str(out / clean_npz.name)  # where it will be

    a, b = t // 4 + 1, (3 * t) // 4  # Blender frames (1-based, inclusive)
    lower = [JOINT_NAMES[j] for j in JOINT_GROUPS["lower_body"]]
    step("mark", f"marking the lower body ({len(lower)} bones) occluded on frames {a}-{b} (dreamor.mark_occluded) ...")
    bpy.ops.object.mode_set(mode="POSE")
    for pb in obj.pose.bones:
        pb.select = pb.name in lower
    op("mark_occluded", frames="CUSTOM", frame_start=a, frame_end=b)
    bpy.ops.object.mode_set(mode="OBJECT")

    step("capture", f"capture (seed {SEED}): {NOISE_DEG:g} deg Gaussian jitter per axis on every bone's rotation, "
                    f"{NOISE_M * 100:g} cm on the pelvis; hidden bones frozen at their last seen pose ...")
    captured, moved_cm = capture(obj, aio, rotmath, np.random.default_rng(SEED))
    note(f"action '{captured.name}': visible joints moved by {moved_cm:.2f} cm on average")
    op("export_clip", filepath=str(staging / "input.npz"))

    step("backend_start", f"starting the backend from the add-on (dreamor.backend_start: "
                          f"{sys.executable} -m dreamor.cli serve, device {device}) ...")
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs.python_path, prefs.device, prefs.connection_file = sys.executable, device, ""
    server = backend.get()

    def start_line():
        s = int(server.elapsed())
        return f"starting ... {s} s" if server.state == "starting" and s and s % 5 == 0 else None

    with Ticker(start_line):
        op("backend_start")
    welcome = server.welcome or {}
    note(f"ready on {server.device_name} in {server.elapsed():.1f} s (pid {welcome.get('pid')})")

    preset = "fast" if quick else "default"
    step("refine", f"refining with the {preset} preset (dreamor.refine) ...")
    scene.dreamor.preset = preset
    # Every bone of this capture carries jitter for the refine to remove, so the visible bones may move too
    # (the add-on's default, Keep Visible Bones, would keep their jitter as captured).
    scene.dreamor.keep_visible = False
    scene.dreamor.noisy = True  # the jitter is to be smoothed away, not met

    def refine_line():
        run = refine.active
        if run is None:
            return None
        return f"optimise {10 * int(10 * run.fraction):3d}%" if run.stage == "optimise" else run.label

    with Ticker(refine_line):
        op("refine")
    note(f"refined into action '{obj.animation_data.action.name}'")
    device_used = server.device_name
    models = welcome.get("models", {}).get(device_used) or welcome.get("models", {})
    step("read_back", "stopping the backend (dreamor.backend_stop), reading the result back (dreamor.export_clip) ...")
    op("backend_stop")
    op("export_clip", filepath=str(staging / "refined.npz"))

    inp, res = load_clip(staging / "input.npz"), load_clip(staging / "refined.npz")
    visible = inp.visible
    report = {}
    for name, clip in (("input", inp), ("refined", res)):
        m = M.values(M.clip_metrics(clip.joints, clean.joints, visible, clean.fps, clip.contacts, clean.contacts))
        report[name] = {k: m[k] for k in KEYS}

    step("render_save", "rendering before/after (Workbench), plotting contacts, saving the .blend ...")
    render_before_after(obj, captured, bpy.data.actions["walk_clean"], res.joints[:, 0], staging, hidden=(a, b),
                        quick=quick, log=note)
    contact_plot(res.contacts, clean.contacts, (a, b), staging / "contacts.png")
    bpy.ops.wm.save_as_mainfile(filepath=str(staging / "demo.blend"), copy=True)
    report["settings"] = {
        "sample": SAMPLE, "frames": t, "hidden_frames": [a, b], "hidden_bones": lower,
        "noise": {"rotation_deg": NOISE_DEG, "pelvis_m": NOISE_M, "seed": SEED,
                  "visible_joint_shift_cm": round(moved_cm, 3)},
        "hidden_input": "hidden bones hold their last seen rotation", "body": "SMPL neutral", "preset": preset,
        "device": device_used,
        "models": models, "blender": bpy.app.version_string, "seconds": step.seconds(),
    }
    (staging / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def publish(staging: Path, out: Path) -> None:
    """Move the finished files into ``out`` (the whole folder at once when it is new), readable
    as the user's umask says (temporary files are private)."""
    umask = os.umask(0)
    os.umask(umask)
    for f in staging.iterdir():
        f.chmod(0o666 & ~umask)
    if not out.exists():
        staging.chmod(0o777 & ~umask)
        staging.rename(out)
        return
    for f in staging.iterdir():
        os.replace(f, out / f.name)
    staging.rmdir()


def table(report: dict) -> str:
    rows = [f"{'metric':12s} {'input':>9s} {'refined':>9s}"]
    for k in KEYS:
        cells = [report[s][k] for s in ("input", "refined")]
        rows.append(f"{k:12s} " + " ".join(f"{'-' if v is None else f'{v:.3f}':>9s}" for v in cells))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dreamor demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    parser.add_argument("--quick", action="store_true",
                        help=f"the first {QUICK_FRAMES} frames and the fast preset (for tests)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the backend runs (default: auto, the GPU when there is one)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    try:
        if args.device == "cuda":  # before Blender starts: one clear line instead of a failed backend
            from dreamor.evaluate.run import resolve_device

            resolve_device("cuda")
        from .headless import import_bpy

        import_bpy()
    except DreamorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    work = Path(tempfile.mkdtemp(prefix="dreamor-demo-"))
    ok = False
    try:
        report = run_demo(out, staging, work, args.quick, args.device)
        publish(staging, out)
        ok = True
    except DreamorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        _stop_backend()
        if not ok:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + table(report))
    s = report["settings"]
    print(f"\n{s['frames']} frames, lower body hidden on frames {s['hidden_frames'][0]}-{s['hidden_frames'][1]}; "
          f"refined with the {s['preset']} preset on {s['device']} in {s['seconds']['refine']} s; "
          f"whole demo {s['seconds']['total']} s")
    print(f"wrote {out}/")
    for f in sorted(out.iterdir()):
        if f.is_file():
            print(f"  {f.name:18s} {FILE_NOTES.get(f.name, '')}")
    return 0


FILE_NOTES = {
    "demo.blend": "Blender 4.2+: armature 'walk', actions walk_clean, walk_captured, walk_captured_refined",
    "before_after.png": "Workbench renders, four hidden frames: captured (left) vs refined (right), clean in grey",
    "before_after.mp4": "the whole clip, same layout",
    "contacts.png": "contact timeline: refined contact values vs the clean clip's labels",
    "metrics.json": "input and refined errors against the clean clip",
    "clean.npz": "the clean clip (ground truth)",
    "input.npz": "the captured motion as exported from Blender (dreamor.export_clip)",
    "refined.npz": "the refined motion as exported from Blender, with contacts",
}


def _stop_backend() -> None:
    """Stop a backend the demo started (after an error too); nothing when bpy never loaded."""
    from .headless import REPO_MODULE

    backend = sys.modules.get(f"bl_ext.{REPO_MODULE}.dreamor.backend_process")
    if backend is not None and backend.get().state != "stopped":
        backend.get().stop()


if __name__ == "__main__":
    sys.exit(main())
