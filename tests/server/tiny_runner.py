"""A tiny, honest runner for the server tests: it smooths the clip over time.

The "refinement" is a [1, 2, 1] / 4 filter along time (ends replicated) on trans,
root_orient and pose_body; joints are rest_joints + trans (no rotations: this is a
test runner, not kinematics); contacts are 0.5 where a contact joint is visible.
With ``samples`` N > 1 it also returns N completions: the answer, then alternative k with every hidden
joint's axis-angle shifted by 0.1 k rad about x; its doubt is 0.1 m wherever a joint is hidden.
It sleeps ``step_s`` per window of ``window`` frames to stand in for work, reporting
progress and the finished window each time, and stops soon after ``should_stop()``.
"""
from __future__ import annotations

import time

import numpy as np

from dreamor.errors import DreamorError
from dreamor.server.jobs import JobCancelled, JobInput, JobOutput

CONTACT_JOINTS = (0, 4, 5, 7, 8, 10, 11, 20, 21)


def smooth(x: np.ndarray) -> np.ndarray:
    """(T, D) -> (T, D): [1, 2, 1] / 4 along time, ends replicated."""
    p = np.concatenate([x[:1], x, x[-1:]])
    return 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]


def alternative_pose(pose_body: np.ndarray, visible: np.ndarray, k: int) -> np.ndarray:
    """(T, 63) -> alternative k's pose_body: hidden joints' axis-angle + 0.1 k rad about x."""
    aa = pose_body.reshape(len(pose_body), 21, 3).copy()
    aa[..., 0] += np.where(~visible[:, 1:], 0.1 * k, 0.0)
    return aa.reshape(len(pose_body), 63)


def expected_output(job: JobInput) -> JobOutput:
    """What TinyRunner returns for ``job``, computed directly."""
    trans = smooth(job.trans)
    n = int(job.options.get("samples", 1))
    extra = {"uncertainty": np.where(job.visible, 0.0, 0.1)}
    if n > 1:
        pose = smooth(job.pose_body)
        extra.update(samples=np.repeat((job.rest_joints[None] + trans[:, None])[None], n, 0),
                     sample_trans=np.repeat(trans[None], n, 0), sample_root_orient=np.repeat(smooth(job.root_orient)[None], n, 0),
                     sample_pose_body=np.stack([alternative_pose(pose, job.visible, k) for k in range(n)]),
                     sample_contacts=np.repeat((0.5 * job.visible[:, CONTACT_JOINTS])[None], n, 0))
    return JobOutput(
        trans=trans,
        root_orient=smooth(job.root_orient),
        pose_body=smooth(job.pose_body),
        joints=job.rest_joints[None] + trans[:, None],
        contacts=0.5 * job.visible[:, CONTACT_JOINTS],
        metrics={
            "frames": job.num_frames,
            "fps": job.fps,
            "preset": job.options["preset"],
            "keep_visible": job.options["keep_visible"],
            "device": job.options["device"],
            "mean_change": float(np.abs(trans - job.trans).mean()),
            **({"doubt_from": int(np.flatnonzero((~job.visible).any(1))[0]),
                "doubt_to": int(np.flatnonzero((~job.visible).any(1))[-1]), "doubt_max_cm": 10.0}
               if (~job.visible).any() else {}),
        },
        extra=extra,
    )


def expected_for(trans, root_orient, pose_body, rest_joints, fps, visible=None, **options) -> JobOutput:
    """expected_output for client-side arrays (as the server would normalise them)."""
    t = len(trans)
    opts = {"preset": "default", "keep_visible": True, "device": "cpu", **options}
    vis = np.ones((t, 22), bool) if visible is None else np.asarray(visible, bool)
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    job = JobInput(f64(trans), f64(root_orient), f64(pose_body), f64(rest_joints), vis, float(fps), opts)
    return expected_output(job)


class TinyRunner:
    """window: frames per step; step_s: seconds of "work" per window; silent_s: seconds
    of work before the first progress (to test heartbeats); fail: an exception to raise;
    warning: a sentence every result carries in ``metrics["warning"]`` (as the real runner's guard);
    metrics: more numbers every result carries (e.g. the real runner's ``windows_reused``)."""

    info = {"model": "tiny-smoother", "kernel": "1-2-1"}

    def __init__(self, window: int = 64, step_s: float = 0.0, silent_s: float = 0.0, fail: Exception | None = None,
                 warning: str = "", metrics: dict[str, float] | None = None):
        self.window, self.step_s, self.silent_s, self.fail, self.warning = window, step_s, silent_s, fail, warning
        self.metrics = dict(metrics or {})
        self.calls = 0
        self.stopped = 0  # jobs that ended because should_stop() turned True

    def _sleep(self, seconds: float, should_stop) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if should_stop():
                self.stopped += 1
                raise JobCancelled()
            time.sleep(min(0.01, max(end - time.monotonic(), 0)))

    def __call__(self, job: JobInput, sink, should_stop) -> JobOutput:
        self.calls += 1
        t0 = time.perf_counter()
        self._sleep(self.silent_s, should_stop)
        if self.fail is not None:
            raise self.fail
        out = expected_output(job)
        t = job.num_frames
        for start in range(0, t, self.window):
            stop = min(start + self.window, t)
            self._sleep(self.step_s, should_stop)
            sink.progress("smooth", stop / t, {"change": out.metrics["mean_change"], "window": start})
            if t > self.window:
                sink.partial(start, JobOutput(**{k: getattr(out, k)[start:stop] for k in
                                                 ("trans", "root_orient", "pose_body", "joints", "contacts")}))
        out.metrics["runner_s"] = time.perf_counter() - t0  # for the wire-overhead benchmark
        if self.warning:
            out.metrics["warning"] = self.warning
        out.metrics.update(self.metrics)
        return out


def failing(message: str = "the clip is too short for this preset; use at least 8 frames") -> TinyRunner:
    return TinyRunner(fail=DreamorError(message))
