#!/usr/bin/env python3
"""Speed and repair accuracy of ``dreamor clean`` on a library with injected faults (docs/benchmarks/clean.md).

    python scripts/bench_clean.py --out docs/benchmarks/clean_bench.json FILE...

Each FILE (a clean take) is cut to its first ``--seconds`` at its own rate, given faults (both legs held
1.33 s, a 0.1 s glitch of the right shoulder moving the wrist 30 cm, 0.17 s of NaN frames) and saved as an
.npz into a library folder; ``dreamor clean`` then runs on it for every (preset, workers) asked, each into a
fresh output folder, and the report's takes/min and frames/s are kept with the error of the result against
the clean take on the joint-frames the faults touched (the input's error there, NaN frames left out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from dreamor.body.skeleton import JOINT_GROUPS  # noqa: E402
from dreamor.clean.detect import world_joints  # noqa: E402
from dreamor.clean.inject import hold_legs, nan_frames, spike, touched  # noqa: E402
from dreamor.data.convert import read_motion  # noqa: E402


def make_library(files: list[Path], folder: Path, seconds: float, rng) -> dict[str, dict]:
    """Faulty copies of the takes in ``folder``; returns name -> {clean joints, touched mask, nan frames}."""
    truth = {}
    for path in files:
        clip = read_motion(path, fps=None)
        n = min(clip.num_frames, int(seconds * clip.fps))
        clip = replace(clip, trans=clip.trans[:n], root_orient=clip.root_orient[:n], pose_body=clip.pose_body[:n],
                       joints=None)
        f = clip.fps
        held, glitch, lost = round(1.333 * f), max(1, round(0.1 * f)), max(1, round(0.167 * f))
        a = int(rng.integers(round(0.3 * f), n // 3))
        b = int(rng.integers(a + held + 2, a + held + 2 + max(1, n // 6)))
        c = min(n - lost - 2, b + glitch + round(0.5 * f))
        faulty = nan_frames(spike(hold_legs(clip, a, held), 17, b, glitch, 0.3), c, lost)
        name = path.name.split(".")[0]
        np.savez(folder / f"{name}.npz", trans=faulty.trans, root_orient=faulty.root_orient,
                 pose_body=faulty.pose_body, mocap_framerate=np.float64(f), rest_joints=faulty.rest_joints)
        masks = {"held legs": touched(JOINT_GROUPS["lower_body"], a, held, n), "glitch": touched([17], b, glitch, n)}
        bad_input = world_joints(replace(faulty, trans=np.nan_to_num(faulty.trans),
                                         root_orient=np.nan_to_num(faulty.root_orient),
                                         pose_body=np.nan_to_num(faulty.pose_body)))
        truth[name] = {"joints": world_joints(clip), "masks": masks, "input": bad_input, "frames": n, "fps": f}
    return truth


def repair_error(out: Path, truth: dict) -> dict:
    """{fault: {input, cleaned}} mean error in cm on the joint-frames it touched, over the library, and per
    take its input and cleaned error (cm) and the takes that got worse."""
    errs: dict[str, dict[str, list]] = {}
    worse, per_take = [], {}
    for name, t in truth.items():
        with np.load(out / f"{name}.npz") as f:
            joints = f["joints"]
        e_in = np.linalg.norm(t["input"] - t["joints"], axis=-1)
        e_out = np.linalg.norm(joints - t["joints"], axis=-1)
        for fault, m in t["masks"].items():
            errs.setdefault(fault, {"input": [], "cleaned": []})
            errs[fault]["input"].append(e_in[m])
            errs[fault]["cleaned"].append(e_out[m])
            per_take.setdefault(name, {})[fault] = [round(100 * float(e_in[m].mean()), 2),
                                                    round(100 * float(e_out[m].mean()), 2)]
            if e_out[m].mean() > e_in[m].mean():
                worse.append(f"{name} ({fault}: {100 * e_in[m].mean():.1f} -> {100 * e_out[m].mean():.1f} cm)")
    out_ = {f: {k: round(100 * float(np.concatenate(v).mean()), 2) for k, v in d.items()} for f, d in errs.items()}
    return {**out_, "worse_than_input": worse, "per_take_input_cleaned_cm": per_take}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--presets", default="fast,default")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each take (default 6 s)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="passed to dreamor clean")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="dreamor-bench-clean-") as tmp:
        lib = Path(tmp) / "library"
        lib.mkdir()
        truth = make_library(args.files, lib, args.seconds, np.random.default_rng(0))
        for preset in args.presets.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                out = Path(tmp) / f"out_{preset}_{workers}"
                cmd = [sys.executable, "-m", "dreamor.cli", "clean", str(lib), "--out", str(out), "--preset", preset,
                       "--workers", str(workers), "--quiet"] + [a for s in args.set for a in ("--set", s)]
                t0 = time.perf_counter()
                rc = subprocess.run(cmd, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}).returncode
                wall = time.perf_counter() - t0
                report = json.loads((out / "report.json").read_text())
                errors = repair_error(out, truth)
                runs.append({"preset": preset, "workers": workers, "set": args.set, "rc": rc, "wall_s": round(wall, 1),
                             **{k: report["totals"][k] for k in ("takes", "ok", "failed", "frames_cleaned", "seconds",
                                                                 "takes_per_minute", "frames_per_second")},
                             "detected": report["totals"]["detected"],
                             "error_cm_on_faults": errors})
                print(json.dumps(runs[-1]), file=sys.stderr)
    result = {"takes": [str(f) for f in args.files], "seconds_per_take": args.seconds,
              "frames": sum(t["frames"] for t in truth.values()), "cpu_count": os.cpu_count(), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
