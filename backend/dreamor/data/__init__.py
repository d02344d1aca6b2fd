"""Motion data: BVH reading, retargeting to SMPL-22, clip files, training datasets."""
