"""Measure window seams of a refinement on a long real clip (issue #6: "no seam").

Refines a clip (lower body hidden) with the shipped models and compares the frame-to-frame
joint motion (largest joint displacement per transition, cm) at the transitions inside window
overlaps with the motion everywhere else, in the refined result and in the clean clip, and the
excess of the result's step over the clean clip's step at the same transition.

    OMP_NUM_THREADS=1 python scripts/measure_seams.py CLIP.bvh [--frames 600] [--preset fast] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.evaluate.occlusion import occlude
from dreamor.evaluate.run import cut_clip
from dreamor.refine.api import refine
from dreamor.refine.config import refine_preset
from dreamor.refine.windows import split_windows


def step_cm(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T-1,) largest joint displacement between consecutive frames, cm."""
    return 100 * np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(-1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    gt = cut_clip(with_joints_and_contacts(read_motion(a.clip)), a.frames)[0]
    obs = occlude(gt, "lower_body", seed=0)
    cfg = refine_preset(a.preset)
    out = refine(obs, obs.visible, cfg)
    windows = split_windows(gt.num_frames, cfg.window, cfg.window_overlap)
    # a seam: the transitions inside each overlap (where one window's result hands over to the next)
    seam = np.zeros(gt.num_frames - 1, bool)
    for (s0, e0), (s1, _) in zip(windows, windows[1:]):
        seam[max(s1 - 1, 0):min(e0, gt.num_frames - 1)] = True
    ref, clean = step_cm(out.joints), step_cm(gt.joints)
    r = {
        "clip": Path(a.clip).name, "frames": gt.num_frames, "preset": a.preset, "windows": len(windows),
        "window": cfg.window, "window_overlap": cfg.window_overlap,
        "refined_step_cm": {"at_seams_max": float(ref[seam].max()), "at_seams_mean": float(ref[seam].mean()),
                            "elsewhere_max": float(ref[~seam].max()), "elsewhere_mean": float(ref[~seam].mean())},
        "clean_step_cm": {"max": float(clean.max()), "mean": float(clean.mean()), "p99": float(np.quantile(clean, 0.99))},
    }
    excess = ref - clean  # how much faster than the real motion the result moves, per transition
    r["excess_over_clean_step_cm"] = {"at_seams_max": float(excess[seam].max()), "elsewhere_max": float(excess[~seam].max()),
                                      "at_seams_p95": float(np.quantile(excess[seam], 0.95)),
                                      "elsewhere_p95": float(np.quantile(excess[~seam], 0.95))}
    r["seam_jump_within_normal_motion"] = r["refined_step_cm"]["at_seams_max"] <= r["clean_step_cm"]["max"]
    text = json.dumps(r, indent=1)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
