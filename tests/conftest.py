"""Shared test fixtures: paths to the bundled real mocap (tests/data/mocap), scripts/build_addon.py, tiny models."""
import importlib.util
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "mocap"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="session")
def build_addon():
    """The module scripts/build_addon.py (it builds the add-on zip and lists the files it copies in)."""
    spec = importlib.util.spec_from_file_location("build_addon", SCRIPTS / "build_addon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def mocap_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """A folder with tiny, untrained `vae-small.pt` and `diffusion-small.pt` (for plumbing tests).

    The decoder's output layer is randomised so the latents move the motion (it starts at zero).
    """
    import torch

    from dreamor.models.configs import PRESETS
    from dreamor.models.diffusion import DiffusionConfig, LatentDiffusion, save_diffusion
    from dreamor.models.vae import MotionVAE, save_vae

    d = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    cfg = PRESETS["tiny"]
    vae = MotionVAE(cfg.model)
    torch.nn.init.normal_(vae.decoder.out.weight, std=1e-2)
    save_vae(d / "vae-small.pt", vae, cfg, step=0, prior_fitted=True)
    dif = LatentDiffusion(DiffusionConfig(latent_dim=cfg.model.latent_dim, d_model=32, n_layers=1, n_heads=2))
    save_diffusion(d / "diffusion-small.pt", dif)
    return d
