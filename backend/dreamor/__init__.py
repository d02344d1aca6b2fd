"""DREAMoR: motion VAE + latent diffusion prior + test-time optimisation for mocap refinement."""

__version__ = "0.1.0"
