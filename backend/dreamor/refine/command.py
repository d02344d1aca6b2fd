"""`dreamor refine IN OUT.npz`: refine a clip from the command line, with a progress bar."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.clip import save_clip
from ..data.convert import read_motion
from ..errors import DreamorError
from ..skeleton import NUM_JOINTS, parse_joints
from .config import refine_preset


def parse_frames(spec: str | None, num_frames: int) -> slice:
    """'A:B' (Python-style, in the input's frames; either end optional) -> slice; errors name the problem."""
    if not spec:
        return slice(0, num_frames)
    try:
        a, b = spec.split(":")
        start = int(a) if a else 0
        end = int(b) if b else num_frames
    except ValueError:
        raise DreamorError(f"--frames '{spec}': expected START:END, e.g. 30:90") from None
    if not 0 <= start < end <= num_frames:
        raise DreamorError(f"--frames '{spec}' is outside the clip's {num_frames} frames")
    return slice(start, end)


def visibility(clip, occlude: str | None, frames: str | None) -> np.ndarray:
    """The (T, 22) mask: --occlude over --frames, else the clip's own ``visible``, else all visible."""
    t = clip.num_frames
    if occlude is None:
        if frames:
            raise DreamorError("--frames needs --occlude (which joints to mark occluded)")
        return clip.visible if clip.visible is not None else np.ones((t, NUM_JOINTS), bool)
    try:
        joints = parse_joints(occlude)
    except ValueError as exc:
        raise DreamorError(str(exc)) from None
    vis = np.ones((t, NUM_JOINTS), bool) if clip.visible is None else clip.visible.copy()
    vis[parse_frames(frames, t), list(joints)] = False
    return vis


def run_refine(args) -> int:
    src, out = Path(args.input), Path(args.output)
    if out.suffix.lower() != ".npz":
        raise DreamorError(f"{out}: the output must be a clip .npz")
    if not src.exists():
        raise DreamorError(f"{src}: no such file")
    try:
        cfg = refine_preset(args.preset, args.set or (), method=args.method, device=args.device, noisy=args.noisy, lock_feet=args.lock_feet,
                            **({"denoise_steps": args.denoise_steps} if args.denoise_steps else {}))
    except ValueError as exc:
        raise DreamorError(str(exc)) from None
    from .api import load_models, refine

    clip = read_motion(src, fps=None)
    vis = visibility(clip, args.occlude, args.frames)
    models = load_models(args.vae, args.diffusion, device=args.device)
    bar = tqdm(total=100, desc=f"refine ({cfg.preset}, {cfg.method})", unit="%", disable=args.quiet, file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]")

    def progress(stage, fraction, energies):
        bar.n = 100 * fraction
        bar.set_postfix_str(f"E={energies.get('total', float('nan')):.3g}", refresh=True)

    try:
        result = refine(clip, vis, cfg, progress=progress, models=models)
    finally:
        bar.close()
    save_clip(replace(result.to_clip(clip), visible=vis), out)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {out} ({clip.num_frames} frames at {clip.fps:g} fps, {(~vis).mean():.0%} of joint-frames "
              f"occluded, {result.timings['total_s']:.1f} s)")
    return 0
