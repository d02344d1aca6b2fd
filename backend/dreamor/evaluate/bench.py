"""`dreamor bench`: speed and peak memory of the refinement methods on clips of several lengths.

Every (method, preset, length) runs in a fresh spawned process, so its peak resident memory
(``ru_maxrss``) is its own; the time is the ``refine`` call alone (models loaded before).
Ratios are to ``vae_only`` with the same preset at the same length, measured in the same run.
Clips are a real take (default: the bundled sample) played forwards and backwards until long
enough, with the lower body occluded for the whole clip.
"""
from __future__ import annotations

import json
import multiprocessing
import platform
import resource
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import DreamorError

DEFAULT_LENGTHS = (100, 300, 1000, 3600)


def _long_clip(path: str | None, frames: int):
    from dataclasses import replace

    from ..data.convert import read_motion, with_joints_and_contacts

    if path is None:
        with resources.as_file(resources.files("dreamor").joinpath(
                "assets/samples/dataset-2_walk-turn-left_normal_001.bvh")) as p:
            clip = read_motion(p)
    else:
        clip = read_motion(path)
    idx = np.arange(clip.num_frames)
    order = np.concatenate([idx, idx[::-1][1:-1]])
    take = np.resize(order, frames)
    clip = replace(clip, trans=clip.trans[take], root_orient=clip.root_orient[take], pose_body=clip.pose_body[take],
                   joints=None, contacts=None, visible=None, name=f"{clip.name}x{frames}")
    return with_joints_and_contacts(clip)


def _one(job: dict) -> dict:
    """Runs in a child process: one timed refine."""
    import torch

    from .baselines import METHODS, MethodConfig
    from .occlusion import occlude

    torch.set_num_threads(job["threads"])
    obs = occlude(_long_clip(job["clip"], job["frames"]), "lower_body")
    method = METHODS[job["method"]]
    cfg = MethodConfig(preset=job["preset"], device=job["device"])
    if job["method"] in ("vae_only", "no_opt", "dreamor"):
        from .baselines import _models

        _models(job["device"])  # load before timing
    t0 = time.perf_counter()
    method.run(obs, cfg)
    seconds = time.perf_counter() - t0
    return {**job, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_bench(out: str, lengths=DEFAULT_LENGTHS, presets=("fast", "default"), methods=("vae_only", "dreamor", "no_opt", "input"),
              clip: str | None = None, device: str = "cpu", threads: int | None = None, quiet: bool = False) -> int:
    """Time each method x preset x length in its own child process; ``threads`` None: ``threads.default_threads``."""
    from ..threads import default_threads
    from .baselines import get_methods

    threads = threads or default_threads()
    get_methods(list(methods))  # unknown/unavailable -> one clear error before any work
    jobs = []
    for n in lengths:
        for m in methods:
            for p in (presets if m in ("vae_only", "dreamor") else presets[:1]):
                jobs.append({"method": m, "preset": p, "frames": int(n), "clip": clip, "device": device, "threads": threads})
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for job in tqdm(jobs, desc="bench", unit="run", disable=quiet, file=sys.stderr):
        with ctx.Pool(1) as pool:
            rows.append(pool.apply(_one, (job,)))
    for r in rows:
        base = next((b for b in rows if b["method"] == "vae_only" and b["frames"] == r["frames"]
                     and b["preset"] == r["preset"]), None)
        r["ratio_to_vae_only"] = r["seconds"] / base["seconds"] if base else None
    import torch

    dev = device if device == "cpu" else torch.cuda.get_device_name(0)
    report = {"device": f"{dev} ({platform.processor() or platform.machine()}, {threads} threads)",
              "command": " ".join(["dreamor", "bench", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"] else "",
              "rows": rows}
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    (outp / "bench.json").write_text(json.dumps(report, indent=2))
    lines = ["# Refinement speed and memory", "", f"Device: {report['device']}. Command: `{report['command']}`", "",
             "Clip: a real take played forwards and backwards to length, lower body occluded throughout. Time is the",
             "refine call only (models loaded before); peak RSS is the whole process (torch and models included).", "",
             "| frames | method | preset | seconds | x vae_only | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "" if r["ratio_to_vae_only"] is None else f"{r['ratio_to_vae_only']:.2f}"
        lines.append(f"| {r['frames']} | {r['method']} | {r['preset'] if r['method'] in ('vae_only', 'dreamor') else ''} "
                     f"| {r['seconds']:.2f} | {ratio} | {r['peak_rss_mb']:.0f} |")
    (outp / "bench.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))
    return 0


def run_bench_cli(args) -> int:
    try:
        lengths = tuple(int(x) for x in args.lengths.split(","))
    except ValueError:
        raise DreamorError(f"--lengths '{args.lengths}': expected comma-separated frame counts") from None
    return run_bench(args.out, lengths, tuple(args.presets.split(",")), tuple(args.methods.split(",")),
                     args.clip, args.device, args.threads, args.quiet)
