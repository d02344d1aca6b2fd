"""Would alternatives along the window prior's principal directions cover the truth better than its draws?

    python scripts/probe_alternatives.py val|unseen N     # the first N clips of a split of scripts/eval_bodies.sh

Lower body hidden, 150 frames, the networks' answers before any optimisation (``--method infill``: the
alternatives are posed draws and skip the optimisation anyway), at 30 Hz and the reference body size. Per clip, hidden
joint error (cm) of: the completion network's mean guess (``mean``); the best of 5 as shipped, the mean guess and 4
of the window prior's draws re-centred on it (``cur``); the best of the mean guess and +-k standard deviations along
the first two principal directions of 24 draws (``pcaK``); and how much of the truth's residual (truth - mean
guess, squared) lies along those two directions (``share_pc12``) and in the span of all 24 draws (``share_span``).
Output: docs/benchmarks/prior12/alternatives_pca.txt.
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
from dreamor.evaluate.occlusion import occlude  # noqa: E402
from dreamor.evaluate.run import cut_clip  # noqa: E402
from dreamor.refine import api  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402


def record(rec: dict) -> None:
    """Wrap the functions ``refine`` calls so that ``rec`` gets the mean guess, the draws and the mask they used."""
    complete, draw = infill.complete, api.draw_completions

    def completed(*a, **k):
        rec["mean"] = complete(*a, **k)
        return rec["mean"]

    def drawn(*a, **k):
        rec["draws"], rec["seen"] = draw(*a, **k), a[2]
        return rec["draws"]

    infill.complete, api.draw_completions = completed, drawn


def probe(path: str, cfg, models, rec: dict) -> dict:
    clip = replace(with_joints_and_contacts(read_motion(path)), name=clip_stem(Path(path)))
    gt = cut_clip(clip, 150)[0]
    obs = occlude(gt, "lower_body", 0)
    rec.clear()
    api.refine(obs, obs.visible, cfg, models=models)
    size = api.body_scale(gt.rest_joints)
    mean, draws, hid = rec["mean"], rec["draws"], ~rec["seen"]
    idx = np.round(np.arange(len(mean)) * gt.fps / MODEL_FPS).astype(int).clip(0, gt.num_frames - 1)
    truth = gt.joints[idx] / size

    def err(x):
        return float(np.linalg.norm(x - truth, axis=-1)[hid].mean() * size * 100)

    dev = draws - draws.mean(0, keepdims=True)  # (M, n, 22, 3)
    _, s, vt = np.linalg.svd(dev[:, hid].reshape(len(draws), -1), full_matrices=False)
    std = s / np.sqrt(len(draws))
    row = {"clip": gt.name, "mean": err(mean), "cur": min(err(c) for c in [mean] + [mean + dev[i] for i in range(4)])}
    for k in (1.0, 2.0, 3.0, 4.0):
        alts = [mean]
        for pc in range(2):
            d = np.zeros_like(mean)
            d[hid] = (k * std[pc] * vt[pc]).reshape(-1, 3)
            alts += [mean + d, mean - d]
        row[f"pca{k:g}"] = min(err(c) for c in alts)
    r = (truth - mean)[hid].reshape(-1)
    row["share_pc12"] = float(((vt[:2] @ r) ** 2).sum() / (r @ r))
    row["share_span"] = float(((vt @ r) ** 2).sum() / (r @ r))
    return row


def main() -> None:
    split, num = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(2)
    rec: dict = {}
    record(rec)
    models, cfg = api.load_models(), refine_preset("default", ["doubt_draws=24"], method="infill")
    rows = []
    for path in split_files(split)[:num]:
        rows.append(probe(path, cfg, models, rec))
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    keys = [k for k in rows[0] if k != "clip"]
    m = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    ratios = {k: round(m[k] / m["mean"], 3) for k in keys if k not in ("mean", "share_pc12", "share_span")}
    print("MEAN", split, {k: round(v, 3) for k, v in m.items()}, "best of 5 / mean guess:", ratios)


if __name__ == "__main__":
    main()
