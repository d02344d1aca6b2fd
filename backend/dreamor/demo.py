"""`dreamor demo`: the main job on the bundled sample, from the command line.

Retargets the bundled real Bandai Namco walk to SMPL-22, hides the lower body over the middle
of the clip and adds capture noise to what stays visible, refines it with the shipped models
and writes the clean, observed and refined clips, the refined one as a BVH, and
``metrics.json`` = {"input": {...}, "refined": {...}} measured against the clean clip.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DreamorError

SAMPLE = "dataset-2_walk-turn-left_normal_001.bvh"
NOISE_M = 0.01  # capture noise on the visible joints (1 cm per coordinate)
KEYS = ("occ_cm", "vis_cm", "all_cm", "legs_cm", "skate_cm", "pen_freq", "accel_ms2", "contact_acc")


def run_demo(out: Path, quick: bool = False, device: str = "cpu") -> dict:
    from .data.clip import save_clip
    from .data.convert import clip_to_bvh, read_motion, with_joints_and_contacts
    from .evaluate import metrics as M
    from .evaluate.baselines import run_input
    from .evaluate.occlusion import observe
    from .refine.api import load_models, refine
    from .refine.config import refine_preset
    from .skeleton import JOINT_GROUPS

    steps = 5
    print(f"[1/{steps}] retargeting the bundled sample {SAMPLE} to SMPL-22 at 30 Hz ...", flush=True)
    with resources.as_file(resources.files("dreamor").joinpath("assets/samples", SAMPLE)) as sample:
        clean = with_joints_and_contacts(read_motion(sample))
    if quick:
        clean = replace(clean, trans=clean.trans[:60], root_orient=clean.root_orient[:60],
                        pose_body=clean.pose_body[:60], joints=clean.joints[:60], contacts=clean.contacts[:60])
    t = clean.num_frames
    a, b = t // 4, (3 * t) // 4
    print(f"[2/{steps}] hiding the lower body on frames {a}-{b - 1} of {t} and adding {NOISE_M * 100:.0f} cm capture noise ...",
          flush=True)
    visible = np.ones((t, 22), bool)
    visible[a:b, list(JOINT_GROUPS["lower_body"])] = False
    noise = np.random.default_rng(0).normal(0.0, NOISE_M, size=(t, 22, 3))
    observed = observe(clean, visible, noise)

    preset = "fast" if quick else "default"
    print(f"[3/{steps}] loading the models and refining ({preset} preset, {device}) ...", flush=True)
    models = load_models(device=device)
    last = {"pct": -10}

    def progress(stage, fraction, energies):
        pct = int(100 * fraction)
        if pct >= last["pct"] + 10:
            last["pct"] = pct
            print(f"      {stage} {pct:3d}%  energy {energies.get('total', float('nan')):.4g}", flush=True)

    t0 = time.perf_counter()
    refined = refine(observed, visible, refine_preset(preset, device=device), progress=progress, models=models)
    seconds = time.perf_counter() - t0

    print(f"[4/{steps}] measuring against the clean clip ...", flush=True)
    baseline = run_input(observed)  # the observation as an animator has it: hidden joints held
    report = {}
    for name, joints, contacts in (("input", baseline.joints, baseline.contacts), ("refined", refined.joints, refined.contacts)):
        m = M.values(M.clip_metrics(joints, clean.joints, visible, clean.fps, contacts, clean.contacts))
        report[name] = {k: m[k] for k in KEYS}
    report["settings"] = {"sample": SAMPLE, "frames": t, "hidden_frames": [a, b], "noise_m": NOISE_M, "preset": preset,
                          "device": device, "refine_seconds": round(seconds, 2), "models": models.ids}

    print(f"[5/{steps}] writing {out} ...", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    save_clip(clean, out / "clean.npz")
    save_clip(observed, out / "observed.npz")
    save_clip(replace(refined.to_clip(clean), visible=visible), out / "refined.npz")
    clip_to_bvh(out / "refined.npz", out / "refined_smpl22.bvh")
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dreamor demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    parser.add_argument("--quick", action="store_true", help="a shorter clip and the fast preset (for tests)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        report = run_demo(out, args.quick, args.device)
    except DreamorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [f"{'metric':12s} {'input':>9s} {'refined':>9s}"]
    for k in KEYS:
        i, r = report["input"][k], report["refined"][k]
        rows.append(f"{k:12s} {i if i is None else f'{i:9.3f}':>9} {r if r is None else f'{r:9.3f}':>9}")
    print("\n" + "\n".join(rows))
    print(f"\nrefinement took {report['settings']['refine_seconds']} s")
    print(f"wrote {out}/clean.npz, observed.npz, refined.npz, refined_smpl22.bvh and metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
