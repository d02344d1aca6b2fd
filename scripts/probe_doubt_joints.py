"""Is the doubt right joint by joint? ``refine`` (default preset) on the first N clips of a split of
scripts/eval_bodies.sh (lower body hidden, 150 frames, own bodies): per hidden joint the mean real error and the
mean doubt (``uncertainty``) over the hidden frames, their ratio, and over all hidden joint-frames the share within
the doubt and the Spearman correlation of doubt and error.

    python scripts/probe_doubt_joints.py OUT.json val|unseen N [protocol=lower_body|limb_gaps] [NAME=VALUE ...]
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_prior import split_files  # noqa: E402

from dreamor.body.skeleton import JOINT_NAMES  # noqa: E402
from dreamor.data.convert import clip_stem, read_motion, with_joints_and_contacts  # noqa: E402
from dreamor.evaluate.occlusion import occlude  # noqa: E402
from dreamor.evaluate.run import cut_clip  # noqa: E402
from dreamor.refine import api  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402


def main() -> None:
    out, split, num, settings = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    protocol = next((s.split("=", 1)[1] for s in settings if s.startswith("protocol=")), "lower_body")
    settings = [s for s in settings if not s.startswith("protocol=")]
    torch.set_num_threads(2)
    models, cfg = api.load_models(), refine_preset("default", settings)
    errs, doubts, joints = [], [], []
    for path in split_files(split)[:num]:
        clip = replace(with_joints_and_contacts(read_motion(path)), name=clip_stem(Path(path)))
        gt = cut_clip(clip, 150)[0]
        obs = occlude(gt, protocol, 0)
        res = api.refine(obs, obs.visible, cfg, models=models)
        hid = ~obs.visible
        if not hid.any():
            continue
        err = np.linalg.norm(res.joints - gt.joints, axis=-1)
        errs.append(err[hid])
        doubts.append(res.uncertainty[hid])
        joints.append(np.nonzero(hid)[1])
        print(gt.name, f"err {err[hid].mean() * 100:.2f} cm, doubt {res.uncertainty[hid].mean() * 100:.2f} cm", flush=True)
    e, d, j = np.concatenate(errs), np.concatenate(doubts), np.concatenate(joints)
    per_joint = {JOINT_NAMES[k]: {"real_cm": float(e[j == k].mean() * 100), "doubt_cm": float(d[j == k].mean() * 100),
                                  "real_over_doubt": float(e[j == k].mean() / max(d[j == k].mean(), 1e-9))}
                 for k in np.unique(j)}
    row = {"command": " ".join(sys.argv), "split": split, "clips": num, "real_cm": float(e.mean() * 100),
           "doubt_cm": float(d.mean() * 100), "within_doubt": float((e <= d).mean()),
           "spearman_joint_frames": float(spearmanr(e, d)[0]), "per_joint": per_joint}
    print(json.dumps(row, indent=1))
    Path(out).write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
