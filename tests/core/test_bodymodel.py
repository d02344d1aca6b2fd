import os

import numpy as np
import pytest
import torch

from dreamor.body.skeleton import SMPL_NEUTRAL_REST_JOINTS
from dreamor.body.smpl import SkeletonBody, SMPLBody, find_model_path, make_body
from dreamor.errors import DreamorError


def test_skeleton_only_is_the_default(monkeypatch):
    monkeypatch.delenv("DREAMOR_SMPL_DIR", raising=False)
    rest = torch.tensor(SMPL_NEUTRAL_REST_JOINTS)
    body = make_body(rest)
    assert isinstance(body, SkeletonBody) and not body.has_mesh
    out = body(torch.zeros(4, 3, dtype=torch.float64), torch.zeros(4, 63, dtype=torch.float64),
               torch.ones(4, 3, dtype=torch.float64))
    assert out.vertices is None
    assert torch.allclose(out.joints, rest + 1.0)


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(DreamorError, match="does not exist"):
        find_model_path(tmp_path / "nope")


SMPL_DIR = os.environ.get("DREAMOR_SMPL_DIR")


@pytest.mark.smpl
@pytest.mark.skipif(not SMPL_DIR, reason="no SMPL model files (set DREAMOR_SMPL_DIR to run)")
def test_smpl_model_joints_match_the_neutral_rest_joints():
    body = SMPLBody(SMPL_DIR)
    rest = body.rest_joints().detach().numpy()
    assert np.allclose(rest, SMPL_NEUTRAL_REST_JOINTS, atol=2e-3)
    out = body(torch.zeros(2, 3), torch.zeros(2, 63), torch.zeros(2, 3))
    assert out.vertices.shape[0] == 2 and out.vertices.shape[-1] == 3
