"""Energy terms of DREAMoR's test-time optimisation, as small functions.

Each returns ``(scalar, terms)`` where ``terms`` maps names to detached floats for
progress reports; the optimiser weights and sums them from a config and knows nothing of
their insides. Shapes: joints (B, T, 22, 3) metres, Z-up world; visible (B, T, 22) bool;
contacts (B, T, 9) probabilities in [0, 1]; ground = (normal (B, 3) unit, offset (B,)) so a
point's height is ``normal . p - offset``.
"""
from __future__ import annotations

import torch

from ..body.skeleton import BONES, CONTACT_HEIGHT_M, CONTACT_JOINTS

Terms = dict[str, float]


def _mean(x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    if weight is None:
        return x.mean()
    return (x * weight).sum() / weight.sum().clamp_min(1.0)


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
    e = _mean(gmof(sq, sigma) * (mask if weight is None else weight * mask), mask)
    return e, {"obs": float(e.detach())}


def guess(joints: torch.Tensor, guessed_joints: torch.Tensor, guessed: torch.Tensor, sigma: float = 1.0
          ) -> tuple[torch.Tensor, Terms]:
    """The pull of hidden joints towards the first guess (the completion network's): the observation term
    over the ``guessed`` (B, T, 22) joints, Geman-McClure scale ``sigma`` metres."""
    e, _ = observation(joints, guessed_joints, guessed, sigma)
    return e, {"guess": float(e.detach())}


def window_agreement(joints: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
                     ) -> tuple[torch.Tensor, Terms]:
    """Mean squared distance (m^2) between the joints two overlapping windows give the same clip frame.

    pairs: (a, b, mask) from ``windows.overlap_pairs``: flat (window * L + frame) indices into joints
    (B, L, 22, 3) and a (P, 22) bool mask of the joints compared."""
    flat = joints.reshape(-1, *joints.shape[2:])
    a, b, m = pairs
    m = m.to(flat.device)
    e = (((flat[a] - flat[b]) ** 2).sum(-1) * m).sum() / m.sum().clamp_min(1)
    return e, {"overlap": float(e.detach())}


def prior_nll(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """HuMoR's learned conditional prior: -log N(z; mu, diag exp(logvar)) per latent, constants dropped.
    z, mu, logvar: (B, T, Z)."""
    nll = 0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar).sum(-1).mean()
    return nll, {"prior_nll": float(nll.detach())}


def sds(z: torch.Tensor, z_target: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Terms]:
    """Score-distillation term sum ||z - sg(z_hat)||^2 per latent. z, z_target: (B, T, Z); mask (B, T)."""
    sq = ((z - z_target.detach()) ** 2).sum(-1)
    e = _mean(sq, None if mask is None else mask.float())
    return e, {"sds": float(e.detach())}


def skeleton_consistency(regressed: torch.Tensor, fk: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Regressed joints (the state's J part) vs FK of the state's rotations: mean squared distance."""
    e = ((regressed - fk) ** 2).sum(-1).mean()
    return e, {"consistency": float(e.detach())}


def bone_length(joints: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Squared deviation of each bone's length from the skeleton's. rest_joints: (B, 22, 3) or (22, 3)."""
    p = [b[0] for b in BONES]
    c = [b[1] for b in BONES]
    length = (joints[..., c, :] - joints[..., p, :]).norm(dim=-1)  # (B, T, 21)
    ref = (rest_joints[..., c, :] - rest_joints[..., p, :]).norm(dim=-1)
    if ref.dim() == 2:
        ref = ref[:, None]
    e = ((length - ref) ** 2).mean()
    return e, {"bone_length": float(e.detach())}


def heights(points: torch.Tensor, ground: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(B, T, K, 3) points -> (B, T, K) heights above the ground plane."""
    normal, offset = ground
    return (points * normal[:, None, None, :]).sum(-1) - offset[:, None, None]


def contact_velocity(joints: torch.Tensor, contacts: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Joints in contact do not slide: sum c_t * ||J_{t+1} - J_t||^2 over the 9 contact joints (m^2/frame^2)."""
    j = joints[..., list(CONTACT_JOINTS), :]
    vel = ((j[:, 1:] - j[:, :-1]) ** 2).sum(-1)  # (B, T-1, 9)
    w = contacts[:, 1:] if contacts.shape[1] == joints.shape[1] else contacts
    e = (w * vel).sum() / w.sum().clamp_min(1.0)
    return e, {"contact_vel": float(e.detach())}


def contact_height(joints: torch.Tensor, contacts: torch.Tensor, ground) -> tuple[torch.Tensor, Terms]:
    """Joints in contact touch the ground: sum c_t * relu(height - threshold)^2 over the contact
    joints, with the label rule's thresholds (0.04 m toes, 0.08 m others), so labels hold at 0."""
    h = heights(joints[..., list(CONTACT_JOINTS), :], ground)
    above = torch.relu(h - h.new_tensor(CONTACT_HEIGHT_M))
    e = (contacts * above**2).sum() / contacts.sum().clamp_min(1.0)
    return e, {"contact_height": float(e.detach())}


def penetration(joints: torch.Tensor, ground, margin: float = 0.0) -> tuple[torch.Tensor, Terms]:
    """No joint below the ground: mean relu(margin - height)^2 over all joints and frames."""
    h = heights(joints, ground)
    e = (torch.relu(margin - h) ** 2).mean()
    return e, {"penetration": float(e.detach())}


def smoothness(joints: torch.Tensor) -> tuple[torch.Tensor, Terms]:
    """Mean squared joint acceleration ||J_{t+1} - 2 J_t + J_{t-1}||^2 (m^2/frame^4)."""
    if joints.shape[1] < 3:
        z = joints.sum() * 0.0
        return z, {"smooth": 0.0}
    acc = joints[:, 2:] - 2 * joints[:, 1:-1] + joints[:, :-2]
    e = (acc**2).sum(-1).mean()
    return e, {"smooth": float(e.detach())}
