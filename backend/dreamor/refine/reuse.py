"""Optimised windows kept between refines of one clip, so a re-refine after one more pin is quick.

A window's optimisation depends only on its inputs: the observed-or-guessed joints, the masks and weights of its
frames (30 Hz, at the reference size; the initial states are made from the joints, smoothed over a few frames
around the window), the rest skeleton, the settings that steer the optimiser and the models; with the
window-agreement energy on (``weights.overlap``), also on its neighbours' inputs. ``window_inputs`` gathers that
for each window: a key digesting the parts that must match exactly (masks, weights, skeleton, settings, models)
and the joints, which may differ by at most ``TOLERANCE_M`` for a stored result to be reused. A pin changes the
guess of the joint-completion network a little everywhere within its ~4 s receptive field, so an exact match
would reuse nothing near it; 1 mm is far below what the refinement itself can tell (its hidden-joint error is
centimetres). Every energy is a mean within its window and every window draws its own random numbers
(``refine.energies``, ``optimize.window_generators``), so a window optimised in a batch of its own is the window it
would have been among all the others; with window agreement on, a re-optimised window is pulled towards its
reused neighbours' joints (``api._neighbour_targets``) where a fresh refine would move both.

Stages after the optimisation (keep visible, the fit to the observation and the pins, locked feet) always run
again on the whole clip; they take a fraction of a second.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .config import RefineConfig

#: settings that act after the optimisation (or only on how it reports): they do not change a window's result.
#: (Batches do not either: every energy is per window and every window draws its own random numbers.) ``noisy`` is
#: not one of them: a noisy capture's start is smoothed (``RefineConfig.start_smooth``).
_AFTER_OPTIMISATION = {"preset", "keep_visible", "lock_feet", "meet_observation", "visible_warn_cm",
                       "preview_every_s", "max_batch_windows"}
#: a stored window is reused when its joints are within this of the new ones (metres at the reference size).
TOLERANCE_M = 1e-3


@dataclass
class WindowInput:
    """What one window's optimisation depends on: ``key`` the exact parts, ``joints`` (F, 22, 3) float32 the
    observed-or-guessed joints of the frames around it that reach it."""

    key: str
    joints: np.ndarray


def _exact_bytes(a) -> bytes:
    a = np.asarray(a)
    return np.packbits(a).tobytes() if a.dtype == bool else np.ascontiguousarray(a, np.float64).tobytes()


def window_inputs(windows: list[tuple[int, int]], joints: np.ndarray, masks: list[np.ndarray], rest: np.ndarray,
                  cfg: RefineConfig, model_ids: dict[str, str]) -> list[WindowInput]:
    """One ``WindowInput`` per window [(start, end)) of the clip: ``joints`` (T, 22, 3) observed-or-guessed at 30 Hz,
    ``masks`` per-frame arrays (T, ...) that must match exactly (visible, weights, guessed), ``rest`` (22, 3).

    Each window covers its own frames and the frames whose smoothing reaches them (``cfg.start_smooth``), and with
    window agreement on, its neighbours' frames too."""
    steer = sorted((k, v) for k, v in asdict(cfg).items() if k not in _AFTER_OPTIMISATION)
    base = repr((steer, sorted(model_ids.items()))).encode() + _exact_bytes(rest)
    # the smoothing of the guess reaches int(4 sigma + 0.5) frames (scipy's truncate=4), the states' backward
    # velocities one more; with window agreement a window also sees its neighbours' frames
    margin = int(4 * cfg.start_smooth + 0.5) + 1 + (cfg.window if cfg.weights.overlap > 0 else 0)
    n = len(joints)
    out = []
    for s, e in windows:
        lo, hi = max(s - margin, 0), min(e + margin, n)
        h = hashlib.blake2b(base, digest_size=16)
        h.update(np.array([s - lo, e - s, hi - e], np.int64).tobytes())
        for a in masks:
            h.update(_exact_bytes(a[lo:hi]))
        out.append(WindowInput(h.hexdigest(), np.asarray(joints[lo:hi], np.float32)))
    return out


class WindowCache:
    """Optimised windows by their inputs, least recently used dropped past ``max_windows``. One cache serves one
    set of loaded models (the server's runner holds one). An entry is 35-60 kB (the window's states and the joints
    around it; more with window agreement on): 2,048 windows, ~25 minutes of motion, take at most ~125 MB; a longer
    clip pushes its own first windows out, so nothing of it is reused."""

    def __init__(self, max_windows: int = 2048):
        self.max_windows = max_windows
        self._store: OrderedDict[int, tuple[WindowInput, torch.Tensor, torch.Tensor]] = OrderedDict()
        self._by_key: dict[str, list[int]] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, inp: WindowInput) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(states (L, 273), contacts (L, 9)) float64 of a stored window with these inputs, or None."""
        for i in reversed(self._by_key.get(inp.key, [])):
            have, states, contacts = self._store[i]
            if np.abs(have.joints - inp.joints).max(initial=0.0) <= TOLERANCE_M:
                self._store.move_to_end(i)
                return states.double(), contacts.double()
        return None

    def put(self, inp: WindowInput, states: torch.Tensor, contacts: torch.Tensor) -> None:
        # the optimiser works in float32: keeping float32 loses nothing
        self._store[self._next] = (inp, states.detach().cpu().float(), contacts.detach().cpu().float())
        self._by_key.setdefault(inp.key, []).append(self._next)
        self._next += 1
        while len(self._store) > self.max_windows:
            i, (old, _, _) = self._store.popitem(last=False)
            ids = self._by_key[old.key]
            ids.remove(i)
            if not ids:
                del self._by_key[old.key]
