"""Where the hidden legs' motion goes: the leg-speed ratio (``evaluate.metrics.leg_speed_ratio``) after each stage
of ``refine`` -- the completion network's mean guess, the engine's guess, the optimisation, the final stages -- and
of the alternatives, on the first N clips of a split of scripts/eval_bodies.sh (lower body hidden, 150 frames).

    python scripts/probe_leg_speed.py val|unseen N [NAME=VALUE ...]   # --set settings, e.g. samples=3 init_smooth=2
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_prior import split_files  # noqa: E402

import dreamor.models.infill as infill  # noqa: E402
from dreamor.body.skeleton import MODEL_FPS  # noqa: E402
from dreamor.data.convert import clip_stem, read_motion, with_joints_and_contacts  # noqa: E402
from dreamor.evaluate.metrics import root_relative_speed  # noqa: E402
from dreamor.evaluate.occlusion import occlude  # noqa: E402
from dreamor.evaluate.run import cut_clip  # noqa: E402
from dreamor.refine import api  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402


def record_stages(rec: dict) -> None:
    """Wrap the functions ``refine`` calls so that ``rec`` gets the 30 Hz joints of the mean guess ('mean'), the
    engine's guess ('engine') and the optimised motion before the final stages ('optimised', at the clip's rate)."""
    complete, engine_guess, finish = infill.complete, api.engine_guess, api._finish

    def keep(name, fn, pick):
        def wrapped(*a, **k):
            out = fn(*a, **k)
            rec.setdefault(name, pick(a, out))
            return out
        return wrapped

    infill.complete = keep("mean", complete, lambda a, out: out)
    api.engine_guess = keep("engine", engine_guess, lambda a, out: out)
    api._finish = keep("optimised", finish, lambda a, out: a[0].joints.copy())


def probe(path: str, cfg, models, rec: dict) -> dict:
    """One clip's leg-speed ratios after each stage, and its hidden-joint error (cm)."""
    clip = replace(with_joints_and_contacts(read_motion(path)), name=clip_stem(Path(path)))
    gt = cut_clip(clip, 150)[0]
    obs = occlude(gt, "lower_body", 0)
    rec.clear()
    res = api.refine(obs, obs.visible, cfg, models=models)
    size, hid = api.body_scale(gt.rest_joints), ~obs.visible
    idx = np.round(np.arange(len(rec["mean"])) * gt.fps / MODEL_FPS).astype(int).clip(0, gt.num_frames - 1)
    truth30 = root_relative_speed(gt.joints[idx] / size, hid[idx])  # the stages at 30 Hz and the reference size
    truth = root_relative_speed(gt.joints, hid)
    row = {"clip": gt.name}
    for k in ("mean", "engine"):
        if k in rec:
            row[k] = root_relative_speed(rec[k], hid[idx]) / truth30
    row["optimised"] = root_relative_speed(rec["optimised"], hid) / (truth / size)
    row["final"] = root_relative_speed(res.joints, hid) / truth
    if res.alternatives:
        row["alts"] = float(np.mean([root_relative_speed(a.joints, hid) for a in res.alternatives])) / truth
    row["err_cm"] = float(np.linalg.norm(res.joints - gt.joints, axis=-1)[hid].mean() * 100)
    return row


def main() -> None:
    split, num, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    torch.set_num_threads(2)
    rec: dict = {}
    record_stages(rec)
    models, cfg = api.load_models(), refine_preset("default", settings)
    rows = []
    for path in split_files(split)[:num]:
        rows.append(probe(path, cfg, models, rec))
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    keys = [k for k in rows[0] if k != "clip"]
    print("MEAN", split, settings, {k: round(float(np.mean([r[k] for r in rows if k in r])), 3) for k in keys})


if __name__ == "__main__":
    main()
