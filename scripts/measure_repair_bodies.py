#!/usr/bin/env python3
"""Glitch and lost-frame repair of dreamor clean's pipeline on other bodies and an unseen subject
(docs/benchmarks/clean.md): a 0.1 s shoulder glitch (30 cm) and 5 lost frames put into the first 150 frames of a
take at 30 Hz, on its own body, SMPL neutral and its own scaled by 0.85 and 1.2; `fast` preset.

    python scripts/measure_repair_bodies.py   # from the repository root; reads ../shared/data/mocap
"""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from dreamor.body.proportions import repose_clip  # noqa: E402
from dreamor.body.skeleton import SMPL_NEUTRAL_REST_JOINTS  # noqa: E402
from dreamor.clean.detect import detect_faults, fill_nonfinite, world_joints  # noqa: E402
from dreamor.clean.inject import nan_frames, spike  # noqa: E402
from dreamor.data.convert import read_motion  # noqa: E402
from dreamor.refine.api import load_models, refine  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402

m = load_models()
for path in ["tests/data/mocap/dataset-2_walk-turn-left_normal_001.bvh", "../shared/data/mocap/extra/cmu_14_21.bvh.gz"]:
    base = read_motion(path)  # 30 Hz
    base = replace(base, trans=base.trans[:150], root_orient=base.root_orient[:150], pose_body=base.pose_body[:150], joints=None)
    for body in ("native", "smpl", "x0.85", "x1.2"):
        c = base
        if body == "smpl": c = repose_clip(base, SMPL_NEUTRAL_REST_JOINTS)
        elif body.startswith("x"): c = repose_clip(base, base.rest_joints * float(body[1:]))
        c = replace(c, joints=None)
        t = world_joints(c)
        f = nan_frames(spike(c, 17, 70, 3, 0.3), 85, 5)
        vis = detect_faults(f).visible
        r = refine(fill_nonfinite(f, vis), vis, refine_preset("fast"), models=m)
        e = np.linalg.norm(r.joints - t, axis=-1)
        ein = np.linalg.norm(world_joints(spike(c, 17, 70, 3, 0.3)) - t, axis=-1)
        print(path.split("/")[-1], body, "glitch in %.1f -> %.1f cm" % (100*ein[70:73][:, [19, 21]].mean(), 100*e[70:73][:, [19, 21]].mean()),
              "lost frames %.1f cm" % (100*e[85:90].mean()), flush=True)
