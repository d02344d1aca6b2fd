"""`dreamor refine IN OUT.npz`: refine a clip from the command line, with a progress bar."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..body.skeleton import NUM_JOINTS, parse_joints
from ..data.clip import save_clip
from ..errors import DreamorError
from ..files import check_writable
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
    if start >= end:
        raise DreamorError(f"--frames '{spec}': the end must come after the start (START:END, END not included)")
    if not 0 <= start < end <= num_frames:
        raise DreamorError(f"--frames '{spec}' is outside the clip's {num_frames} frames (0:{num_frames})")
    return slice(start, end)


#: the confidence `--noisy JOINTS` gives the joints it names (0 hidden, 1 trusted).
NOISY_CONFIDENCE = 0.5


def _joints(spec: str, option: str) -> list[int]:
    try:
        return list(parse_joints(spec))
    except ValueError as exc:
        raise DreamorError(f"{option}: {exc}") from None


def visibility(clip, occlude: str | None, frames: str | None, noisy_joints: str | None = None) -> np.ndarray:
    """The (T, 22) mask: --occlude over --frames, else the clip's own ``visible``, else all visible."""
    t = clip.num_frames
    if occlude is None:
        if frames and not noisy_joints:
            raise DreamorError("--frames needs --occlude or --noisy JOINTS (which joints to mark)")
        return clip.visible if clip.visible is not None else np.ones((t, NUM_JOINTS), bool)
    vis = np.ones((t, NUM_JOINTS), bool) if clip.visible is None else clip.visible.copy()
    vis[parse_frames(frames, t), _joints(occlude, "--occlude")] = False
    return vis


def confidence(clip, noisy_joints: str | None, frames: str | None) -> np.ndarray | None:
    """The (T, 22) confidence: the clip's own (or all 1) with --noisy JOINTS at NOISY_CONFIDENCE over --frames."""
    if not noisy_joints:
        return clip.confidence
    t = clip.num_frames
    conf = np.ones((t, NUM_JOINTS)) if clip.confidence is None else clip.confidence.copy()
    rows = parse_frames(frames, t)
    cols = _joints(noisy_joints, "--noisy")
    conf[rows, cols] = np.minimum(conf[rows, cols], NOISY_CONFIDENCE)
    return conf


#: the most completions one refine returns (the add-on's Alternatives go to 8).
MAX_SAMPLES = 16


#: how the summary names each kind of alternative (``Refined.kind``): (one, several)
KIND_WORDS = {"head": ("of the hypotheses network's likeliest",) * 2, "draw": ("window-prior draw", "window-prior draws"),
              "copy": ("copy of the answer", "copies of the answer")}


def doubt_summary(uncertainty: np.ndarray, visible: np.ndarray, fps: float, samples: int,
                  kinds: dict[str, int] | None = None) -> str:
    """One line: how sure the engine is of the hidden joints, and where it is least sure; ``kinds``: the
    alternatives' kinds (``Refined.kind_counts``), in order."""
    hidden = ~visible
    per_frame = np.where(hidden, uncertainty, 0).max(1)
    worst = int(np.argmax(per_frame))
    return (f"doubt: hidden joints may be {uncertainty[hidden].mean() * 100:.1f} cm off on average, up to "
            f"{per_frame[worst] * 100:.1f} cm at frame {worst} ({worst / fps:.1f} s); {samples} completion(s) in 'samples'"
            + (" (the answer first, then " + ", ".join(f"{n} {KIND_WORDS.get(k, (k, k))[n > 1]}" for k, n in kinds.items()) + ")"
               if kinds else ""))


def check_samples(n: int) -> None:
    """DreamorError unless 1 <= n <= MAX_SAMPLES."""
    if not 1 <= n <= MAX_SAMPLES:
        raise DreamorError(f"--samples {n}: choose 1 (the answer alone) to {MAX_SAMPLES} completions")


def run_refine(args) -> int:
    src, out = Path(args.input), Path(args.output)
    if out.suffix.lower() != ".npz":
        raise DreamorError(f"{out}: the output must be a clip .npz")
    if not src.exists():
        raise DreamorError(f"{src}: no such file")
    check_writable(out)
    try:
        check_samples(args.samples)
        cfg = refine_preset(args.preset, args.set or (), method=args.method, device=args.device, samples=args.samples,
                            noisy=args.noisy == "all", lock_feet=args.lock_feet,
                            **({"denoise_steps": args.denoise_steps} if args.denoise_steps is not None else {}))
    except ValueError as exc:
        raise DreamorError(str(exc)) from None
    joint_marks = None if args.noisy in (None, "all") else args.noisy
    for spec, option in ((args.occlude, "--occlude"), (joint_marks, "--noisy")):
        if spec:
            _joints(spec, option)  # a bad joint name is told before the clip loads
    from ..data.convert import read_motion  # torch loads here: the checks above answer at once
    from ..threads import use_threads
    from .api import load_models, refine

    use_threads(args.threads)
    notes: list[str] = []
    clip = read_motion(src, fps=None, notes=notes)
    if not args.quiet:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    vis = visibility(clip, args.occlude, args.frames, joint_marks)
    clip = replace(clip, confidence=confidence(clip, joint_marks, args.frames))
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
    save_clip(replace(result.to_clip(clip), visible=vis, pinned=clip.pinned, confidence=clip.confidence), out,
              extra=result.sample_arrays())
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {out} ({clip.num_frames} frames at {clip.fps:g} fps, {(~vis).mean():.0%} of joint-frames "
              f"occluded, {result.timings['total_s']:.1f} s)")
        if result.uncertainty is not None and (~vis).any():
            print(doubt_summary(result.uncertainty, vis, clip.fps, 1 + len(result.alternatives), result.kind_counts()))
    return 0
