#!/usr/bin/env python3
"""How long a re-refine after one more pin takes (issue #18), with the backend's window cache and without it.

The animator's loop: the lower body is lost for the whole take, full-body pose keys (pins, where the clean take has
the pose) every 40 frames; refine; then one more key half-way between two keys in the middle of the take, and
refine again. Measured per take: the first refine (the cache empty), the re-refine with the cache (what
`dreamor serve` does), the same re-refine without it (a full refine again), the windows reused, and the hidden-joint
error of both re-refines (reuse must not cost accuracy).

    OMP_NUM_THREADS=1 python scripts/measure_rerefine.py OUT_DIR [--preset default] [--clips 3] [--frames 300,1200]

Reads the default split's first takes (scripts/eval_bodies.sh's list) from ../shared/data/mocap; writes
OUT_DIR/rerefine.json and rerefine.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "backend"), str(ROOT / "scripts")]

from ablate_prior import split_files  # noqa: E402

from dreamor.body.skeleton import MODEL_FPS  # noqa: E402
from dreamor.data.convert import read_motion, with_joints_and_contacts  # noqa: E402
from dreamor.evaluate.occlusion import occlude  # noqa: E402
from dreamor.refine.api import load_models, refine  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402
from dreamor.refine.reuse import WindowCache  # noqa: E402
from dreamor.refine.windows import split_windows  # noqa: E402

KEY_EVERY = 40


def _cut(clip, frames: int):
    return replace(clip, trans=clip.trans[:frames], root_orient=clip.root_orient[:frames],
                   pose_body=clip.pose_body[:frames], joints=clip.joints[:frames], contacts=clip.contacts[:frames])


def _keyed(observed, gt, pinned):
    return replace(observed, joints=np.where(pinned[..., None], gt.joints, observed.joints), pinned=pinned)


def _hidden_cm(out, gt, observed, pinned) -> float:
    hidden = ~observed.visible & ~pinned.any(1, keepdims=True)  # hidden joints on frames without a key
    return float(np.linalg.norm(out.joints - gt.joints, axis=-1)[hidden].mean() * 100)


def measure(gt, cfg, models) -> dict:
    observed = occlude(gt, "lower_body")
    pinned = np.zeros_like(observed.visible)
    pinned[::KEY_EVERY] = True
    more = pinned.copy()
    mid = (gt.num_frames // 2) // KEY_EVERY * KEY_EVERY + KEY_EVERY // 2
    more[mid] = True
    cache = WindowCache()
    t0 = time.perf_counter()
    refine(_keyed(observed, gt, pinned), config=cfg, models=models, cache=cache)
    t1 = time.perf_counter()
    cached = refine(_keyed(observed, gt, more), config=cfg, models=models, cache=cache)
    t2 = time.perf_counter()
    full = refine(_keyed(observed, gt, more), config=cfg, models=models)
    t3 = time.perf_counter()
    total = len(split_windows(round(gt.num_frames / gt.fps * MODEL_FPS), cfg.window, cfg.window_overlap))
    return {"name": gt.name, "frames": gt.num_frames, "first_s": t1 - t0, "rerefine_cached_s": t2 - t1,
            "rerefine_full_s": t3 - t2, "windows": total, "windows_reused": cached.timings["windows_reused"],
            "hidden_cm_cached": _hidden_cm(cached, gt, observed, more), "hidden_cm_full": _hidden_cm(full, gt, observed, more),
            "pin_cm_cached": float(np.linalg.norm(cached.joints - gt.joints, axis=-1)[more].max() * 100)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--frames", default="300,1200")
    args = ap.parse_args()
    cfg = refine_preset(args.preset)
    models = load_models()
    rows = []
    for frames in (int(f) for f in args.frames.split(",")):
        taken = 0
        for path in split_files("val"):
            gt = with_joints_and_contacts(read_motion(path))  # 30 Hz
            if gt.num_frames < frames:
                continue
            rows.append(measure(_cut(gt, frames), cfg, models))
            print(json.dumps(rows[-1]), flush=True)
            taken += 1
            if taken == args.clips:
                break
    args.out.mkdir(parents=True, exist_ok=True)
    device = f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)"
    command = f"OMP_NUM_THREADS={torch.get_num_threads()} python scripts/measure_rerefine.py {args.out} --preset {args.preset} " \
              f"--clips {args.clips} --frames {args.frames}"
    (args.out / "rerefine.json").write_text(json.dumps({"command": command, "device": device, "rows": rows}, indent=1))
    lines = [f"# Re-refine after one more pin (`{args.preset}`)", "", f"`{command}` on {device}.", "",
             f"Lower body hidden for the whole take, a full-body key every {KEY_EVERY} frames, then one more key half-way "
             "between two keys in the middle. Hidden: hidden joints on frames without a key.", "",
             "| take | frames | first refine (s) | re-refine, cache (s) | re-refine, none (s) | none / cache | windows reused "
             "| hidden, cache (cm) | hidden, none (cm) | new pin (cm) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['frames']} | {r['first_s']:.1f} | {r['rerefine_cached_s']:.1f} | "
                     f"{r['rerefine_full_s']:.1f} | {r['rerefine_full_s'] / r['rerefine_cached_s']:.2f} | "
                     f"{r['windows_reused']:.0f} / {r['windows']} | {r['hidden_cm_cached']:.2f} | {r['hidden_cm_full']:.2f} | "
                     f"{r['pin_cm_cached']:.2f} |")
    (args.out / "rerefine.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
