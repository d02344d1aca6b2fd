"""Where the hidden legs' motion goes: the leg-speed ratio (``evaluate.metrics.leg_speed_ratio``) after each stage
of ``refine`` -- the completion network's mean guess, the engine's guess, the optimisation, the final stages -- and
of the alternatives, on the first N clips of a split of scripts/eval_bodies.sh (lower body hidden, 150 frames).

    python scripts/probe_leg_speed.py val|unseen N [NAME=VALUE ...]   # --set settings, e.g. samples=3 init_smooth=2
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataclasses import replace
from ablate_prior import split_files
from dreamor.data.convert import read_motion, with_joints_and_contacts, clip_stem
from dreamor.evaluate.run import cut_clip
from dreamor.evaluate.occlusion import occlude
from dreamor.evaluate.metrics import root_relative_speed
from dreamor.refine import api
from dreamor.refine.config import refine_preset
import dreamor.models.infill as inf
import torch
torch.set_num_threads(2)
split = sys.argv[1]; nclips = int(sys.argv[2]); sets = sys.argv[3:]
rec = {}
# the stages are recorded by wrapping the functions refine calls
orig_complete, orig_eg, orig_finish = inf.complete, api.engine_guess, api._finish
def complete(*a, **k):
    r = orig_complete(*a, **k); rec.setdefault("mean", r); return r
def eg(*a, **k):
    r = orig_eg(*a, **k); rec.setdefault("engine", r); return r
def finish(out, timings, **k):
    rec.setdefault("optimised", out.joints.copy()); r = orig_finish(out, timings, **k); return r
inf.complete, api.engine_guess, api._finish = complete, eg, finish
models = api.load_models()
cfg = refine_preset("default", sets)
rows = []
for f in split_files(split)[:nclips]:
    clip = replace(with_joints_and_contacts(read_motion(f)), name=clip_stem(Path(f)))
    gt = cut_clip(clip, 150)[0]
    obs = occlude(gt, "lower_body", 0)
    rec.clear()
    res = api.refine(obs, obs.visible, cfg, models=models)
    size = api.body_scale(gt.rest_joints)
    hid = ~obs.visible
    step = gt.fps / 30.0
    idx = np.round(np.arange(len(rec["mean"])) * step).astype(int).clip(0, gt.num_frames - 1)
    g30, h30 = gt.joints[idx] / size, hid[idx]
    truth30 = root_relative_speed(g30, h30)
    truth = root_relative_speed(gt.joints, hid)
    r = {"clip": gt.name, "fps": gt.fps}
    for k in ("mean", "engine"):
        if k in rec: r[k] = root_relative_speed(rec[k], h30) / truth30
    r["optimised"] = root_relative_speed(rec["optimised"], hid) / (truth / size)
    r["final"] = root_relative_speed(res.joints, hid) / truth
    if res.alternatives:
        r["alts"] = float(np.mean([root_relative_speed(a.joints, hid) for a in res.alternatives])) / truth
    r["err_cm"] = float(np.linalg.norm(res.joints - gt.joints, axis=-1)[hid].mean() * 100)
    rows.append(r); print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
keys = [k for k in rows[0] if k not in ("clip", "fps")]
print("MEAN", split, sets, {k: round(float(np.mean([r[k] for r in rows if k in r])), 3) for k in keys})
