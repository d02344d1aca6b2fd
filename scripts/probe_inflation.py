"""Can the answer's hidden legs move at real speed without losing accuracy? Before any optimisation, on the first N
clips of a split of scripts/eval_bodies.sh (lower body hidden, 150 frames, own bodies): the hidden joints' error
(cm) and leg-speed ratio of the mean guess, of the engine's guess, and of both with their pelvis-relative motion
about a low-pass of itself scaled by ``alpha`` (a fixed factor, or one from the doubt: the law of total variance says
the truth moves by its mean's motion plus the posterior's spread).

    python scripts/probe_inflation.py val|unseen N
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_prior import split_files  # noqa: E402

from dreamor.body.skeleton import MODEL_FPS  # noqa: E402
from dreamor.data.convert import clip_stem, read_motion, with_joints_and_contacts  # noqa: E402
from dreamor.evaluate.metrics import root_relative_speed  # noqa: E402
from dreamor.evaluate.occlusion import occlude  # noqa: E402
from dreamor.evaluate.run import cut_clip  # noqa: E402
from dreamor.models.infill import complete  # noqa: E402
from dreamor.refine import api  # noqa: E402
from dreamor.refine.alternatives import draw_completions, engine_guess  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402


def inflated(g: np.ndarray, hidden: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """(n, 22, 3) joints with the hidden joints' pelvis-relative motion about its low-pass (Gaussian, ``sigma``
    frames) scaled by ``alpha``."""
    rel = g - g[:, :1]
    low = gaussian_filter1d(rel, sigma, axis=0, mode="nearest")
    out = low + alpha * (rel - low) + g[:, :1]
    return np.where(hidden[..., None], out, g)


def probe(path: str, cfg, models) -> dict:
    clip = replace(with_joints_and_contacts(read_motion(path)), name=clip_stem(Path(path)))
    gt = cut_clip(clip, 150)[0]
    obs = occlude(gt, "lower_body", 0)
    size = api.body_scale(gt.rest_joints)
    idx = np.round(np.arange(int(round(gt.num_frames * MODEL_FPS / gt.fps))) * gt.fps / MODEL_FPS).astype(int)
    idx = idx.clip(0, gt.num_frames - 1)
    truth, seen, rest = gt.joints[idx] / size, obs.visible[idx], gt.rest_joints / size
    seen[:, 0] = True
    hid = ~seen
    observed = np.where(seen[..., None], truth, 0.0)
    mean = complete(models.infill, observed, seen, rest, mirror_average=cfg.mirror_guess)
    eng = engine_guess(models.window_prior, mean, seen, rest, cfg.prior_t, cfg.seed, cfg.prior_steps, cfg.guess_draws)
    draws = draw_completions(models.window_prior, observed, seen, rest, cfg.doubt_draws, cfg.seed + 1, cfg.prior_steps)
    tv = root_relative_speed(truth, hid)

    def stats(g):
        return (float(np.linalg.norm(g - truth, axis=-1)[hid].mean() * 100 * size), root_relative_speed(g, hid) / tv)

    row = {"clip": gt.name}
    row["mean"], row["engine"] = stats(mean), stats(eng)
    # the doubt's share of motion: the draws' spread about their own low-pass, against the answer's motion
    rel_d = draws - draws[:, :, :1]
    hf_d = rel_d - gaussian_filter1d(rel_d, 6, axis=1, mode="nearest")
    spread_hf = np.var(hf_d, axis=0).sum(-1)[hid].mean()
    rel_e = eng - eng[:, :1]
    hf_e = rel_e - gaussian_filter1d(rel_e, 6, axis=0, mode="nearest")
    energy = (hf_e ** 2).sum(-1)[hid].mean()
    row["alpha_doubt"] = float(np.sqrt(1 + spread_hf / max(energy, 1e-12)))
    for a in (1.2, 1.4, 1.7):
        for s in (3, 6):
            row[f"eng_a{a}_s{s}"] = stats(inflated(eng, hid, a, s))
    row["eng_doubt_s6"] = stats(inflated(eng, hid, row["alpha_doubt"], 6))
    return row


def main() -> None:
    split, num = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(2)
    models, cfg = api.load_models(), refine_preset("default")
    rows = []
    for path in split_files(split)[:num]:
        rows.append(probe(path, cfg, models))
        r = rows[-1]
        print(r["clip"], {k: (tuple(round(x, 3) for x in v) if isinstance(v, tuple) else
                              (round(v, 3) if isinstance(v, float) else v)) for k, v in r.items() if k != "clip"},
              flush=True)
    print("MEAN", split)
    for k in rows[0]:
        if k == "clip":
            continue
        if isinstance(rows[0][k], tuple):
            print(f"  {k:16s} err {np.mean([r[k][0] for r in rows]):6.2f} cm  speed {np.mean([r[k][1] for r in rows]):.3f}")
        else:
            print(f"  {k:16s} {np.mean([r[k] for r in rows]):.3f}")


if __name__ == "__main__":
    main()
