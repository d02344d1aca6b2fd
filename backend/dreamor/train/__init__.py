"""Training loops (`dreamor train ...`). ``train_vae``: the MotionVAE and its Gaussian prior."""
