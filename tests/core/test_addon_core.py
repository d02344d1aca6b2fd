"""The add-on's bpy-free core, imported from the built zip in plain Python (no Blender in the process)."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ("conventions", "rotmath", "clipfile", "posemath", "dreamor_body.skeleton", "dreamor_wire.protocol")

#: Run in a fresh interpreter: the core imports without bpy, and pose -> clip -> pose round-trips through
#: a rig built in Blender's Z-up world (armature space = world, rest bones unrotated), posed by Blender's
#: own rule P_j = P_parent B_parent^-1 B_j M_j (M_j the bone's matrix_basis).
ROUND_TRIP = """
import sys
from types import SimpleNamespace
import numpy as np
import dreamor_addon
from dreamor_addon import conventions as C, posemath as P, rotmath as R
assert "bpy" not in sys.modules, "the add-on's core imported bpy"

heads = C.SMPL_NEUTRAL_REST_JOINTS @ C.BLENDER_TO_NATIVE  # native -> Blender Z-up, metres
rest = np.tile(np.eye(4), (22, 1, 1)); rest[:, :3, 3] = heads
rig = SimpleNamespace(name="A", rest=rest, axes=C.canonical_axes(heads), metres_per_unit=1.0)
rng = np.random.default_rng(0)
t = 5
local = R.aa_to_mat(rng.normal(scale=0.4, size=(t, 22, 3)))
trans = rng.normal(scale=0.3, size=(t, 3))
world = np.eye(4); world[:3, :3] *= 2.0; world[:3, 3] = [1.0, -2.0, 0.5]  # object scale 2 and moved
basis, location = P.clip_to_basis(rig, trans, local, world)
poses = np.empty((t, 22, 4, 4))
for f in range(t):
    for j in range(22):
        m = np.eye(4); m[:3, :3] = basis[f, j]
        if j == 0:
            m[:3, 3] = location[f]
            poses[f, 0] = rest[0] @ m
        else:
            p = C.PARENTS[j]
            poses[f, j] = poses[f, p] @ np.linalg.inv(rest[p]) @ rest[j] @ m
back_trans, back_local, joints = P.pose_to_clip(rig, poses, np.tile(world, (t, 1, 1)))
np.testing.assert_allclose(back_local, local, atol=1e-6)
np.testing.assert_allclose(back_trans, trans, atol=1e-6)
np.testing.assert_allclose(joints[:, 0], P.rest_joints(rig, world)[0] + trans, atol=1e-6)
assert C.parse_joints("L_Knee", C.candidate_conventions(["Pelvis"])[0]) == (4,)
print("ok")
"""


@pytest.fixture(scope="module")
def extracted(build_addon, tmp_path_factory) -> Path:
    """The built zip (no wheels) unpacked as a package named ``dreamor_addon``; returns its parent folder."""
    out = tmp_path_factory.mktemp("addon")
    with zipfile.ZipFile(build_addon.build(out / "dist", with_wheels=False)) as zf:
        zf.extractall(out / "dreamor_addon")
    return out


#: Blender's modules cannot be imported in the child, even where bpy is installed (as in this venv).
NO_BLENDER = """
import sys
class NoBlender:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("bpy", "bpy_extras", "mathutils"):
            raise ImportError(f"no Blender here: {name}")
sys.meta_path.insert(0, NoBlender())
"""


def _python(code: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_BLENDER + code], cwd=path, capture_output=True, text=True,
                          timeout=120)


def test_core_imports_without_blender_and_round_trips(extracted):
    imports = "".join(f"import dreamor_addon.{m}\n" for m in CORE)
    result = _python(imports + ROUND_TRIP, extracted)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_the_bpy_layer_still_needs_blender(extracted):
    """The check above can fail: a bpy-layer module does import bpy (so it is not in CORE)."""
    result = _python("import dreamor_addon.armature_io", extracted)
    assert result.returncode != 0 and "no Blender here: bpy" in result.stderr
