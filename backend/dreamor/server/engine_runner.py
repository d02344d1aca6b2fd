"""The refinement engine as the server's job runner (``jobs.Runner``): a submitted job in, a JobOutput out."""
from __future__ import annotations

from ..data.clip import Clip
from ..refine.api import Refined, load_models, refine
from ..refine.config import refine_preset
from ..refine.optimize import RefineCancelled
from ..refine.reuse import WindowCache
from .jobs import JobCancelled, JobOutput


def load_runner(device: str = "cpu"):
    """The backend's job runner (``server.jobs.Runner``): models load once, here.

    Raises DreamorError when the checkpoints are missing, so `dreamor serve` says so in one line.
    Optimised windows are kept between jobs (``refine.reuse``): a re-refine after one more pin
    optimises only the windows the pin changes.
    """
    models = load_models(device=device)
    cache = WindowCache()

    def to_output(r: Refined) -> JobOutput:
        metrics: dict = {k: float(v) for k, v in {**r.energies, **r.timings, **r.quality}.items()}
        if r.warnings:
            metrics["warning"] = " ".join(r.warnings)
        return JobOutput(trans=r.trans, root_orient=r.root_orient, pose_body=r.pose_body, joints=r.joints,
                         contacts=r.contacts, metrics=metrics)

    def run(job, sink, should_stop) -> JobOutput:
        cfg = refine_preset(job.options.get("preset", "default"), device=device, noisy=bool(job.options.get("noisy", False)),
                            lock_feet=bool(job.options.get("lock_feet", False)),
                            keep_visible=bool(job.options.get("keep_visible", True)))
        clip = Clip(trans=job.trans, root_orient=job.root_orient, pose_body=job.pose_body, fps=job.fps,
                    rest_joints=job.rest_joints, pinned=job.pinned, confidence=job.confidence)
        try:
            out = refine(clip, job.visible, cfg, progress=sink.progress, should_stop=should_stop, models=models, cache=cache,
                         partial=lambda start, r: sink.partial(start, to_output(r)))
        except RefineCancelled:
            raise JobCancelled() from None
        return to_output(out)

    run.info = {**models.ids, "device": device}
    return run
