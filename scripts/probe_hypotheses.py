"""Do the hypotheses network's heads cover the truth better than the window prior's draws, as alternatives?

    python scripts/probe_hypotheses.py val|unseen N [CKPT [BODY]]   # the first N (up to 24) clips of a split of scripts/eval_bodies.sh

Lower body hidden, 150 frames, the networks' answers before any optimisation (``--method infill``; the
alternatives are posed completions and skip the optimisation anyway), at 30 Hz and the reference body size. Per
clip, hidden-joint error (cm) of the completion network's mean guess (``mean``), the best of 5 with the window
prior's alternatives (the mean guess and 4 re-centred draws: ``draws5``), the best of 5 with the heads (the mean
guess and the 4 heads: ``heads5``), the best of the mean guess, the 2 likeliest heads and 2 draws (``mixed5``), the heads alone (``heads_each``, their mean error) and their mean pairwise
distance (``heads_spread``); bounds on what choosing can reach: the best of all 9 (``all9``), the draws 1.5 x as far
from the mean guess (``draws5_x1.5``), the mixed 5 chosen anew for every 1 s / 0.5 s of the clip (``mixed5_per_1s``,
``mixed5_per_0.5s``, as if the animator spliced stretches); leg speed (hidden joints, result / truth) of the mean
guess, the heads, the likeliest head and the draws (``speed_*``). CKPT: the hypotheses checkpoint (default models/hypotheses-small.pt); BODY: every clip put
on this body first, as ``dreamor eval --bodies`` (default ``native``: the clip's own).
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
from dreamor.body.proportions import named_body, repose_clip  # noqa: E402
from dreamor.body.skeleton import MODEL_FPS  # noqa: E402
from dreamor.data.convert import clip_stem, read_motion, with_joints_and_contacts  # noqa: E402
from dreamor.evaluate.metrics import root_relative_speed  # noqa: E402
from dreamor.evaluate.occlusion import occlude  # noqa: E402
from dreamor.evaluate.run import cut_clip  # noqa: E402
from dreamor.models.hypotheses import hypotheses, load_hypotheses  # noqa: E402
from dreamor.refine import api  # noqa: E402
from dreamor.refine.alternatives import pairwise_spread, recentred  # noqa: E402
from dreamor.refine.config import refine_preset  # noqa: E402


def record(rec: dict) -> None:
    """Wrap the functions ``refine`` calls so that ``rec`` gets the mean guess, its inputs and the draws."""
    complete, draw = infill.complete, api.draw_completions

    def completed(*a, **k):
        rec["inputs"], rec["mean"] = a[1:4], complete(*a, **k)
        return rec["mean"]

    def drawn(*a, **k):
        rec["draws"] = draw(*a, **k)
        return rec["draws"]

    infill.complete, api.draw_completions = completed, drawn


def probe(path: str, cfg, models, heads_model, rec: dict, body: str = "native") -> dict:
    clip = replace(with_joints_and_contacts(read_motion(path)), name=clip_stem(Path(path)))
    if body != "native":
        clip = repose_clip(clip, named_body(body, clip.rest_joints))
    gt = cut_clip(clip, 150)[0]
    obs = occlude(gt, "lower_body", 0)
    rec.clear()
    api.refine(obs, obs.visible, cfg, models=models)
    size = api.body_scale(gt.rest_joints)
    (obs30, seen, rest), mean = rec["inputs"], rec["mean"]
    hid = ~seen
    idx = np.round(np.arange(len(mean)) * gt.fps / MODEL_FPS).astype(int).clip(0, gt.num_frames - 1)
    truth = gt.joints[idx] / size
    heads = hypotheses(heads_model, obs30, seen, rest)[0]
    draws = recentred(rec["draws"], mean)

    def err(x):
        return float(np.linalg.norm(x - truth, axis=-1)[hid].mean() * size * 100)

    def per_stretch(cands, frames):  # the best of ``cands`` chosen anew for every stretch of ``frames`` frames
        e = np.where(hid[None], np.linalg.norm(np.stack(cands) - truth[None], axis=-1), 0.0).sum(-1)  # (N, T)
        best = sum(e[:, a : a + frames].sum(1).min() for a in range(0, len(truth), frames))
        return float(best / hid.sum() * size * 100)

    def speed(x):
        return root_relative_speed(x, hid) / max(root_relative_speed(truth, hid), 1e-9)

    return {"clip": gt.name, "mean": err(mean), "draws5": min(err(c) for c in [mean, *draws[:4]]),
            "heads5": min(err(c) for c in [mean, *heads[:4]]),
            "mixed5": min(err(c) for c in [mean, *heads[:2], *draws[:2]]), "heads_each": float(np.mean([err(h) for h in heads])),
            "heads_spread": pairwise_spread(heads, hid) * size * 100, "speed_mean": speed(mean),
            "speed_heads": float(np.mean([speed(h) for h in heads])), "speed_top_head": speed(heads[0]),
            "top_head": err(heads[0]), "speed_draws": float(np.mean([speed(d) for d in draws[:4]])),
            "all9": min(err(c) for c in [mean, *heads[:4], *draws[:4]]),
            "draws5_x1.5": min(err(c) for c in [mean, *(mean + 1.5 * (draws[:4] - mean))]),
            "mixed5_per_1s": per_stretch([mean, *heads[:2], *draws[:2]], 30),
            "mixed5_per_0.5s": per_stretch([mean, *heads[:2], *draws[:2]], 15)}


def main() -> None:
    split, num = sys.argv[1], int(sys.argv[2])
    ckpt = sys.argv[3] if len(sys.argv) > 3 else str(api.models_dir() / "hypotheses-small.pt")
    body = sys.argv[4] if len(sys.argv) > 4 else "native"
    torch.set_num_threads(2)
    rec: dict = {}
    record(rec)
    models, cfg = api.load_models(), refine_preset("default", [], method="infill")
    heads_model = load_hypotheses(ckpt)
    rows = []
    for path in split_files(split)[:num]:
        rows.append(probe(path, cfg, models, heads_model, rec, body))
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "clip"}
    print("MEAN", split, body, {k: round(v, 3) for k, v in m.items()}, "best of 5 / mean guess: draws",
          round(m["draws5"] / m["mean"], 3), "heads", round(m["heads5"] / m["mean"], 3),
          "mixed", round(m["mixed5"] / m["mean"], 3), "| best of 9 (mean, 4 heads, 4 draws)", round(m["all9"] / m["mean"], 3),
          "| draws 1.5 x as far", round(m["draws5_x1.5"] / m["mean"], 3), "| mixed chosen per 1 s / 0.5 s",
          round(m["mixed5_per_1s"] / m["mean"], 3), round(m["mixed5_per_0.5s"] / m["mean"], 3))


if __name__ == "__main__":
    main()
