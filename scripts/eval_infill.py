"""The joint-completion network's validation figures, for any checkpoint, on the training run's fixed batches:
lower body hidden, 96-frame windows; the default split on the takes' own bodies, the same on random bodies, and
the unseen-subject split on random bodies (``train_infill._val_batch``). For comparing checkpoints (the model card).

    python scripts/eval_infill.py models/infill-small.pt [more.pt ...]
"""
from __future__ import annotations

import argparse
import json

import torch

from dreamor.data.dataset import build_motion_data
from dreamor.models.infill import load_infill
from dreamor.train.common import REPO_ROOT, default_sources
from dreamor.train.train_infill import PRESETS, _val_batch, hidden_error_cm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = build_motion_data(default_sources(), REPO_ROOT / "cache", quiet=True)
    cfg = PRESETS["small"]
    batches = {"val_hidden_cm": _val_batch(data, cfg), "val_bodies_hidden_cm": _val_batch(data, cfg, "val", True),
               "unseen_hidden_cm": _val_batch(data, cfg, "unseen", True)}
    for path in args.checkpoints:
        model = load_infill(path)
        print(json.dumps({"checkpoint": path, **{k: round(hidden_error_cm(model, b), 3) for k, b in batches.items()}}))


if __name__ == "__main__":
    main()
