"""Data-parallel training: `torchrun --nproc_per_node 2 -m dreamor.cli train vae` on CPU (gloo),
a few steps on tiny real mocap; the replicas stay identical and rank 0 writes one checkpoint."""
import os
import subprocess
import sys
import time

import torch

from dreamor.models.vae import load_vae, read_vae

from .test_vae import copy_takes


def test_torchrun_two_processes_gloo(tmp_path, mocap_dir):
    takes = copy_takes(mocap_dir, tmp_path / "takes")
    out = tmp_path / "vae.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dreamor.cli", "train", "vae", "--preset", "tiny", "--data", f"{takes}:2",
           "--out", str(out), "--cache", str(tmp_path / "cache"), "--steps", "4", "--workers", "1", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    took = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert took < 60, f"2-process training took {took:.0f} s"
    ckpt = read_vae(out)
    m = ckpt["metrics"]
    assert ckpt["step"] == 4 and ckpt["prior_fitted"]
    assert m["world_size"] == 2
    assert m["ddp_param_max_diff"] == 0.0  # every replica ended with rank 0's weights
    assert "one_step_joint_cm" in m["val"] and torch.isfinite(torch.tensor(m["val"]["one_step_joint_cm"]))
    assert not list(tmp_path.glob("*.tmp"))  # atomic saves left nothing behind
    vae = load_vae(out)
    assert vae.step == 4
