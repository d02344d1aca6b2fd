"""`dreamor serve`: the ZeroMQ backend the Blender add-on talks to (DESIGN.md, wire protocol).

One ROUTER socket on 127.0.0.1, owned by the socket thread (:meth:`Server.serve_forever`):
it decodes and answers requests at once (``ping`` is answered while a job runs) and
forwards what the job threads send through an in-process outbox. Each device has one
worker thread (:class:`~.jobs.DeviceQueue`) running jobs one at a time through its runner.
Every bad message gets an ``error`` reply and the server keeps serving.
"""
from __future__ import annotations

import logging
import os
import socket
import signal
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import zmq

from .. import __version__
from ..errors import DreamorError
from . import protocol
from .jobs import DeviceQueue, Job, JobInput, Runner
from .protocol import ConnectionInfo, Message, ProtocolError

log = logging.getLogger("dreamor.server")

MAX_QUEUED_JOBS = 32
POLL_MS = 100
LINGER_MS = 500


# ---------------------------------------------------------------------------- outbox
class _Outbox:
    """Thread-safe way for job threads to send: encode, then push to the socket thread."""

    def __init__(self, ctx: zmq.Context, url: str, session: protocol.Session):
        self._session = session
        self._lock = threading.Lock()
        self._push = ctx.socket(zmq.PUSH)
        self._push.setsockopt(zmq.SNDHWM, 0)  # never block a job thread (it may hold the jobs lock)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.connect(url)

    def send(self, identity: bytes, msg: Message) -> None:
        frames = [identity, *self._session.encode(msg)]
        with self._lock:
            if self._push is not None:
                self._push.send_multipart(frames, copy=False)

    def close(self) -> None:
        with self._lock:
            self._push.close()
            self._push = None


# ---------------------------------------------------------------------------- server
class Server:
    """The backend: ``start()`` binds and writes the connection file, ``serve_forever()``
    runs the socket loop until ``stop()`` (thread-safe) or a ``shutdown`` request.

    runners: device name -> Runner (the first is the default device). max_message_bytes
    bounds every message (socket option per frame, header check for the whole message).
    """

    def __init__(
        self,
        runners: Mapping[str, Runner],
        *,
        port: int = 0,
        connection_file: str | os.PathLike | None = None,
        key: bytes | None = None,
        max_message_bytes: int = protocol.MAX_MESSAGE_BYTES,
        max_queued: int = MAX_QUEUED_JOBS,
    ):
        if not runners:
            raise ValueError("a server needs at least one runner")
        self.runners = dict(runners)
        self.default_device = next(iter(self.runners))
        self.port = port
        self.connection_file = Path(connection_file) if connection_file else protocol.default_connection_file()
        self.key = key or protocol.new_key()
        self.session = protocol.Session(self.key)
        self.max_message_bytes = max_message_bytes
        self.max_queued = max_queued
        self.info: ConnectionInfo | None = None
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()  # guards jobs and queues
        self._stopping = threading.Event()
        self._delimited: set[bytes] = set()  # peers (REQ-style) that put an empty frame before the message
        self._queues: dict[str, DeviceQueue] = {}
        self._ctx: zmq.Context | None = None

    # -- lifecycle
    def start(self) -> ConnectionInfo:
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone client raises: we cancel its jobs
        self._router.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        self._router.setsockopt(zmq.LINGER, LINGER_MS)
        try:
            self._router.bind(f"tcp://127.0.0.1:{self.port or '*'}")
        except zmq.ZMQError as exc:
            self._ctx.destroy(linger=0)
            raise DreamorError(f"cannot listen on 127.0.0.1:{self.port} ({exc}); pick another --port or leave it out") from None
        port = int(self._router.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
        inproc = f"inproc://dreamor-outbox-{id(self)}"
        self._pull = self._ctx.socket(zmq.PULL)
        self._pull.setsockopt(zmq.RCVHWM, 0)
        self._pull.bind(inproc)
        self._outbox = _Outbox(self._ctx, inproc, self.session)
        self._queues = {d: DeviceQueue(d, r, self._outbox.send, self._lock) for d, r in self.runners.items()}
        self.info = ConnectionInfo(ip="127.0.0.1", port=port, key=self.key, pid=os.getpid())
        protocol.write_connection_file(self.connection_file, self.info)
        log.info("listening on %s; connection file %s", self.info.url, self.connection_file)
        return self.info

    def stop(self) -> None:
        """Ask the socket loop to finish (within POLL_MS). Safe from any thread or a signal handler."""
        self._stopping.set()

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._pull, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(POLL_MS))
                if self._pull in events:
                    self._forward_outbox()
                if self._router in events:
                    for _ in range(100):  # bounded, so heartbeats and outbox keep flowing
                        if not self._router.poll(0, zmq.POLLIN):
                            break
                        self._receive_one()
                now = time.monotonic()
                with self._lock:
                    for queue in self._queues.values():
                        queue.heartbeats(now)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        protocol.remove_connection_file(self.connection_file, self.key)  # first: no new client should come
        with self._lock:
            for job in self.jobs.values():
                if not job.finished:
                    job.finish("failed")
                    msg = protocol.error_message(
                        protocol.SERVER_STOPPED, "the backend was stopped before this job finished; start it again and resubmit", job_id=job.id
                    )
                    self._outbox.send(job.owner, msg)
            for queue in self._queues.values():
                queue.waiting.clear()
        self._forward_outbox()
        for queue in self._queues.values():
            queue.close(timeout=2.0)
        self._outbox.close()
        self._pull.close(linger=0)
        self._router.close()  # lingers LINGER_MS so the last replies go out
        self._ctx.term()
        log.info("stopped")

    # -- sending
    def _send(self, identity: bytes, frames: list) -> None:
        prefix = [identity, b""] if identity in self._delimited else [identity]
        try:
            self._router.send_multipart(prefix + frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("client %s is not reading; a message was dropped", identity.hex())
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self._client_gone(identity)

    def _reply(self, identity: bytes, msg: Message) -> None:
        self._send(identity, self.session.encode(msg))

    def _forward_outbox(self) -> None:
        while True:
            try:
                frames = self._pull.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._send(frames[0].bytes, frames[1:])

    def _client_gone(self, identity: bytes) -> None:
        """The client disconnected: cancel its jobs so the device is free for others."""
        self._delimited.discard(identity)
        with self._lock:
            for job in self.jobs.values():
                if job.owner == identity and not job.finished:
                    log.info("client gone; cancelling job %s", job.id)
                    self._cancel_locked(job)

    # -- receiving
    def _receive_one(self) -> None:
        frames, count, size = [], 0, 0
        max_frames = protocol.MAX_BUFFERS + 4  # identity, optional delimiter, signature, header
        while True:  # take every part; keep them only while within the limits
            frame = self._router.recv(copy=False)
            count, size = count + 1, size + len(frame.buffer)
            if count <= max_frames and size <= self.max_message_bytes + 4096:
                frames.append(frame)
            if not frame.more:
                break
        identity = frames[0].bytes
        parts = [f.buffer for f in frames[1:]]
        if parts and len(parts[0]) == 0 and len(parts) > 1:  # REQ-style empty delimiter: answer in kind
            parts = parts[1:]
            self._delimited.add(identity)
        else:
            self._delimited.discard(identity)
        try:
            if count > max_frames:
                raise ProtocolError(protocol.TOO_LARGE, f"a message may carry at most {protocol.MAX_BUFFERS} buffers, got {count - 3}")
            if len(frames) < count:
                raise ProtocolError(
                    protocol.TOO_LARGE,
                    f"the message is {size / 2**20:.1f} MiB; this backend accepts at most {self.max_message_bytes / 2**20:.1f} MiB (refine a shorter range)",
                )
            msg = self.session.decode(parts, max_bytes=self.max_message_bytes)
            self._handle(identity, msg)
        except ProtocolError as exc:
            log.info("rejected a message (%s): %s", exc.code, exc.message)
            self._reply(identity, protocol.error_message(exc.code, exc.message, exc.reply_to))
        except Exception as exc:  # a bug in handling one request must not stop the server
            log.exception("error while handling a request")
            text = f"the backend failed on this request ({type(exc).__name__}: {exc}); its log has the details — please report it"
            self._reply(identity, protocol.error_message(protocol.INTERNAL, text))

    def _handle(self, identity: bytes, msg: Message) -> None:
        handler = {
            "hello": self._on_hello,
            "ping": self._on_ping,
            "submit": self._on_submit,
            "cancel": self._on_cancel,
            "shutdown": self._on_shutdown,
        }.get(msg.type)
        if handler is None:
            raise ProtocolError(
                protocol.UNKNOWN_TYPE,
                f"message type {msg.type!r} is not a request this backend accepts ({', '.join(protocol.REQUEST_TYPES)}); "
                "is the add-on the same version as the backend?",
                msg.msg_id,
            )
        handler(identity, msg)

    def _on_hello(self, identity: bytes, msg: Message) -> None:
        theirs = msg.content.get("protocol", protocol.PROTOCOL_VERSION)
        if theirs != protocol.PROTOCOL_VERSION:  # the client says which protocol it speaks: a mismatch is no welcome
            raise ProtocolError(protocol.BAD_VERSION, f"this backend speaks protocol {protocol.PROTOCOL_VERSION} but the "
                                f"client says it speaks {theirs!r:.20}; update the add-on or the backend so that their "
                                "versions match", msg.msg_id)
        content = {
            "protocol": protocol.PROTOCOL_VERSION,
            "backend": "dreamor",
            "version": __version__,
            "pid": os.getpid(),
            "devices": list(self.runners),
            "default_device": self.default_device,
            "models": {d: protocol.json_safe(getattr(r, "info", None)) for d, r in self.runners.items()},
            "limits": {
                "max_message_bytes": self.max_message_bytes,
                "max_clip_frames": protocol.MAX_CLIP_FRAMES,
                "max_queued_jobs": self.max_queued,
            },
        }
        self._reply(identity, Message("welcome", content, reply_to=msg.msg_id))

    def _on_ping(self, identity: bytes, msg: Message) -> None:
        with self._lock:
            running = [q.running.id for q in self._queues.values() if q.running is not None]
            queued = sum(len(q.waiting) for q in self._queues.values())
        content = {"busy": bool(running), "running": running, "queued": queued}
        self._reply(identity, Message("pong", content, reply_to=msg.msg_id))

    def _on_submit(self, identity: bytes, msg: Message) -> None:
        arrays, fps, options = protocol.check_submit(msg)
        device = options["device"] or self.default_device
        if device not in self._queues:
            raise ProtocolError(
                protocol.BAD_INPUT,
                f"this backend runs on {', '.join(self._queues)}, not {device!r}; leave the device option empty or restart the backend with --device {device}",
                msg.msg_id,
            )
        options["device"] = device
        with self._lock:
            if sum(len(q.waiting) for q in self._queues.values()) >= self.max_queued:
                raise ProtocolError(protocol.BUSY, f"the backend already has {self.max_queued} jobs waiting; wait for some to finish or cancel them", msg.msg_id)
            self._prune_jobs()
            job_input = JobInput(**arrays, fps=fps, options=options)
            job = Job(id=protocol.new_id(), owner=identity, input=job_input, device=device, frames=job_input.num_frames)
            self.jobs[job.id] = job
            position = self._queues[device].put(job)  # its worker waits for the lock: 'accepted' goes out first
            content = {"job_id": job.id, "position": position, "device": device, "frames": job.frames}
            self._outbox.send(identity, Message("accepted", content, job_id=job.id, reply_to=msg.msg_id))
        log.info("job %s accepted: %d frames on %s, position %d", job.id, job.frames, device, position)

    def _on_cancel(self, identity: bytes, msg: Message) -> None:
        job_id = msg.job_id or msg.content.get("job_id")
        if not job_id:
            raise ProtocolError(protocol.MALFORMED, "cancel needs the job's id (the header's job_id, or content.job_id)",
                                msg.msg_id)
        with self._lock:
            job = self.jobs.get(job_id) if isinstance(job_id, str) else None
            if job is None:
                raise ProtocolError(
                    protocol.UNKNOWN_JOB, f"this backend has no job {job_id!r:.40}; it may belong to a backend that was restarted", msg.msg_id
                )
            if job.finished:
                raise ProtocolError(protocol.JOB_FINISHED, f"job {job.id} has already finished ({job.state}); nothing to cancel", msg.msg_id)
            self._cancel_locked(job)
            self._outbox.send(identity, Message("cancelled", {"job_id": job.id}, job_id=job.id, reply_to=msg.msg_id))
            if identity != job.owner:
                self._outbox.send(job.owner, Message("cancelled", {"job_id": job.id}, job_id=job.id))
        log.info("job %s cancelled", job.id)

    def _cancel_locked(self, job: Job) -> None:
        was_queued = job.state == "queued"
        job.finish("cancelled")
        if was_queued:
            self._queues[job.device].remove(job)

    def _on_shutdown(self, identity: bytes, msg: Message) -> None:
        log.info("shutdown requested by a client")
        self._reply(identity, Message("goodbye", {}, reply_to=msg.msg_id))
        self.stop()

    def _prune_jobs(self, keep: int = 1000) -> None:
        if len(self.jobs) > keep:
            for job_id in [j.id for j in self.jobs.values() if j.finished][: len(self.jobs) - keep // 2]:
                del self.jobs[job_id]


# ---------------------------------------------------------------------------- entry points
def serve(runners: Mapping[str, Runner], *, connection_file: str | os.PathLike | None = None, port: int = 0, **kwargs: Any) -> int:
    """Run a server in this (main) thread until SIGINT/SIGTERM or a ``shutdown`` request."""
    server = Server(runners, port=port, connection_file=connection_file, **kwargs)
    info = server.start()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: server.stop())
    try:
        print(f"dreamor backend listening on {info.url}; connection file {server.connection_file}", flush=True)
        server.serve_forever()
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
    return 0


def default_runner(device: str) -> Runner:
    """The refinement engine's runner for ``device`` (``engine_runner.load_runner``), imported lazily
    (it needs torch and loads the models once)."""
    try:
        from .engine_runner import load_runner
    except ImportError as exc:
        raise DreamorError(f"the refinement engine cannot be imported ({exc}); reinstall the dreamor package") from None
    return load_runner(device)


def run_serve(args) -> int:
    """`dreamor serve [--connection-file F] [--port P] [--device cpu|cuda]`."""
    device = args.device
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise DreamorError(f"unknown device {device!r}; use cpu or cuda")
    if not 0 <= args.port < 65536:
        raise DreamorError(f"port {args.port} is out of range; use 1-65535, or leave it out for a free one")
    if args.port:
        _check_port_free(args.port)  # before the models load (seconds): a taken port is told at once
    logging.basicConfig(level=logging.INFO, format="dreamor serve: %(message)s")
    runner = default_runner(device)
    return serve({device: runner}, connection_file=args.connection_file, port=args.port)


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as ZeroMQ binds: a port a stopped backend left in TIME-WAIT is free to it (Windows: no port stealing)
        probe.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_EXCLUSIVEADDRUSE", socket.SO_REUSEADDR), 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DreamorError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); pick another --port or leave it out") from None
