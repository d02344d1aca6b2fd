"""Validation figures of any MotionVAE or joint-completion checkpoint on the training runs' own fixed batches,
for comparing checkpoints across bodies and splits (the model card):

- infill: hidden-joint error (cm), lower body hidden, 96-frame windows: the default split on the takes' own bodies
  (``val_hidden_cm``), the same on random bodies (``val_bodies_hidden_cm``), the unseen-subject split on random
  bodies (``unseen_hidden_cm``) (``train_infill._val_batch``);
- vae: one-step and posterior-rollout joint errors (cm) on 61-frame windows of the same three sets
  (``train_vae.validation_batch`` and ``body_validation_batches``).

    python scripts/eval_models.py infill models/infill-small.pt [more.pt ...]
    python scripts/eval_models.py vae models/vae-small.pt [more.pt ...]
"""
from __future__ import annotations

import argparse
import json

import torch

from dreamor.data.dataset import build_motion_data
from dreamor.train.common import REPO_ROOT, default_sources


def infill_figures(data, paths: list[str]) -> None:
    from dreamor.models.infill import load_infill
    from dreamor.train.train_infill import PRESETS, _val_batch, hidden_error_cm

    cfg = PRESETS["small"]
    batches = {"val_hidden_cm": _val_batch(data, cfg), "val_bodies_hidden_cm": _val_batch(data, cfg, "val", True),
               "unseen_hidden_cm": _val_batch(data, cfg, "unseen", True)}
    for path in paths:
        model = load_infill(path)
        print(json.dumps({"checkpoint": path, **{k: round(hidden_error_cm(model, b), 3) for k, b in batches.items()}}))


def vae_figures(data, paths: list[str]) -> None:
    from dreamor.models.configs import preset
    from dreamor.models.vae import load_vae
    from dreamor.train.train_vae import body_validation_batches, evaluate, validation_batch

    cfg = preset("small")
    batches = {"val": validation_batch(data, cfg, "cpu")[0], **body_validation_batches(data, cfg, "cpu")}
    keys = ("one_step_joint_cm", "rollout_1s_cm", "rollout_2s_cm", "contact_acc")
    for path in paths:
        vae = load_vae(path)
        out = {"checkpoint": path}
        for name, batch in batches.items():
            m = evaluate(vae, batch, cfg, prior_fitted=True)
            out.update({f"{name}_{k}": round(m[k], 3) for k in keys})
        print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["infill", "vae"])
    p.add_argument("checkpoints", nargs="+")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = build_motion_data(default_sources(), REPO_ROOT / "cache", quiet=True)
    (infill_figures if args.kind == "infill" else vae_figures)(data, args.checkpoints)


if __name__ == "__main__":
    main()
