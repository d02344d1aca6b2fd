"""Energy terms of DREAMoR's test-time optimisation, as small functions.

Each returns ``(scalar, terms)`` where ``terms`` maps names to detached floats for
progress reports; the optimiser weights and sums them from a config and knows nothing of
their insides. Shapes: joints (B, T, 22, 3) metres, Z-up world; visible (B, T, 22) bool;
contacts (B, T, 9) probabilities in [0, 1]; ground = (normal (B, 3) unit, offset (B,)) so a
point's height is ``normal . p - offset``.

Every term is a mean within each of the B windows, summed over the windows (the terms report the mean over
windows): a window's energy, hence its optimisation, does not depend on which other windows share its batch,
so a window optimised again alone (``refine.reuse``) is balanced as it was among many.
"""
from __future__ import annotations

import torch

from ..body.skeleton import BONES, CONTACT_HEIGHT_M, CONTACT_JOINTS

Terms = dict[str, float]


def _window_means(x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(B, ...) -> (B,): each window's mean (weighted by ``weight``, the same shape, at least 1 in the denominator)."""
    dims = tuple(range(1, x.dim()))
    if weight is None:
        return x.mean(dims)
    return (x * weight).sum(dims) / weight.sum(dims).clamp_min(1.0)


def _summed(per_window: torch.Tensor, name: str) -> tuple[torch.Tensor, Terms]:
    """(B,) per-window energies -> their sum, and the mean over windows as ``name``."""
    return per_window.sum(), {name: float(per_window.detach().mean())}


def gmof(sq_dist: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robust penalty of squared distances (metres^2), as SMPLify/HuMoR use."""
    s2 = sigma * sigma
    return s2 * sq_dist / (sq_dist + s2)


def observation(joints: torch.Tensor, observed: torch.Tensor, visible: torch.Tensor, sigma: float = 0.1,
                weight: torch.Tensor | None = None) -> tuple[torch.Tensor, Terms]:
    """Robust distance to the observed joints, over visible joints only (occluded ones never count);
    ``weight`` (B, T, 22): each visible joint's share (its confidence; pins more), the mean taken over the
    visible joint-frames."""
    obs = torch.where(visible[..., None], observed, joints.detach())  # occluded values never enter
    sq = ((joints - obs) ** 2).sum(-1)
    mask = visible.float()
    return _summed(_window_means(gmof(sq, sigma) * (mask if weight is None else weight * mask), mask), "obs")


def guess(joints: torch.Tensor, guessed_joints: torch.Tensor, guessed: torch.Tensor, sigma: float = 1.0
          ) -> tuple[torch.Tensor, Terms]:
    """The pull of hidden joints towards the first guess (the completion network's): the observation term
    over the ``guessed`` (B, T, 22) joints, Geman-McClure scale ``sigma`` metres."""
    e, terms = observation(joints, guessed_joints, guessed, sigma)
    return e, {"guess": terms["obs"]}


def window_agreement(joints: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
                     fixed: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, Terms]:
    """Mean squared distance (m^2) between the joints two overlapping windows give the same clip frame.

    pairs: (a, b, mask) from ``windows.overlap_pairs``: flat (window * L + frame) indices into joints
    (B, L, 22, 3) and a (P, 22) bool mask of the joints compared; each pair counts for the window of ``a``.
    fixed: (targets (B, L, 22, 3), mask (B, L, 22) bool): joints of neighbouring windows optimised earlier (not in
    this batch), which the frames they share are pulled to."""
    b_, length = joints.shape[:2]
    total = joints.new_zeros(b_)
    count = joints.new_zeros(b_)
    if pairs is not None:
        flat = joints.reshape(-1, *joints.shape[2:])
        a, b, m = pairs
        m = m.to(flat)
        window = (a // length).to(flat.device)
        total = total.index_add(0, window, (((flat[a] - flat[b]) ** 2).sum(-1) * m).sum(-1))
        count = count.index_add(0, window, m.sum(-1))
    if fixed is not None:
        targets, m = fixed
        m = m.to(joints)
        total = total + (((joints - targets) ** 2).sum(-1) * m).sum((1, 2))
        count = count + m.sum((1, 2))
    return _summed(total / count.clamp_min(1.0), "overlap")


def prior_nll(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """HuMoR's learned conditional prior: -log N(z; mu, diag exp(logvar)) per latent, constants dropped.
    z, mu, logvar: (B, T, Z)."""
    return _summed(_window_means(0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar).sum(-1)), "prior_nll")


def sds(z: torch.Tensor, z_target: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Terms]:
    """Score-distillation term sum ||z - sg(z_hat)||^2 per latent. z, z_target: (B, T, Z); mask (B, T)."""
    sq = ((z - z_target.detach()) ** 2).sum(-1)
    return _summed(_window_means(sq, None if mask is None else mask.float()), "sds")


def skeleton_consistency(regressed: torch.Tensor, fk: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Regressed joints (the state's J part) vs FK of the state's rotations: mean squared distance."""
    return _summed(_window_means(((regressed - fk) ** 2).sum(-1)), "consistency")


def bone_length(joints: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Squared deviation of each bone's length from the skeleton's. rest_joints: (B, 22, 3) or (22, 3)."""
    p = [b[0] for b in BONES]
    c = [b[1] for b in BONES]
    length = (joints[..., c, :] - joints[..., p, :]).norm(dim=-1)  # (B, T, 21)
    ref = (rest_joints[..., c, :] - rest_joints[..., p, :]).norm(dim=-1)
    if ref.dim() == 2:
        ref = ref[:, None]
    return _summed(_window_means((length - ref) ** 2), "bone_length")


def heights(points: torch.Tensor, ground: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(B, T, K, 3) points -> (B, T, K) heights above the ground plane."""
    normal, offset = ground
    return (points * normal[:, None, None, :]).sum(-1) - offset[:, None, None]


def contact_velocity(joints: torch.Tensor, contacts: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Joints in contact do not slide: sum c_t * ||J_{t+1} - J_t||^2 over the 9 contact joints (m^2/frame^2)."""
    j = joints[..., list(CONTACT_JOINTS), :]
    vel = ((j[:, 1:] - j[:, :-1]) ** 2).sum(-1)  # (B, T-1, 9)
    w = contacts[:, 1:] if contacts.shape[1] == joints.shape[1] else contacts
    return _summed((w * vel).sum((1, 2)) / w.sum((1, 2)).clamp_min(1.0), "contact_vel")


def contact_height(joints: torch.Tensor, contacts: torch.Tensor, ground) -> tuple[torch.Tensor, Terms]:
    """Joints in contact touch the ground: sum c_t * relu(height - threshold)^2 over the contact
    joints, with the label rule's thresholds (0.04 m toes, 0.08 m others), so labels hold at 0."""
    h = heights(joints[..., list(CONTACT_JOINTS), :], ground)
    above = torch.relu(h - h.new_tensor(CONTACT_HEIGHT_M))
    return _summed((contacts * above**2).sum((1, 2)) / contacts.sum((1, 2)).clamp_min(1.0), "contact_height")


def penetration(joints: torch.Tensor, ground, margin: float = 0.0) -> tuple[torch.Tensor, Terms]:
    """No joint below the ground: mean relu(margin - height)^2 over all joints and frames."""
    h = heights(joints, ground)
    return _summed(_window_means(torch.relu(margin - h) ** 2), "penetration")


def smoothness(joints: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Mean squared joint acceleration ||J_{t+1} - 2 J_t + J_{t-1}||^2 (m^2/frame^4)."""
    if joints.shape[1] < 3:
        z = joints.sum() * 0.0
        return z, {"smooth": 0.0}
    acc = joints[:, 2:] - 2 * joints[:, 1:-1] + joints[:, :-2]
    return _summed(_window_means((acc**2).sum(-1)), "smooth")
