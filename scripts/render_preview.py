"""Render a Workbench preview of a refined clip with the add-on's contact markers.

Builds, installs and enables the add-on in headless bpy (``dreamor_demo.headless``, shared with
``dreamor demo``), imports the refined clip (and the clean clip, offset to the side, in grey)
with ``dreamor.import_clip``, adds the render-visible contact markers with
``dreamor.create_contact_markers``, gives each pose bone a capsule so the body shows in
renders, and renders one frame where a foot is in contact.

    .venv/bin/python scripts/render_preview.py [--clip out/demo/refined.npz] [--clean out/demo/clean.npz]
        [--out out/preview.png] [--frame N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))  # a checkout without `pip install -e .` works too

from dreamor.errors import DreamorError  # noqa: E402
from dreamor_demo import headless  # noqa: E402


def import_clip(bpy, path) -> object:
    bpy.ops.dreamor.import_clip(filepath=str(path))
    return bpy.context.object


def render(args) -> str:
    bpy = headless.import_bpy()
    headless.enable_addon(Path(tempfile.mkdtemp(prefix="dreamor-render-")))
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene

    refined = import_clip(bpy, args.clip)
    clip = np.load(args.clip)
    contacts, trans = clip["contacts"], clip["trans"]
    n = len(trans)
    frame = args.frame
    if frame <= 0:
        feet = (contacts[:, 3:7] >= 0.5).sum(1)  # ankles and toes in contact
        cand = np.flatnonzero(feet == feet.max())
        frame = int(cand[np.argmin(np.abs(cand - n // 2))]) + 1  # most feet down, nearest the middle
    bpy.ops.dreamor.create_contact_markers()
    for marker in bpy.data.collections[f"DREAMoR Contacts: {refined.name}"].objects:
        marker.color = marker.active_material.diffuse_color

    # walking direction (horizontal) around the chosen frame; the camera looks across it
    i = frame - 1
    a, b = max(i - 10, 0), min(i + 10, n - 1)
    fwd = np.array([*(trans[b, :2] - trans[a, :2]), 0.0])
    fwd = fwd / np.linalg.norm(fwd) if np.linalg.norm(fwd) > 1e-6 else np.array([1.0, 0.0, 0.0])
    side = np.cross([0.0, 0.0, 1.0], fwd)  # horizontal, perpendicular to walking

    headless.add_body(refined, headless.material("Refined body", (0.55, 0.68, 0.82, 1.0)))
    with_clean = bool(args.clean) and Path(args.clean).exists()
    if with_clean:
        clean = import_clip(bpy, args.clean)
        clean.location = tuple(np.asarray(clean.location) + side * args.offset)
        headless.add_body(clean, headless.material("Clean body", (0.72, 0.72, 0.72, 1.0)))
    scene.frame_set(frame)

    heads = np.array([np.asarray(refined.matrix_world @ pb.head) for pb in refined.pose.bones])
    look = heads.mean(0) + side * (args.offset / 2 if with_clean else 0.0)
    headless.ground_plane(look, z=min(heads[:, 2].min() - 0.05, 0.0), size=20).color = (0.95, 0.94, 0.90, 1.0)
    view = -side * 3.4 + fwd * 1.4  # front-side, on the refined body's side
    headless.look_at(headless.camera(), look + view + [0, 0, 0.6], look + [0, 0, -0.1])
    headless.workbench(scene, 960, 540)
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    headless.render_still(scene, frame, out)
    on = [k for k in range(contacts.shape[1]) if contacts[frame - 1, k] >= 0.5]
    return f"rendered frame {frame} (contacts on: {on}) to {out}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(ROOT / "out/demo/refined.npz"))
    p.add_argument("--clean", default=str(ROOT / "out/demo/clean.npz"), help="'' to leave it out")
    p.add_argument("--out", default=str(ROOT / "out/preview.png"))
    p.add_argument("--frame", type=int, default=0, help="0: the contact frame nearest the middle of the clip")
    p.add_argument("--offset", type=float, default=1.0, help="metres between the refined and the clean body")
    args = p.parse_args(argv)
    try:
        print(render(args))
    except (DreamorError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
