#!/usr/bin/env python3
"""What the window prior costs a refine (docs/benchmarks/prior12): one 300-frame clip, lower body hidden over its
middle 150 frames, each configuration ``--repeats`` times in this one process (round robin), median seconds.

    python scripts/bench_prior_cost.py [--preset default] [--repeats 3] [--out docs/benchmarks/prior12/cost.json]

Configurations: the engine without the window prior (as before issue #28: no doubt, no alternatives), with it
(the answer moves, the doubt), with it and 5 samples, and `--method infill` / `vae_only` as references. The clip is
the bundled CMU 02_01 walk at 30 Hz (tests/data/mocap), its first 300 frames repeated if it is shorter.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from dreamor.body.skeleton import JOINT_GROUPS  # noqa: E402
from dreamor.data.convert import read_motion  # noqa: E402
from dreamor.refine.api import load_models, refine  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402


def clip_300():
    clip = read_motion(ROOT / "tests" / "data" / "mocap" / "dataset-2_walk-turn-left_normal_001.bvh")
    idx = np.arange(300) % clip.num_frames
    return replace(clip, trans=clip.trans[idx], root_orient=clip.root_orient[idx], pose_body=clip.pose_body[idx],
                   joints=None, contacts=None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    clip = clip_300()
    vis = np.ones((300, 22), bool)
    vis[75:225, list(JOINT_GROUPS["lower_body"])] = False
    with_prior = load_models()
    if with_prior.window_prior is None:
        sys.exit("error: no models/window-prior-small.pt to measure")
    without = replace(with_prior, window_prior=None)
    configs = {
        "no window prior (before #28)": (without, {}),
        "window prior, 1 sample": (with_prior, {}),
        "window prior, 5 samples": (with_prior, {"samples": 5}),
        "infill": (without, {"method": "infill"}),
        "infill + window prior, 5 samples": (with_prior, {"method": "infill", "samples": 5}),
        "vae_only": (without, {"method": "vae_only"}),
    }
    # round robin: every repeat runs each configuration once, so a machine that slows down or speeds up over the
    # minutes (seen: 13 % between two runs of the same work) weighs on all of them alike
    times: dict[str, list[float]] = {name: [] for name in configs}
    for r in range(args.repeats):
        for name, (models, over) in configs.items():
            t0 = time.perf_counter()
            refine(clip, vis, refine_preset(args.preset, **over), models=models)
            times[name].append(time.perf_counter() - t0)
            print(f"repeat {r + 1}, {name}: {times[name][-1]:.2f} s", flush=True)
    rows = {name: round(statistics.median(t), 3) for name, t in times.items()}
    base = rows["no window prior (before #28)"]
    out = {"preset": args.preset, "frames": 300, "hidden": "lower body, frames 75..224", "repeats": args.repeats,
           "device": f"cpu ({platform.processor() or platform.machine()}), 1 torch thread",
           "command": "python scripts/bench_prior_cost.py " + " ".join(sys.argv[1:]),
           "seconds": rows, "all_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
           "ratio_to_no_prior": {k: round(v / base, 3) for k, v in rows.items()}}
    print(json.dumps(out["ratio_to_no_prior"], indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
