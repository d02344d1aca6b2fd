"""Alternatives and doubt from the window prior (``models.window_prior``, issue #28).

The window prior draws completions of the hidden joints given what is seen. The refinement uses
them three ways:

- the engine's own answer starts from a completion near the joint-completion network's mean
  guess (``engine_guess``: the mean noised to ``RefineConfig.prior_t`` and denoised, SDEdit), so its
  hidden limbs move as real ones do instead of the damped average;
- ``RefineConfig.samples`` - 1 alternatives are whole draws (from pure noise), each posed by IK and
  put through the same final stages as the answer (visible joints met, pins, locked feet);
- the doubt of every hidden joint (``doubt``) is how far the draws lie from the answer's start.

All arrays here are at 30 Hz and at the reference size (the refinement's working frame).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..models.window_prior import SampleConfig, WindowPrior, sample_completions


def draw_completions(prior: WindowPrior, observed: np.ndarray, seen: np.ndarray, rest: np.ndarray, num: int,
                     seed: int, steps: int, smooth: float = 1.0) -> np.ndarray:
    """``num`` whole completions: observed (n, 22, 3) (anything where not ``seen``), seen (n, 22), rest (22, 3)
    -> (num, n, 22, 3), seen joints as observed; each draw smoothed in time by a Gaussian of ``smooth`` frames."""
    draws = sample_completions(prior, observed, seen, rest, num, seed=seed, cfg=SampleConfig(steps=steps))
    return _smoothed(draws, seen, observed, smooth)


def engine_guess(prior: WindowPrior, mean_guess: np.ndarray, seen: np.ndarray, rest: np.ndarray, t_start: float,
                 seed: int, steps: int, smooth: float = 1.0) -> np.ndarray:
    """The completion the engine stands behind: ``mean_guess`` (n, 22, 3) noised to ``t_start`` (fraction of T)
    and denoised by the prior -> (n, 22, 3), seen joints as given."""
    out = sample_completions(prior, mean_guess, seen, rest, 1, seed=seed,
                             cfg=SampleConfig(steps=steps, t_start=t_start), around=mean_guess)
    return _smoothed(out, seen, mean_guess, smooth)[0]


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
