"""Hypotheses: a few distinct completions of hidden joints, trained to cover the truth (issue #28).

The window prior (``models.window_prior``) draws completions from the conditional distribution. Its
draws are plausible, but over a 150-frame clip with the legs hidden one draw is rarely closer than the
mean guess (a gait phase right for some frames and wrong for others): the best of 5 draws was 3-6 %
better than the mean guess, where an animator choosing between alternatives needs one that is *right*
when the mean guess is not. This network is trained for that directly, by multiple-choice learning
(Guzman-Rivera et al. 2012; Rupprecht et al. 2017, "relaxed winner-takes-all"): ``heads`` completions
of every window, of which only the closest one (with the completion network's mean guess as one more
competitor) is pulled towards the truth. Each head then learns the conditional mean of the cases it
wins: a committed answer (a step, a lifted foot, a turn) where the mean guess hedges. A score per head
(and one for the mean guess) says which is likely to win, so the alternatives can be ordered.

Network: the completion network's trunk (``models.infill``: the same features, dilated temporal
convolutions, fully convolutional), then per head one more residual block and its own output layer;
the score is a 1x1 convolution of the trunk's features (detached) averaged over time. Warm start: trunk and
every head's output from a trained completion network, each head's block slightly different, so the
heads start near the mean guess and split from there. Sizes: at the reference size, as the completion
network (``bodies.body_scale``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..body.proportions import body_scale
from ..body.skeleton import NUM_JOINTS
from .checkpoint import load_checkpoint, save_checkpoint
from .configs import _from_dict
from .infill import NUM_FEATURES, InfillConfig, JointInfill, _Block, features, to_world

CHECKPOINT_FORMAT = "dreamor-hypotheses"
CHECKPOINT_VERSION = 1


@dataclass
class HypothesesConfig:
    trunk: InfillConfig = field(default_factory=InfillConfig)
    heads: int = 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HypothesesConfig":
        d = dict(d)
        trunk = InfillConfig.from_dict(d.pop("trunk", {}))
        return _from_dict(cls, {**d, "trunk": trunk})


class JointHypotheses(nn.Module):
    """(B, T, NUM_FEATURES) features -> (hypotheses (B, H, T, 22, 3) body-frame joints m, score logits (B, H + 1):
    index 0 the mean guess, 1.. the heads)."""

    def __init__(self, config: HypothesesConfig | None = None):
        super().__init__()
        self.config = config or HypothesesConfig()
        trunk, h = self.config.trunk, self.config.heads
        c = trunk.channels
        self.register_buffer("feat_mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("feat_std", torch.ones(NUM_FEATURES))
        self.inp = nn.Conv1d(NUM_FEATURES, c, 1)
        self.blocks = nn.Sequential(*[_Block(c, trunk.kernel, d) for d in trunk.dilations])
        self.head_blocks = nn.ModuleList([_Block(c, trunk.kernel, 1) for _ in range(h)])
        for block in self.head_blocks:  # near the identity: every head starts near the trunk's answer
            block.mix.weight.data.mul_(0.1)
            block.mix.bias.data.zero_()
        self.outs = nn.ModuleList([nn.Conv1d(c, NUM_JOINTS * 3, 1) for _ in range(h)])
        self.score = nn.Conv1d(c, h + 1, 1)

    def warm_start(self, infill: JointInfill) -> None:
        """Trunk and every head's output layer from a trained completion network (same trunk)."""
        if infill.config.to_dict() != self.config.trunk.to_dict():
            raise ValueError("the completion network's trunk differs from this model's")
        own = self.state_dict()
        for k, v in infill.state_dict().items():
            if k.startswith("out."):
                for i in range(self.config.heads):
                    own[f"outs.{i}.{k[4:]}"] = v.clone()
            else:
                own[k] = v.clone()
        self.load_state_dict(own)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.blocks(self.inp(((feat - self.feat_mean) / self.feat_std).transpose(1, 2)))
        hyps = torch.stack([out(block(h)) for block, out in zip(self.head_blocks, self.outs)], 1)
        hyps = hyps.transpose(2, 3).unflatten(-1, (NUM_JOINTS, 3))
        return hyps, self.score(h.detach()).mean(-1)  # the score never bends the completions


@torch.no_grad()
def hypotheses(model: JointHypotheses, joints: np.ndarray, visible: np.ndarray, rest: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The heads' completions of a clip: (T, 22, 3) m at 30 Hz, (T, 22) bool, (22, 3) ->
    (completions (H, T, 22, 3) world joints, visible joints exactly as given, ordered by score, most likely first;
    their probabilities (H + 1,) of being the closest, index 0 the mean guess, then in the same order).
    At the reference size inside, as ``infill.complete``."""
    s = body_scale(rest)
    feat, origin, yaw = features(np.where(visible[..., None], joints, 0.0) / s, visible, rest / s)
    p = next(model.parameters())
    local, logits = model(torch.from_numpy(feat).to(p)[None])
    prob = torch.softmax(logits[0].double(), -1).cpu().numpy()
    order = np.argsort(-prob[1:], kind="stable")
    world = np.stack([to_world(loc, origin, yaw) for loc in local[0].double().cpu().numpy()]) * s
    out = np.where(visible[None, ..., None], joints[None], world[order])
    return out, np.concatenate([prob[:1], prob[1:][order]])


# ----------------------------------------------------------------------------- checkpoints
def save_hypotheses(path: str | os.PathLike, model: JointHypotheses, **extra: Any) -> Path:
    """Write the checkpoint (``models/checkpoint.py``'s format; extra: step, metrics, train config...)."""
    return save_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, model.config.to_dict(), model.state_dict(),
                           **extra)


def read_hypotheses(path: str | os.PathLike) -> dict:
    return load_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, what="hypotheses",
                           train="dreamor train hypotheses")


def load_hypotheses(path: str | os.PathLike, device: str | torch.device = "cpu") -> JointHypotheses:
    """The trained network in eval mode, frozen; ``.metrics`` and ``.step`` from the checkpoint."""
    ckpt = read_hypotheses(path)
    model = JointHypotheses(HypothesesConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.metrics = ckpt.get("metrics", {})
    model.step = ckpt.get("step", 0)
    return model.to(device).eval().requires_grad_(False)
