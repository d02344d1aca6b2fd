"""A small client for the DREAMoR backend, used by the Blender add-on and the tests.

    with Client.from_connection_file(path) as client:
        client.hello()                                   # raises BackendGone if nobody answers
        job = client.submit(trans, root_orient, pose_body, rest_joints, fps, visible, preset="fast")
        for event in job.events():                       # blocking; Progress, Partial, then Result
            ...
        # or, from a Blender timer, without blocking:  for event in job.poll(): ...

Every call that waits has a timeout, and a backend that stops answering raises
:class:`BackendGone` (the server sends each job's progress at least once a second, so
``timeout`` seconds of silence mean it is gone). Not thread-safe: use one client per thread.

Standard library, numpy and pyzmq only: the add-on ships a verbatim copy of this file
next to ``protocol.py``.
"""
from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import zmq

from . import protocol
from .protocol import ConnectionInfo, Message, ProtocolError

DEFAULT_TIMEOUT_S = 10.0


class ClientError(Exception):
    """Base of everything this client raises."""


class BackendGone(ClientError, ConnectionError):
    """The backend does not answer (not running, crashed, stopped, or restarted with a new key)."""


class BackendError(ClientError):
    """The backend (or this client, checking before sending) rejected a request: ``code``, ``message``."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} [{code}]")
        self.code, self.message = code, message


class JobFailed(BackendError):
    """The job ended with an error (``job_failed``: bad input for the engine; ``internal``: a bug)."""


class JobCancelled(ClientError):
    """The job was cancelled."""


class ClientTimeout(ClientError, TimeoutError):
    """A job took longer than the ``timeout`` given to ``Job.wait``/``Job.events``."""


@dataclass
class Progress:
    """stage (e.g. "queued", "started", "optimise"); fraction 0..1 of the whole job;
    energies by name; position in the queue (0: running); elapsed_s since start."""

    job_id: str
    stage: str
    fraction: float
    energies: dict[str, Any]
    position: int
    elapsed_s: float


@dataclass
class Partial:
    """Final frames [start, stop) of a long clip: arrays as in Result, (stop - start) frames (read-only)."""

    job_id: str
    start: int
    stop: int
    arrays: dict[str, np.ndarray]


@dataclass
class Result:
    """The refined clip: trans (T,3) m, root_orient (T,3) and pose_body (T,63) axis-angle,
    joints (T,22,3) m, contacts (T,9) in [0,1]; metrics by name; elapsed_s on the backend.
    The arrays are read-only views of the received message (``.copy()`` to edit)."""

    job_id: str
    trans: np.ndarray
    root_orient: np.ndarray
    pose_body: np.ndarray
    joints: np.ndarray
    contacts: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    #: the optional arrays (``uncertainty`` (T,22) m; with samples > 1 ``samples`` (N,T,22,3), ``sample_trans``...).
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {**{name: getattr(self, name) for name in protocol.OUTPUT_ARRAYS}, **self.extra}


Event = Progress | Partial | Result


class Job:
    """A submitted job. ``state``: queued | running | done | cancelled | failed."""

    def __init__(self, client: "Client", accepted: Message):
        self.client = client
        self.id: str = accepted.content["job_id"]
        self.position: int = int(accepted.content.get("position", 0))
        self.device: str | None = accepted.content.get("device")
        self.frames: int = int(accepted.content.get("frames", 0))
        self.state = "queued" if self.position else "running"
        self.result: Result | None = None
        self._inbox: collections.deque[Message] = collections.deque()
        self._error: ClientError | None = None
        self.last_heard = time.monotonic()

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    def poll(self) -> list[Event]:
        """Events that have arrived, without waiting (the last one is the Result when done).

        Raises JobFailed or JobCancelled once the job has ended that way, and BackendGone
        after ``client.timeout`` seconds without a word about this unfinished job.
        """
        self.client._drain()
        events: list[Event] = []
        while self._inbox:
            msg = self._inbox[0]
            if msg.type in ("error", "cancelled") and events:
                return events  # hand over what came before; the next poll raises
            self._inbox.popleft()
            event = self._event(msg)
            if event is not None:
                events.append(event)
        if events:
            return events
        if self._error is not None:
            raise self._error
        if self.state == "cancelled":
            raise JobCancelled(f"job {self.id} was cancelled")
        if not self.finished and time.monotonic() - self.last_heard > self.client.timeout:
            raise BackendGone(f"the backend at {self.client.info.url} sent nothing about job {self.id} for {self.client.timeout:g} s; is it still running?")
        return events

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they arrive until the Result (the last one); ``timeout`` bounds the
        whole job (ClientTimeout), silence longer than ``client.timeout`` raises BackendGone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            events = self.poll()
            if not events and self.result is not None:  # its events were taken by an earlier call
                yield self.result
                return
            for event in events:
                yield event
                if isinstance(event, Result):
                    return
            if deadline is not None and time.monotonic() > deadline:
                raise ClientTimeout(f"job {self.id} did not finish within {timeout:g} s")
            self.client._receive(0.2)

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the Result (progress and partial windows are skipped)."""
        for event in self.events(timeout):
            if isinstance(event, Result):
                return event
        raise AssertionError("unreachable")

    def cancel(self, timeout: float | None = None) -> bool:
        """Cancel the job; True once the backend confirms, False if it had already finished."""
        if self.finished:
            return False
        try:
            self.client._request(Message("cancel", {"job_id": self.id}, job_id=self.id), timeout)
        except BackendError as exc:
            if exc.code == protocol.JOB_FINISHED:
                return False
            raise
        self.state = "cancelled"
        return True

    def _event(self, msg: Message) -> Event | None:
        c = msg.content
        if msg.type == "progress":
            self.position = int(c.get("position", 0))
            if self.state == "queued" and self.position == 0 and c.get("stage") != "queued":
                self.state = "running"
            return Progress(self.id, str(c.get("stage")), float(c.get("fraction", 0.0)), dict(c.get("energies") or {}), self.position, float(c.get("elapsed_s", 0.0)))
        if msg.type == "partial":
            return Partial(self.id, int(c["start"]), int(c["stop"]), dict(msg.buffers))
        if msg.type == "result":
            self.state = "done"
            extra = {k: v for k, v in msg.buffers.items() if k in protocol.OPTIONAL_OUTPUTS or k in protocol.SAMPLE_ARRAYS}
            self.result = Result(self.id, **{k: msg.buffers[k] for k in protocol.OUTPUT_ARRAYS}, metrics=dict(c.get("metrics") or {}),
                                 elapsed_s=float(c.get("elapsed_s", 0.0)), extra=extra)
            return self.result
        if msg.type == "cancelled":
            self.state = "cancelled"
            self._error = JobCancelled(f"job {self.id} was cancelled")
            raise self._error
        if msg.type == "error":
            self.state = "failed"
            code, text = c.get("code", "?"), c.get("message", "the backend reported an error")
            self._error = BackendGone(text) if code == protocol.SERVER_STOPPED else JobFailed(code, text)
            raise self._error
        return None


class Client:
    """A DEALER connection to one backend. ``timeout``: seconds of silence that mean it is gone."""

    def __init__(self, info: ConnectionInfo, *, timeout: float = DEFAULT_TIMEOUT_S):
        self.info, self.timeout = info, float(timeout)
        self.session = protocol.Session(info.key)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.IDENTITY, b"dreamor-" + os.urandom(12))  # stable across reconnects
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDTIMEO, int(self.timeout * 1000))
        self._sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
        self._sock.connect(info.url)
        self._replies: dict[str, Message | None] = {}
        self._jobs: dict[str, Job] = {}  # unfinished jobs, by id
        self._new_jobs: dict[str, Job] = {}  # accepted, not yet returned by submit

    @classmethod
    def from_connection_file(cls, path: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT_S) -> "Client":
        """Connect with a backend's connection file; BackendGone if it is missing or unusable."""
        try:
            return cls(protocol.read_connection_file(path), timeout=timeout)
        except ValueError as exc:
            raise BackendGone(str(exc)) from None

    # -- requests
    def hello(self, timeout: float | None = None) -> dict[str, Any]:
        """The backend's ``welcome``: protocol, version, devices, models, limits."""
        return self._request(Message("hello", {"protocol": protocol.PROTOCOL_VERSION, "client": "dreamor.client"}), timeout).content

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        """``pong`` content: busy (bool), running (job ids), queued (count). Answered while busy."""
        return self._request(Message("ping"), timeout).content

    def submit(
        self,
        trans: np.ndarray,
        root_orient: np.ndarray,
        pose_body: np.ndarray,
        rest_joints: np.ndarray,
        fps: float,
        visible: np.ndarray | None = None,
        *,
        pinned: np.ndarray | None = None,
        confidence: np.ndarray | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> Job:
        """Submit a clip (shapes as in ``protocol.submit_message``: pinned and confidence are the
        animator's pins and noisy marks; options: preset, keep_visible, noisy, lock_feet, device) and
        return its Job once the backend accepted it. Input the backend would reject raises BackendError
        before anything is sent."""
        msg = protocol.submit_message(trans, root_orient, pose_body, rest_joints, fps, visible, pinned, confidence,
                                      **options)
        try:
            protocol.check_submit(Message("submit", msg.content, {k: protocol.wire_array(v) for k, v in msg.buffers.items()}))
        except ProtocolError as exc:
            raise BackendError(exc.code, exc.message) from None
        except TypeError as exc:
            raise BackendError(protocol.BAD_INPUT, str(exc)) from None
        accepted = self._request(msg, timeout)
        return self._new_jobs.pop(accepted.content["job_id"])  # made by _drain on arrival

    def shutdown(self, timeout: float | None = None) -> None:
        """Ask the backend to stop (its running jobs end with BackendGone for their clients)."""
        self._request(Message("shutdown"), timeout)

    def close(self) -> None:
        self._sock.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing
    def _send(self, msg: Message) -> None:
        try:
            self._sock.send_multipart(self.session.encode(msg), copy=False)
        except zmq.Again:
            raise BackendGone(f"cannot send to the backend at {self.info.url} (not connected for {self.timeout:g} s); is it running?") from None

    def _request(self, msg: Message, timeout: float | None = None) -> Message:
        """Send ``msg`` and wait for its reply; an ``error`` reply raises BackendError."""
        timeout = self.timeout if timeout is None else timeout
        self._replies[msg.msg_id] = None
        try:
            self._send(msg)
            deadline = time.monotonic() + timeout
            while self._replies[msg.msg_id] is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BackendGone(f"the backend at {self.info.url} did not answer '{msg.type}' within {timeout:g} s; is it still running?")
                self._receive(left)
            reply = self._replies[msg.msg_id]
        finally:
            self._replies.pop(msg.msg_id, None)
        if reply.type == "error":
            raise BackendError(reply.content.get("code", "?"), reply.content.get("message", "the backend rejected the request"))
        return reply

    def _receive(self, wait_s: float) -> None:
        """Wait up to wait_s for a message, then take everything that has arrived."""
        if self._sock.poll(max(int(wait_s * 1000), 0), zmq.POLLIN):
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                msg = self.session.decode([f.buffer for f in frames])
            except ProtocolError:
                continue  # not from our backend (wrong key) or damaged: ignore it
            if msg.reply_to in self._replies:
                self._replies[msg.reply_to] = msg
                if msg.type == "accepted":  # register now: the job's next messages may be in this drain
                    job = self._jobs[msg.content["job_id"]] = self._new_jobs[msg.content["job_id"]] = Job(self, msg)
                    continue
            job = self._jobs.get(msg.job_id) if msg.job_id else None
            if job is not None:
                job.last_heard = time.monotonic()
                job._inbox.append(msg)
                if msg.type in ("result", "cancelled", "error"):  # its last message: forget the job
                    del self._jobs[job.id]
