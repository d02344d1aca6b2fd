"""The networks the MotionVAE is made of: the residual MLP of every part, and the HuMoR-style Gaussian
conditional prior p(z_t | x_{t-1}).

DREAMoR trains the MotionVAE against N(0, I) and leaves the conditional prior over z_t to
its diffusion model. For the HuMoR-style baseline (`vae_only` refinement), a small
Gaussian network p(z_t | x_{t-1}) = N(mu(x_{t-1}), diag exp(logvar(x_{t-1}))) is fitted
*after* the VAE, to the frozen encoder's posteriors, by minimising KL(q || p) (see
``train.train_vae.fit_prior``). It lives inside ``MotionVAE.prior`` and ships in the same
checkpoint (under ``'prior'``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """h + W2 gelu(W1 [LayerNorm(h), cond]): a pre-norm residual block, optionally conditioned."""

    def __init__(self, dim: int, cond_dim: int = 0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim + cond_dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        u = self.norm(h)
        if cond is not None:
            u = torch.cat([u, cond], dim=-1)
        return h + self.fc2(F.gelu(self.fc1(u)))


class ResMLP(nn.Module):
    """(..., d_in) -> (..., d_out): Linear, ``blocks`` ResBlocks of width ``hidden``, LayerNorm, GELU, Linear.

    With ``cond_dim`` > 0 every block also sees ``cond`` (..., cond_dim) (HuMoR feeds z to
    every decoder layer this way, which keeps the decoder from ignoring z).
    """

    def __init__(self, d_in: int, hidden: int, d_out: int, blocks: int, cond_dim: int = 0):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.blocks = nn.ModuleList(ResBlock(hidden, cond_dim) for _ in range(blocks))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(F.gelu(self.norm(h)))


class ConditionalPrior(nn.Module):
    """p(z_t | x_{t-1}): normalised canonical previous state (..., 273) -> (mu, logvar), each (..., Z).

    Initialised to N(0, I) (zero output layer), so an unfitted prior is the standard normal.
    """

    def __init__(self, state_dim: int, latent_dim: int, hidden: int, blocks: int,
                 logvar_min: float = -10.0, logvar_max: float = 4.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.logvar_range = (logvar_min, logvar_max)
        self.net = ResMLP(state_dim, hidden, 2 * latent_dim, blocks)
        nn.init.zeros_(self.net.out.weight)
        nn.init.zeros_(self.net.out.bias)

    def forward(self, prev_normed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(prev_normed).chunk(2, dim=-1)
        return mu, logvar.clamp(*self.logvar_range)
