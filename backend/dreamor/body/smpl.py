"""The body: skeleton-only (default, always works) or a real SMPL-family model via ``smplx``.

Skeleton-only mode poses the clip's own rest joints with ``skeleton.forward_kinematics``.
With model files (``DREAMOR_SMPL_DIR`` or an explicit path: a folder as ``smplx.create``
expects, or a model file), joints come from the model's regressor for shape ``betas`` and
vertices are available. SMPL/SMPL-X files are licensed: never commit them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DreamorError
from .kinematics import forward_kinematics
from .rotations import aa_to_mat
from .skeleton import NUM_JOINTS

ENV_VAR = "DREAMOR_SMPL_DIR"


@dataclass
class BodyOutput:
    """joints: (..., 22, 3) m, world; vertices: (..., V, 3) m or None (skeleton-only)."""

    joints: torch.Tensor
    vertices: torch.Tensor | None = None


def find_model_path(path: str | os.PathLike | None = None) -> Path | None:
    """The model path from the argument or ``DREAMOR_SMPL_DIR``; None when neither is set."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return None
    p = Path(path).expanduser()
    if not p.exists():
        raise DreamorError(f"SMPL model path {p} does not exist (set {ENV_VAR} to a folder with SMPL/SMPL-H/SMPL-X files)")
    return p


class SkeletonBody:
    """Skeleton-only body: FK of the given rest joints (22, 3)."""

    has_mesh = False

    def __init__(self, rest_joints: torch.Tensor):
        self.rest_joints = rest_joints

    def __call__(self, root_orient: torch.Tensor, pose_body: torch.Tensor, trans: torch.Tensor,
                 betas: torch.Tensor | None = None) -> BodyOutput:
        """root_orient (..., 3), pose_body (..., 63) axis-angle, trans (..., 3) -> BodyOutput."""
        aa = torch.cat([root_orient[..., None, :], pose_body.reshape(*pose_body.shape[:-1], 21, 3)], dim=-2)
        return BodyOutput(forward_kinematics(aa_to_mat(aa), self.rest_joints, trans).joints)


class SMPLBody:
    """A real SMPL / SMPL-H / SMPL-X model through smplx (neutral gender unless told)."""

    has_mesh = True

    def __init__(self, model_path: str | os.PathLike, model_type: str = "smpl", gender: str = "neutral",
                 num_betas: int = 10, device: str | torch.device = "cpu"):
        import smplx

        try:
            self.model = smplx.create(str(model_path), model_type=model_type, gender=gender,
                                      num_betas=num_betas, batch_size=1).to(device)
        except (OSError, AssertionError, ValueError) as exc:
            raise DreamorError(f"cannot load the {model_type} model from {model_path}: {exc}") from None
        self.model_type = model_type
        self.num_betas = num_betas

    def __call__(self, root_orient: torch.Tensor, pose_body: torch.Tensor, trans: torch.Tensor,
                 betas: torch.Tensor | None = None) -> BodyOutput:
        lead = root_orient.shape[:-1]
        n = int(torch.tensor(lead).prod()) if lead else 1
        ro, pb, tr = root_orient.reshape(n, 3), pose_body.reshape(n, 63), trans.reshape(n, 3)
        if self.model_type == "smpl":  # SMPL's body_pose also holds the two hand joints
            pb = torch.cat([pb, pb.new_zeros(n, 6)], dim=-1)
        b = (betas if betas is not None else ro.new_zeros(self.num_betas)).reshape(-1, self.num_betas).expand(n, -1)
        out = self.model(global_orient=ro, body_pose=pb, transl=tr, betas=b, return_verts=True)
        joints = out.joints[:, :NUM_JOINTS].reshape(*lead, NUM_JOINTS, 3)
        return BodyOutput(joints, out.vertices.reshape(*lead, -1, 3))

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(22, 3) joints in the zero pose (SMPL native frame), for ``betas``."""
        zero = torch.zeros(1, 3)
        return self(zero, torch.zeros(1, 63), zero, betas).joints[0]


def make_body(rest_joints: torch.Tensor, model_path: str | os.PathLike | None = None, **kwargs):
    """SMPLBody when model files are configured, else SkeletonBody(rest_joints)."""
    path = find_model_path(model_path)
    return SMPLBody(path, **kwargs) if path else SkeletonBody(rest_joints)
