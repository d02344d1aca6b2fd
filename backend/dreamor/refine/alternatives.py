"""Alternatives and doubt from the window prior (``models.window_prior``, issue #28).

The window prior draws completions of the hidden joints given what is seen. Its draws are
plausible motions, but their mean is further from the truth than the joint-completion network's
answer (the regression estimates the conditional mean directly; the prior's mean drifts over a
DDIM chain: MODEL_CARD.md). So the refinement trusts the completion network for where the limbs
are on average and the prior for how they move about it:

- the engine's own answer is the mean guess plus one SDEdit draw's deviation from its siblings'
  mean (``engine_guess``: ``draws`` completions from the mean guess noised to
  ``RefineConfig.prior_t``), so its hidden limbs move as real ones do instead of the damped average
  while staying, on average, where the mean guess is;
- ``RefineConfig.samples`` - 1 alternatives are whole draws (from pure noise) re-centred the same
  way on the mean guess (``recentred``), after the hypotheses network's heads where it is loaded,
  each draw the farthest of them from those before it (``farthest_first``), each posed by IK and put
  through the same final stages as the answer (visible joints met, pins, locked feet);
- the doubt of every hidden joint (``doubt``) is how far the raw draws lie from the mean guess:
  their spread and the prior's disagreement with the completion network.

All arrays here are at 30 Hz and at the reference size (the refinement's working frame).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..models.window_prior import SampleConfig, WindowPrior, sample_completions


def draw_completions(prior: WindowPrior, observed: np.ndarray, seen: np.ndarray, rest: np.ndarray, num: int,
                     seed: int, steps: int, smooth: float = 1.0, on_step: Callable[[], None] | None = None) -> np.ndarray:
    """``num`` whole completions: observed (n, 22, 3) (anything where not ``seen``), seen (n, 22), rest (22, 3)
    -> (num, n, 22, 3), seen joints as observed; each draw smoothed in time by a Gaussian of ``smooth`` frames.
    ``on_step()`` before every network call (it may raise to stop)."""
    draws = sample_completions(prior, observed, seen, rest, num, seed=seed, cfg=SampleConfig(steps=steps),
                               on_step=on_step)
    return _smoothed(draws, seen, observed, smooth)


def engine_guess(prior: WindowPrior, mean_guess: np.ndarray, seen: np.ndarray, rest: np.ndarray, t_start: float,
                 seed: int, steps: int, draws: int = 4, smooth: float = 1.0,
                 on_step: Callable[[], None] | None = None) -> np.ndarray:
    """The completion the engine stands behind: ``draws`` completions from ``mean_guess`` (n, 22, 3) noised to
    ``t_start`` (fraction of T) and denoised by the prior; the first one's deviation from their mean, added to
    ``mean_guess`` -> (n, 22, 3), seen joints as given."""
    out = sample_completions(prior, mean_guess, seen, rest, max(draws, 2), seed=seed,
                             cfg=SampleConfig(steps=steps, t_start=t_start), around=mean_guess, on_step=on_step)
    return recentred(_smoothed(out, seen, mean_guess, smooth), mean_guess)[0]


def recentred(draws: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(M, n, 22, 3) draws -> their deviations from their own mean, around ``centre`` (n, 22, 3). Where the draws
    agree (the seen joints) this is ``centre``; the draws' pairwise distances do not change."""
    return draws - draws.mean(0, keepdims=True) + centre[None]


def farthest_first(candidates: np.ndarray, chosen: np.ndarray, num: int, hidden: np.ndarray) -> np.ndarray:
    """Greedy farthest-point choice: ``num`` of the candidates (M, n, 22, 3), each the one whose mean hidden-joint
    distance (``hidden`` (n, 22)) to the nearest of ``chosen`` (C, n, 22, 3) and of those picked before is the
    largest -> (num, n, 22, 3), in the order picked."""
    def dist(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b, axis=-1)[hidden].mean()) if hidden.any() else 0.0

    left, picked = list(range(len(candidates))), []
    nearest = [min((dist(c, x) for x in chosen), default=np.inf) for c in candidates]
    for _ in range(min(num, len(candidates))):
        best = max(left, key=lambda i: nearest[i])
        left.remove(best)
        picked.append(best)
        nearest = [min(nearest[i], dist(candidates[i], candidates[best])) for i in range(len(candidates))]
    return candidates[picked]


def _smoothed(draws: np.ndarray, seen: np.ndarray, observed: np.ndarray, sigma: float) -> np.ndarray:
    if sigma > 0:
        draws = gaussian_filter1d(draws, sigma, axis=1, mode="nearest")
    return np.where(seen[None, ..., None], observed[None], draws)


def doubt(draws: np.ndarray, answer: np.ndarray, hidden: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(M, n, 22, 3) draws, (n, 22, 3) answer, (n, 22) hidden -> (n, 22) metres: ``scale`` times the RMS distance
    of the draws from the answer, where hidden (0 where seen)."""
    rms = np.sqrt(np.mean(np.sum((draws - answer[None]) ** 2, axis=-1), axis=0))
    return np.where(hidden, scale * rms, 0.0)


def pairwise_spread(samples: np.ndarray, hidden: np.ndarray) -> float:
    """Mean distance (m) between the hidden joints of every pair of samples (N, T, 22, 3); 0 for one sample."""
    n = len(samples)
    pairs = [np.linalg.norm(samples[i] - samples[j], axis=-1)[hidden].mean()
             for i in range(n) for j in range(i + 1, n)]
    return float(np.mean(pairs)) if pairs and hidden.any() else 0.0
