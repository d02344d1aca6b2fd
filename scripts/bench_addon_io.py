#!/usr/bin/env python3
"""Benchmark the add-on's armature I/O in headless bpy; writes docs/benchmarks/addon_io.md.

    .venv/bin/python scripts/bench_addon_io.py [--frames 3600] [--out docs/benchmarks/addon_io.md]

Measures, on 3,600-frame (2 min at 30 fps) motions of the 24-joint SMPL armature:
reading the animation into clip arrays and writing a refined action with contacts
(``blender_addon.armature_io``), against the obvious slow ways measured in the same run:
stepping the scene frame by frame to read, and ``keyframe_insert`` per key to write (timed
on a tenth of the frames and scaled up, since the full run takes minutes). Target: < 0.5 s each.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="dreamor-bench-"))
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "blender")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from blender_rigs import build_rig  # noqa: E402

from blender_addon import armature_io, rotmath  # noqa: E402

SMPL_NEUTRAL = np.asarray(
    __import__("json").loads((ROOT / "backend/dreamor/body/smpl22_rest_joints.json").read_text())["rest_joints_m"]
)


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def motion(t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(scale=0.02, size=(t, 22, 3)), axis=0)
    aa = 0.4 * np.sin(walk)
    aa[:, 0] += [np.pi / 2, 0.0, 0.0]
    trans = np.cumsum(rng.normal(scale=0.01, size=(t, 3)), axis=0)
    contacts = (rng.uniform(size=(t, 9)) > 0.5).astype(float)
    return trans, rotmath.aa_to_mat(aa), contacts


def fresh_rig(kind: str, t: int):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, t
    scene.render.fps = 30
    if kind == "smpl_fbx":
        obj = build_rig("smpl_fbx", SMPL_NEUTRAL, name="SMPL_FBX", with_hands=True)
    else:
        obj = armature_io.create_armature("SMPLX", SMPL_NEUTRAL)
    return obj


def insert_per_key(obj, trans, rotmats, contacts, frames: int) -> None:
    """The slow baseline: compute the same channels, then keyframe_insert one key at a time."""
    rig = armature_io.rig_from_object(obj)
    basis, location = armature_io.clip_to_basis(rig, trans[:frames], rotmats[:frames], np.asarray(obj.matrix_world))
    obj.animation_data_create().action = bpy.data.actions.new("baseline")
    for name in rig.contact_bone_names:
        obj.pose.bones[name]["contact"] = 0.0
    for i in range(frames):
        f = float(i + 1)
        for j, name in enumerate(rig.bone_names):
            pb = obj.pose.bones[name]
            prop, values = armature_io._rotation_channels(pb.rotation_mode, basis[i : i + 1, j])
            setattr(pb, prop, values[0])
            pb.keyframe_insert(prop, frame=f, group=name)
        pelvis = obj.pose.bones[rig.bone_names[0]]
        pelvis.location = location[i]
        pelvis.keyframe_insert("location", frame=f)
        for k, name in enumerate(rig.contact_bone_names):
            obj.pose.bones[name]["contact"] = float(contacts[i, k])
            obj.pose.bones[name].keyframe_insert('["contact"]', frame=f)


def bench(kind: str, t: int) -> dict:
    trans, rotmats, contacts = motion(t)
    obj = fresh_rig(kind, t)
    n_bones, n_joints = len(obj.data.bones), len(obj.data.bones) - 1
    out = {"rig": kind, "bones": n_bones, "joints": n_joints}
    out["write"] = timed(lambda: armature_io.write_animation(obj, trans, rotmats, 1, contacts=contacts))
    bag = armature_io.active_channelbag(obj)
    out["fcurves"] = len(bag.fcurves)
    out["keys"] = sum(len(fc.keyframe_points) for fc in bag.fcurves)
    out["read"] = timed(lambda: armature_io.read_animation(obj))
    anim = armature_io.read_animation(obj)
    out["max_err_m"] = float(np.abs(anim.trans - trans).max())
    out["read_evaluate"] = timed(lambda: armature_io.read_animation(obj, method="evaluate"), repeats=1)
    sub = max(1, t // 10)
    obj = fresh_rig(kind, t)
    out["write_per_key"] = timed(lambda: insert_per_key(obj, trans, rotmats, contacts, sub), repeats=1) * (t / sub)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3600)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "addon_io.md")
    args = parser.parse_args(argv)
    rows = [bench(kind, args.frames) for kind in ("smpl_fbx", "smplx")]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Add-on armature I/O benchmark",
        "",
        f"`scripts/bench_addon_io.py --frames {args.frames}`: bpy {bpy.app.version_string} headless, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, {cpu}, {os.cpu_count()} logical CPUs.",
        "",
        f"A {args.frames}-frame motion ({args.frames / 30:.0f} s at 30 fps) on each armature. "
        "*read*: `armature_io.read_animation` (action F-curves, keys on every frame, to clip arrays). "
        "*write*: `armature_io.write_animation` (a new action with a key per frame on every SMPL bone's rotation, "
        "the pelvis location and the 9 contact properties). Baselines in the same run: *read by stepping frames* "
        "(`method='evaluate'`, `scene.frame_set` per frame; what the add-on falls back to for constraints/NLA) and "
        "*write by keyframe_insert* (one `keyframe_insert` per key; timed on a tenth of the frames and scaled by 10). "
        "Median of 3 runs for the add-on's paths. Target: < 0.5 s each.",
        "",
        "| armature | bones | F-curves / keys written | read (s) | read by stepping frames (s) | ratio | write (s) | write by keyframe_insert (s) | ratio | trans error (m) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {"smpl_fbx": "SMPL FBX (`m_avg_*`, 24 joints + root, Euler ZXY)", "smplx": "imported clip (SMPL-X names, 22 joints + root, quaternions)"}
    for r in rows:
        lines.append(
            f"| {labels[r['rig']]} | {r['bones']} | {r['fcurves']} / {r['keys']:,} | {r['read']:.3f} | "
            f"{r['read_evaluate']:.2f} | {r['read_evaluate'] / r['read']:.0f}x | {r['write']:.3f} | "
            f"{r['write_per_key']:.1f} | {r['write_per_key'] / r['write']:.0f}x | {r['max_err_m']:.1e} |"
        )
    ok = all(r["read"] < 0.5 and r["write"] < 0.5 for r in rows)
    lines += ["", f"Both under 0.5 s: **{'yes' if ok else 'NO'}**.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
