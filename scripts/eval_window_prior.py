#!/usr/bin/env python3
"""The window prior's draws on fixed validation windows, against the joint-completion network (models/MODEL_CARD.md).

    python scripts/eval_window_prior.py [--prior models/window-prior-small.pt] [--windows 64] [--draws 5]
                                        [--steps 10,20] [--eta 0,1] [--guidance 1,2] [--smooth 0,1,2,3]
                                        [--out docs/benchmarks/prior12/draws.json]

Lower body hidden on ``--windows`` 96-frame windows of the default split (the takes' own bodies) and of the
unseen-subject split (random bodies), the same windows as training's validation. For every (DDIM steps, eta,
classifier-free guidance, start, smoothing sigma in frames) the draws' figures
(``train_window_prior.sample_metrics``: one draw's hidden error, the draws' mean, the best draw, their spread,
leg-speed ratio, energy score) and the Spearman correlation over windows of the draws' RMS distance from the
completion network's answer (the doubt) with that answer's real error; the completion network's own hidden error and
leg-speed ratio on the same windows are the baseline. Reads ../shared/data/mocap.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from dreamor.data.dataset import build_motion_data  # noqa: E402
from dreamor.evaluate.metrics import spearman  # noqa: E402
from dreamor.models.infill import load_infill  # noqa: E402
from dreamor.models.schedule import randn  # noqa: E402
from dreamor.models.window_prior import SampleConfig, denoise_local, load_window_prior  # noqa: E402
from dreamor.train.common import default_sources  # noqa: E402
from dreamor.train.train_infill import _val_batch  # noqa: E402
from dreamor.train.train_window_prior import PRESETS, leg_speed, sample_metrics  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", default=str(ROOT / "models" / "window-prior-small.pt"))
    ap.add_argument("--infill", default=str(ROOT / "models" / "infill-small.pt"))
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--steps", default="10")
    ap.add_argument("--eta", default="0", help="comma-separated DDIM eta: 0 deterministic, 1 as DDPM")
    ap.add_argument("--guidance", default="1", help="comma-separated classifier-free guidance scales (1: none)")
    ap.add_argument("--smooth", default="0,1,2,3")
    ap.add_argument("--t-start", default="1.0", help="comma-separated fractions of T: below 1 the draws start "
                    "from the completion network's answer noised to it (SDEdit)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    prior, infill = load_window_prior(args.prior), load_infill(args.infill)
    data = build_motion_data(default_sources(), ROOT / "cache", quiet=True)
    cfg = replace(PRESETS["small"], val_windows=args.windows)
    out: dict = {"prior": Path(args.prior).name, "prior_step": prior.step, "windows": args.windows,
                 "draws": args.draws, "command": "python scripts/eval_window_prior.py " + " ".join(sys.argv[1:]),
                 "splits": {}}
    for split, bodies in (("val", False), ("unseen", True)):
        _, _, _, feat, target, mask = _val_batch(data, cfg, split, bodies=bodies)
        hidden = ~mask
        with torch.no_grad():
            mean = infill(feat)
        base_err = (mean - target).norm(dim=-1)
        per_window_err = (base_err * hidden).sum((-1, -2)) / hidden.sum((-1, -2)).clamp(min=1)
        res = {"infill_cm": base_err[hidden].mean().item() * 100,
               "infill_leg_speed_ratio": (leg_speed(mean, hidden) / leg_speed(target, hidden).clamp(min=1e-6)).mean().item(),
               "configs": []}
        t_starts = [float(x) for x in args.t_start.split(",")]
        grid = [(int(k), t, float(e), float(g)) for k in args.steps.split(",") for t in t_starts
                for e in args.eta.split(",") for g in args.guidance.split(",")]
        for steps, t_start, eta, guidance in grid:
            sample_cfg = SampleConfig(steps=steps, t_start=t_start, eta=eta, guidance=guidance)
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(0)
            ts = prior.schedule.timestep_at(t_start)
            raws = []
            for _ in range(args.draws):
                noise = randn((len(feat), feat.shape[1], 66), gen, feat)
                if t_start < 1.0:
                    noise = prior.schedule.add_noise(prior.normalise(mean), noise, torch.full((len(feat),), ts))
                raws.append(denoise_local(prior, feat, noise, ts, sample_cfg, gen))
            raw = torch.stack(raws)
            secs = time.perf_counter() - t0
            for sigma in map(float, args.smooth.split(",")):
                smooth = raw if sigma == 0 else torch.from_numpy(
                    gaussian_filter1d(raw.numpy(), sigma, axis=2, mode="nearest")).to(raw)
                # recentred: the draws' deviations from their own mean, around the completion network's answer
                for recentre in (False, True):
                    draws = smooth - smooth.mean(0, keepdim=True) + mean[None] if recentre else smooth
                    draws = torch.where(mask[None, ..., None], target[None], draws)
                    m = sample_metrics(draws, target, mask)
                    spread = ((draws - mean[None]).square().sum(-1).mean(0).sqrt() * hidden).sum((-1, -2)) \
                        / hidden.sum((-1, -2)).clamp(min=1)
                    m["doubt_spearman"] = spearman(spread.numpy(), per_window_err.numpy())
                    m["doubt_over_error"] = float(spread.mean() / per_window_err.mean())
                    res["configs"].append({"steps": steps, "t_start": t_start, "eta": eta, "guidance": guidance,
                                           "smooth": sigma, "recentre": recentre,
                                           "seconds": round(secs, 2),
                                           **{k: round(v, 4) if v is not None else None for k, v in m.items()}})
                    print(split, f"K={steps} t={t_start} eta={eta} w={guidance} sigma={sigma} recentre={recentre}",
                          {k: round(v, 2) for k, v in m.items() if v is not None}, flush=True)
        print(split, "infill", round(res["infill_cm"], 3), round(res["infill_leg_speed_ratio"], 3), flush=True)
        out["splits"][split] = res
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
