"""MotionVAE losses (DREAMoR section 3.2, after HuMoR), each ``name(...) -> (scalar, terms)``
or a plain tensor function; ``vae_loss`` sums the weighted terms of a LossConfig.

L = w_rec L_rec + w_kl(step) L_KL + w_joint L_joint + w_vtx L_vtx + w_consist L_consist
    + w_contact L_contact + w_cvel L_vel

- L_rec: ||x^_t - x_t||^2 per state dim, each dim in units of its one-frame std (the
  decoder's output scale), averaged over dims; computed in the canonical frames.
- L_KL: KL(q(z_t | x_t, x_{t-1}) || N(0, I)), nats summed over z, averaged over transitions.
- L_joint: FK of the predicted rotations and translation on the clip's skeleton
  (``skeleton.forward_kinematics`` with its rest joints) vs ground-truth joints, cm^2 per coordinate.
- L_vtx: the same for mesh vertices, when a body model is given (``vertices`` callable).
- L_consist: the regressed joints J^ of x^_t vs FK(x^_t), cm^2 per coordinate.
- L_contact: binary cross-entropy of the 9 contact logits vs the labels.
- L_vel: sum_j w_j ||v^_j||^2 over the contact joints' predicted (regressed) velocities in
  (cm / 30 Hz frame)^2, w = ground-truth labels or predicted probabilities (LossConfig).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..body.kinematics import forward_kinematics
from ..body.skeleton import CONTACT_JOINTS, NUM_JOINTS
from ..body.state import STATE_SLICES, state_rotmats
from .configs import LossConfig

#: vertices(local_rotmats (..., 22, 3, 3), trans (..., 3), rest_joints (..., 22, 3)) -> (..., V, 3) metres.
VertexFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_M_TO_CM = 100.0
_MPS_TO_CM_PER_FRAME = 100.0 / 30.0


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dim: (..., Z) -> (...)."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def kl_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the last dim: (..., Z) -> (...)."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).square()) / logvar_p.exp() - 1.0).sum(-1)


def fk_joints(x: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """States (B, T, 273) and rest joints (B, 22, 3) -> FK joints (B, T, 22, 3) from the rotations and trans."""
    rest = rest_joints[:, None] if rest_joints.dim() == 3 and x.dim() == 3 else rest_joints
    return forward_kinematics(state_rotmats(x), rest, x[..., STATE_SLICES["trans"]]).joints


def regressed_joints(x: torch.Tensor) -> torch.Tensor:
    """(..., 273) -> the state's joint positions (..., 22, 3)."""
    return x[..., STATE_SLICES["joints"]].reshape(*x.shape[:-1], NUM_JOINTS, 3)


def contact_velocity(pred: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of w_j ||v^_j||^2 over contact joints; pred (..., 273), weights (..., 9); (cm/frame)^2."""
    v = pred[..., STATE_SLICES["joints_vel"]].reshape(*pred.shape[:-1], NUM_JOINTS, 3)[..., list(CONTACT_JOINTS), :]
    return (weights * (v * _MPS_TO_CM_PER_FRAME).square().sum(-1)).mean()


def vae_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    contact_logits: torch.Tensor,
    contacts: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    rest_joints: torch.Tensor,
    rec_std: torch.Tensor,
    cfg: LossConfig,
    kl_weight: float,
    vertices: VertexFn | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The MotionVAE objective over transitions.

    pred, target: (B, T, 273) x^_t and ground-truth x_t, in matching canonical frames;
    contact_logits, contacts: (B, T, 9) logits and {0, 1} labels of x_t; mu, logvar: (B, T, Z);
    rest_joints: (B, 22, 3); rec_std: (273,) per-dim scale of L_rec; kl_weight: the
    annealed KL weight for this step (LossConfig.kl is its final value, not used here).
    Returns (total, terms) with every unweighted term and ``contact_acc`` (no gradient).
    """
    terms: dict[str, torch.Tensor] = {}
    terms["rec"] = ((pred - target) / rec_std).square().mean()
    terms["kl"] = kl_to_standard_normal(mu, logvar).mean()
    fk = fk_joints(pred, rest_joints)
    gt_joints = regressed_joints(target)
    terms["joint"] = ((fk - gt_joints) * _M_TO_CM).square().mean()
    terms["consist"] = ((regressed_joints(pred) - fk) * _M_TO_CM).square().mean()
    terms["contact"] = F.binary_cross_entropy_with_logits(contact_logits, contacts)
    if cfg.contact_vel_weighting == "label":
        w = contacts
    elif cfg.contact_vel_weighting == "predicted":
        w = torch.sigmoid(contact_logits)
    else:
        raise ValueError(f"contact_vel_weighting must be 'label' or 'predicted', not {cfg.contact_vel_weighting!r}")
    terms["contact_vel"] = contact_velocity(pred, w)
    total = (cfg.rec * terms["rec"] + kl_weight * terms["kl"] + cfg.joint * terms["joint"]
             + cfg.consist * terms["consist"] + cfg.contact * terms["contact"] + cfg.contact_vel * terms["contact_vel"])
    if vertices is not None and cfg.vertex > 0:
        rest = rest_joints[:, None].expand(*pred.shape[:-1], NUM_JOINTS, 3)
        trans = STATE_SLICES["trans"]
        v_pred = vertices(state_rotmats(pred), pred[..., trans], rest)
        with torch.no_grad():
            v_gt = vertices(state_rotmats(target), target[..., trans], rest)
        terms["vertex"] = ((v_pred - v_gt) * _M_TO_CM).square().mean()
        total = total + cfg.vertex * terms["vertex"]
    with torch.no_grad():
        terms["contact_acc"] = ((contact_logits > 0) == (contacts > 0.5)).float().mean()
    terms["total"] = total
    return total, terms
