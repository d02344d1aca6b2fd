"""Which takes of ../shared/data/mocap the retargeting levels (``data.retarget.floor_tilt``), and by how much.

    python scripts/measure_floor_tilt.py [GLOB]   # default: every .bvh.gz under ../shared/data/mocap/*/
"""
from __future__ import annotations

import sys
from pathlib import Path

from dreamor.body.rotations import rotation_angle_deg
from dreamor.data import retarget
from dreamor.data.bvh import read_bvh

ROOT = Path(__file__).resolve().parent.parent


def tilt_degrees(path: Path) -> float:
    """The floor tilt (degrees) the retargeting levels in one take (0: left as captured)."""
    bvh = read_bvh(path)
    targets = retarget.bvh_targets(bvh)[1]
    return float(rotation_angle_deg(retarget.floor_tilt(targets[:, [10, 11]], bvh.fps)))


def main() -> int:
    pattern = sys.argv[1] if len(sys.argv) > 1 else "*/*.bvh.gz"
    files = sorted((ROOT.parent / "shared" / "data" / "mocap").glob(pattern))
    levelled = [(f, tilt_degrees(f)) for f in files]
    levelled = [(f, t) for f, t in levelled if t > 0]
    for f, t in levelled:
        print(f"{f.parent.name}/{f.name}: {t:.2f} deg")
    print(f"{len(levelled)} of {len(files)} takes levelled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
