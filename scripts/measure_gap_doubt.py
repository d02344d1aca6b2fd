"""How far off is a joint the engine fills by splines (a gap shorter than ``spline_gap_s``, a whole lost frame), and
what predicts it? Random short gaps on clean takes of both splits of scripts/eval_bodies.sh, each filled by
``body.fill.spline_fill``; per hidden joint-frame the real error against ``refine.gap_doubt.spline_doubt``.

    python scripts/measure_gap_doubt.py OUT.json [--takes 24] [--gaps 40] [--seed 0]

Prints and writes: mean real and predicted error (cm), their ratio, the share of joint-frames whose error is
within the doubt, Spearman over gaps (mean per gap), by split and by gap length.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_prior import split_files  # noqa: E402

from dreamor.body.fill import spline_fill  # noqa: E402
from dreamor.data.convert import read_motion, with_joints_and_contacts  # noqa: E402
from dreamor.refine.gap_doubt import spline_doubt  # noqa: E402


def gaps_on(clip, rng, num: int, max_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``num`` masks (T, 22) with one hidden run of 1 .. max_s s on a random joint (or, one time in four, all
    joints: a lost frame run), seen frames on both sides."""
    t = clip.num_frames
    out = []
    longest = max(1, int(round(max_s * clip.fps)))
    for _ in range(num):
        n = int(rng.integers(1, longest + 1))
        a = int(rng.integers(3, t - n - 3))
        vis = np.ones((t, 22), bool)
        joints = slice(None) if rng.random() < 0.25 else [int(rng.integers(0, 22))]
        vis[a : a + n, joints] = False
        out.append((vis, np.arange(a, a + n)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--takes", type=int, default=24)
    ap.add_argument("--gaps", type=int, default=40)
    ap.add_argument("--max-s", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    result = {}
    for split in ("val", "unseen"):
        real, pred, per_gap, lengths = [], [], [], []
        for path in split_files(split)[: args.takes]:
            clip = with_joints_and_contacts(read_motion(path))
            for vis, frames in gaps_on(clip, rng, args.gaps, args.max_s):
                filled = spline_fill(np.where(vis[..., None], clip.joints, np.nan), vis, clip.rest_joints)
                doubt = spline_doubt(filled, vis, clip.fps)
                hid = ~vis
                err = np.linalg.norm(filled - clip.joints, axis=-1)[hid]
                real.append(err)
                pred.append(doubt[hid])
                per_gap.append((err.mean(), doubt[hid].mean()))
                lengths.append(len(frames) / clip.fps)
        r, p = np.concatenate(real), np.concatenate(pred)
        g = np.array(per_gap)
        lengths = np.array(lengths)
        row = {"joint_frames": int(len(r)), "gaps": int(len(g)), "real_cm": float(r.mean() * 100),
               "doubt_cm": float(p.mean() * 100), "doubt_over_real": float(p.mean() / r.mean()),
               "within_doubt": float((r <= p).mean()), "spearman_gaps": float(spearmanr(g[:, 0], g[:, 1])[0]),
               "real_p95_cm": float(np.percentile(r, 95) * 100)}
        for lo, hi in ((0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 1.0)):
            m = (lengths > lo) & (lengths <= hi)
            if m.any():
                row[f"gaps_{lo}-{hi}s"] = {"gaps": int(m.sum()), "real_cm": float(g[m, 0].mean() * 100),
                                          "doubt_cm": float(g[m, 1].mean() * 100)}
        result[split] = row
        print(split, json.dumps(row, indent=1), flush=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), **result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
