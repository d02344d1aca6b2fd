"""The refinement engine as the server's job runner (``jobs.Runner``): a submitted job in, a JobOutput out."""
from __future__ import annotations

from ..data.clip import Clip
from ..refine.api import Refined, load_models, refine
from ..refine.config import refine_preset
from ..refine.optimize import RefineCancelled
from ..refine.reuse import WindowCache
from .jobs import JobCancelled, JobOutput

#: a hidden stretch is reported as doubtful where its joints may be this far off (metres).
DOUBT_REPORT_M = 0.10


def doubt_metrics(r: Refined) -> dict:
    """The result's doubt in numbers for the report: mean over hidden joint-frames (cm), the largest (cm), and the
    doubtful stretch (first and last frame where some joint may be more than DOUBT_REPORT_M off; -1 when none)."""
    if r.uncertainty is None:
        return {}
    u = r.uncertainty
    hidden = u > 0
    frames = (u > DOUBT_REPORT_M).any(1).nonzero()[0]
    return {"doubt_mean_cm": float(u[hidden].mean() * 100) if hidden.any() else 0.0,
            "doubt_max_cm": float(u.max() * 100) if u.size else 0.0,
            "doubt_from": int(frames[0]) if len(frames) else -1, "doubt_to": int(frames[-1]) if len(frames) else -1,
            "samples": float(1 + len(r.alternatives)),
            "alternative_heads": float(r.kind_counts().get("head", 0))}


def load_runner(device: str = "cpu"):
    """The backend's job runner (``server.jobs.Runner``): models load once, here.

    Raises DreamorError when the checkpoints are missing, so `dreamor serve` says so in one line.
    Optimised windows are kept between jobs (``refine.reuse``): a re-refine after one more pin
    optimises only the windows the pin changes.
    """
    models = load_models(device=device)
    cache = WindowCache()

    def to_output(r: Refined, final: bool = False) -> JobOutput:
        metrics: dict = {k: float(v) for k, v in {**r.energies, **r.timings, **r.quality}.items()}
        if r.warnings:
            metrics["warning"] = " ".join(r.warnings)
        extra = {}
        if final:  # the doubt, and the completions when more than one was asked for
            extra = {k: v for k, v in r.sample_arrays().items() if k == "uncertainty" or r.alternatives}
            metrics.update(doubt_metrics(r))
        return JobOutput(trans=r.trans, root_orient=r.root_orient, pose_body=r.pose_body, joints=r.joints,
                         contacts=r.contacts, metrics=metrics, extra=extra)

    def run(job, sink, should_stop) -> JobOutput:
        cfg = refine_preset(job.options.get("preset", "default"), device=device, noisy=bool(job.options.get("noisy", False)),
                            lock_feet=bool(job.options.get("lock_feet", False)),
                            keep_visible=bool(job.options.get("keep_visible", True)),
                            samples=int(job.options.get("samples", 1)))
        clip = Clip(trans=job.trans, root_orient=job.root_orient, pose_body=job.pose_body, fps=job.fps,
                    rest_joints=job.rest_joints, pinned=job.pinned, confidence=job.confidence)
        try:
            out = refine(clip, job.visible, cfg, progress=sink.progress, should_stop=should_stop, models=models, cache=cache,
                         partial=lambda start, r: sink.partial(start, to_output(r)))
        except RefineCancelled:
            raise JobCancelled() from None
        return to_output(out, final=True)

    run.info = {**models.ids, "device": device}
    return run
