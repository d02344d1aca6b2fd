"""The demo on the bundled sample (until the end-to-end refinement demo lands).

Converts the bundled real Bandai Namco walk (BVH) to an SMPL-22 clip at 30 Hz with joints
and contact labels, writes it back out as an SMPL-22 BVH, and prints a summary.
"""
from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from .data.convert import clip_to_bvh, convert_to_clip
from .errors import DreamorError
from .info import summarize

SAMPLE = "dataset-2_walk-turn-left_normal_001.bvh"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dreamor demo")
    parser.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        with resources.as_file(resources.files("dreamor").joinpath("assets/samples", SAMPLE)) as sample:
            print(f"[1/3] retargeting the bundled sample {SAMPLE} to SMPL-22 at 30 Hz ...")
            npz = convert_to_clip(sample, out / "walk_smpl22.npz")
            print(f"[2/3] writing it back as an SMPL-22 BVH ...")
            bvh = clip_to_bvh(npz, out / "walk_smpl22.bvh")
            print("[3/3] summary:")
            print(summarize(sample))
    except DreamorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\nwrote {npz} (clip: trans, root_orient, pose_body, joints, contacts, rest_joints)")
    print(f"wrote {bvh} (opens in Blender: File > Import > Motion Capture (.bvh))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
