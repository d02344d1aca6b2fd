"""Refinement jobs: the runner interface, and one worker thread per device running them in order.

The refinement engine plugs in as a *runner*::

    Runner = Callable[[JobInput, ProgressSink, Callable[[], bool]], JobOutput]

``runner(job, sink, should_stop)`` refines ``job`` and returns a JobOutput. It reports
with ``sink.progress(stage, fraction, energies)`` (as often as it likes; the server
rate-limits and re-sends the last one every half second, so the client hears at least
once a second) and ``sink.partial(start, window)`` for each finished window of a long
clip. It should poll ``should_stop()`` every few hundred ms and, once it is True, return
or raise :class:`JobCancelled` soon: the client was already told ``cancelled``, and the
device stays busy until the runner returns. A :class:`~dreamor.errors.DreamorError` it
raises reaches the client as a ``job_failed`` error with its message.

A runner is built once per device (models loaded once) and called from that device's
worker thread, one job at a time. It may carry an ``info`` dict (model ids, ...) that
the server puts in its ``welcome``. This module knows nothing of sockets.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from ..errors import DreamorError
from . import protocol
from .protocol import Message

log = logging.getLogger("dreamor.server")

#: Re-send a job's last progress after this much silence (so clients hear it every second).
HEARTBEAT_S = 0.5
#: Runner progress faster than this is coalesced (the latest is kept for the heartbeat).
MIN_PROGRESS_INTERVAL_S = 0.05


@dataclass(frozen=True)
class JobInput:
    """One clip to refine, as submitted. T frames at ``fps``; world is Z-up metres.

    trans (T,3) m; root_orient (T,3) and pose_body (T,63) axis-angle (SMPL conventions,
    as in ``dreamor.data.clip``); rest_joints (22,3) m, the body's zero-pose joints;
    visible (T,22) bool, False where a joint was occluded; pinned (T,22) bool and confidence (T,22)
    in [0, 1], the animator's pins and noisy marks (None: none); fps of the scene; options:
    ``preset`` ("fast" | "default" | "best"), ``keep_visible`` (bool: keep visible joints
    exactly), ``noisy`` (bool: the capture is noisy, smooth it rather than meet it), ``lock_feet``
    (bool: feet in contact do not slide), ``device``
    (the device this job runs on).
    """

    trans: np.ndarray
    root_orient: np.ndarray
    pose_body: np.ndarray
    rest_joints: np.ndarray
    visible: np.ndarray
    fps: float
    options: dict[str, Any]
    pinned: np.ndarray | None = None  # (T, 22) bool: joints the animator fixed
    confidence: np.ndarray | None = None  # (T, 22) in [0, 1]: 0 hidden, 1 trusted, between = noisy

    @property
    def num_frames(self) -> int:
        return int(self.trans.shape[0])


@dataclass
class JobOutput:
    """A refined clip (or, for ``sink.partial``, one window of it): T frames at the input fps.

    trans (T,3) m; root_orient (T,3), pose_body (T,63) axis-angle; joints (T,22,3) m world
    joints; contacts (T,9) in [0,1] for the contact joints of ``skeleton.CONTACT_JOINTS``;
    metrics: flat dict of numbers or strings (empty for partial windows).
    """

    trans: np.ndarray
    root_orient: np.ndarray
    pose_body: np.ndarray
    joints: np.ndarray
    contacts: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)
    #: protocol.OPTIONAL_OUTPUTS and SAMPLE_ARRAYS by name (the doubt, the completions), when the runner gives them.
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(np.asarray(self.trans).shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {**{name: np.asarray(getattr(self, name)) for name in protocol.OUTPUT_ARRAYS},
                **{k: np.asarray(v) for k, v in self.extra.items()}}


class ProgressSink(Protocol):
    def progress(self, stage: str, fraction: float, energies: Mapping[str, float] | None = None) -> None:
        """stage: short name ("encode", "optimise", ...); fraction: of the whole job, 0..1;
        energies: current energy terms by name."""

    def partial(self, start: int, window: JobOutput) -> None:
        """Frames [start, start + window.num_frames) are final (window.metrics is ignored)."""


Runner = Callable[[JobInput, ProgressSink, Callable[[], bool]], JobOutput]


class JobCancelled(Exception):
    """A runner may raise this once ``should_stop()`` is True."""


#: Sends one message to the client with this routing id; thread-safe (the server's outbox).
Send = Callable[[bytes, Message], None]


@dataclass(eq=False)
class Job:
    """Server-side record of a submitted job."""

    id: str
    owner: bytes  # the client's routing id
    input: JobInput | None  # dropped when the job finishes (records outlive their arrays)
    device: str
    frames: int
    state: str = "queued"  # queued | running | done | cancelled | failed
    stop: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    last_sent: float = field(default_factory=time.monotonic)
    last_progress: dict[str, Any] = field(default_factory=lambda: {"stage": "queued", "fraction": 0.0, "energies": {}})
    progress_unsent: bool = False  # the runner reported progress that was coalesced, not yet sent

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    def finish(self, state: str) -> None:
        """End the job (call with the lock held): tell the runner to stop, free the input."""
        self.state, self.input = state, None
        self.stop.set()


class _Sink:
    """What a runner reports to: turns progress and partial windows into messages."""

    def __init__(self, job: Job, send: Send, lock: threading.Lock):
        self.job, self._send, self._lock = job, send, lock

    def progress(self, stage: str, fraction: float, energies: Mapping[str, float] | None = None) -> None:
        fraction = float(fraction) if np.isfinite(fraction) else 0.0
        content = {"stage": str(stage), "fraction": min(max(fraction, 0.0), 1.0), "energies": protocol.json_safe(energies)}
        now = time.monotonic()
        with self._lock:
            if self.job.finished:
                return
            changed = content["stage"] != self.job.last_progress.get("stage")
            self.job.last_progress = content
            if not changed and now - self.job.last_sent < MIN_PROGRESS_INTERVAL_S:
                self.job.progress_unsent = True  # the socket thread sends it shortly (heartbeats)
                return
            self.job.last_sent, self.job.progress_unsent = now, False
            self._send(self.job.owner, _progress_message(self.job, now))

    def partial(self, start: int, window: JobOutput) -> None:
        start, n = int(start), window.num_frames
        if start < 0 or start + n > self.job.frames:
            raise ValueError(f"partial window [{start}, {start + n}) lies outside the clip's {self.job.frames} frames")
        arrays = window.arrays()
        protocol.check_output_arrays(arrays, n)
        msg = Message("partial", {"start": start, "stop": start + n}, arrays, job_id=self.job.id)
        with self._lock:
            if not self.job.finished:
                self.job.last_sent = time.monotonic()
                self._send(self.job.owner, msg)


def _progress_message(job: Job, now: float, position: int = 0) -> Message:
    content = dict(job.last_progress)
    content["position"] = position
    content["elapsed_s"] = round(now - (job.started or job.submitted), 3)
    return Message("progress", content, job_id=job.id)


class DeviceQueue:
    """Jobs for one device: a FIFO and the worker thread that runs them one at a time."""

    def __init__(self, device: str, runner: Runner, send: Send, lock: threading.Lock):
        self.device, self.runner, self._send, self._lock = device, runner, send, lock
        self.waiting: collections.deque[Job] = collections.deque()
        self.running: Job | None = None
        self._wake = threading.Condition(lock)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"dreamor-jobs-{device}", daemon=True)
        self._thread.start()

    def put(self, job: Job) -> int:
        """Queue ``job``; returns its position (0: it runs now). Call with the lock held."""
        self.waiting.append(job)
        self._wake.notify()
        return len(self.waiting) - 1 + (self.running is not None)

    def remove(self, job: Job) -> None:
        """Drop a queued job and tell the others their new place. Call with the lock held."""
        self.waiting.remove(job)
        self._announce_positions()

    def heartbeats(self, now: float) -> None:
        """Send coalesced progress, and re-send progress to jobs silent for HEARTBEAT_S.
        Call with the lock held."""
        jobs = ([self.running] if self.running else []) + list(self.waiting)
        for position, job in enumerate(jobs):  # the running job is 0, the next waiting one 1 (or 0 if none runs)
            silent = now - job.last_sent
            due = silent >= HEARTBEAT_S or (job.progress_unsent and silent >= MIN_PROGRESS_INTERVAL_S)
            if job.state in ("running", "queued") and due:
                job.last_sent, job.progress_unsent = now, False
                self._send(job.owner, _progress_message(job, now, position if job.state == "queued" else 0))

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout)

    def _announce_positions(self) -> None:
        now = time.monotonic()
        for position, job in enumerate(self.waiting, start=1 if self.running else 0):
            job.last_sent = now
            self._send(job.owner, _progress_message(job, now, position))

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self.waiting and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self.running = self.waiting.popleft()
                job_input = job.input
                job.state, job.started = "running", time.monotonic()
                job.last_progress = {"stage": "started", "fraction": 0.0, "energies": {}}
                job.last_sent = job.started
                self._send(job.owner, _progress_message(job, job.started))
                self._announce_positions()
            try:
                self._run(job, job_input)
            finally:
                with self._lock:
                    self.running = None
            job = job_input = None  # hold nothing while waiting for the next job

    def _run(self, job: Job, job_input: JobInput) -> None:
        sink = _Sink(job, self._send, self._lock)
        reply: Message | None = None
        try:
            out = self.runner(job_input, sink, job.stop.is_set)
            if not job.stop.is_set():
                arrays = out.arrays()
                protocol.check_output_arrays(arrays, job.frames)
                content = {"frames": job.frames, "metrics": protocol.json_safe(out.metrics)}
                content["elapsed_s"] = round(time.monotonic() - (job.started or job.submitted), 3)
                reply = Message("result", content, arrays, job_id=job.id)
        except JobCancelled:
            pass
        except DreamorError as exc:
            reply = protocol.error_message(protocol.JOB_FAILED, str(exc), job_id=job.id)
        except Exception as exc:  # a bug in the runner: log it, tell the client, keep serving
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            reply = protocol.error_message(
                protocol.INTERNAL,
                f"the refinement failed with an internal error ({type(exc).__name__}: {exc}); "
                "the backend's log has the details — please report it",
                job_id=job.id,
            )
        with self._lock:
            if self.running is job:  # done before its reply goes: a ping that follows the reply sees it so
                self.running = None
            if job.finished:  # cancelled (and already answered) meanwhile
                return
            if reply is None:  # the runner stopped without a cancel from the client
                reply = protocol.error_message(protocol.SERVER_STOPPED, "the backend stopped this job before it finished; submit it again", job_id=job.id)
            job.finish("done" if reply.type == "result" else "failed")
            self._send(job.owner, reply)
