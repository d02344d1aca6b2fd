#!/usr/bin/env python3
"""False alarms and detection rate of ``dreamor clean --occlude auto`` (docs/benchmarks/clean.md).

    python scripts/measure_detection.py --out docs/benchmarks/clean_detection.json FILE...

For every clean take (at its own frame rate): the share of joint-frames each detector flags (all false
alarms: the take is clean), then, one fault at a time put into a copy of it (both legs held 1.33 s, a 0.1 s
rotation glitch of the right shoulder moving the wrist 30 cm, 0.17 s of NaN frames), the share of the
joint-frames the fault touched (its joints and those below them, over its frames) that are hidden, and the
share of the others that are hidden too.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from dreamor.body.skeleton import JOINT_GROUPS  # noqa: E402
from dreamor.clean.detect import KINDS, detect_faults  # noqa: E402
from dreamor.clean.inject import hold_legs, nan_frames, spike, touched  # noqa: E402
from dreamor.data.convert import read_motion  # noqa: E402

#: name -> (make(clip, start, frames), duration in seconds, the joints it touches)
FAULTS = {
    "held legs 1.33 s": (hold_legs, 1.333, JOINT_GROUPS["lower_body"]),
    "spike 0.1 s, 30 cm": (lambda c, s, n: spike(c, 17, s, n, 0.3), 0.1, (17,)),
    "NaN frames 0.17 s": (nan_frames, 0.167, (0,)),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    clean_flags = {k: 0 for k in (*KINDS, "hidden")}
    clean_total = 0
    per_take = []
    fault_stats = {name: {"truth": 0, "found": 0, "others": 0, "false": 0} for name in FAULTS}
    t0 = time.perf_counter()
    for path in args.files:
        clip = read_motion(path, fps=None)
        faults = detect_faults(clip)
        counts = faults.counts()
        n = clip.num_frames * 22
        clean_total += n
        for k in clean_flags:
            clean_flags[k] += counts[k]
        per_take.append({"take": path.name, "frames": clip.num_frames, "fps": clip.fps,
                         "hidden_share": counts["hidden"] / n, **{k: counts[k] for k in KINDS}})
        for name, (make, seconds, joints) in FAULTS.items():
            if clip.num_frames < round(3 * clip.fps):  # too short to hold the legs in
                continue
            start = int(rng.integers(round(0.5 * clip.fps), clip.num_frames - round(2 * clip.fps)))
            frames = max(1, round(seconds * clip.fps))
            faulty = make(clip, start, frames)
            truth = touched(joints, start, frames, clip.num_frames)
            hidden = ~detect_faults(faulty).visible
            s = fault_stats[name]
            s["truth"] += int(truth.sum())
            s["found"] += int((hidden & truth).sum())
            s["others"] += int((~truth).sum())
            s["false"] += int((hidden & ~truth).sum())
        print(f"{path.name}: {clip.num_frames} frames at {clip.fps:g} fps, hidden {counts['hidden'] / n:.3%}",
              file=sys.stderr)
    report = {
        "takes": len(args.files),
        "joint_frames": clean_total,
        "clean_false_alarm_share": {k: v / clean_total for k, v in clean_flags.items()},
        "injected": {name: {"detected_share": s["found"] / max(s["truth"], 1),
                            "false_alarm_share": s["false"] / max(s["others"], 1), **s}
                     for name, s in fault_stats.items()},
        "seconds": round(time.perf_counter() - t0, 1),
        "per_take": per_take,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "per_take"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
