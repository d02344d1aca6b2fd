"""Helpers for the server tests and scripts/bench_server.py: clips, a raw socket, a backend process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zmq

from dreamor.server import protocol

HERE = Path(__file__).resolve().parent


def make_clip(frames: int = 120, seed: int = 0, occluded: bool = True) -> dict:
    """Random submit arguments: trans (T,3), root_orient (T,3), pose_body (T,63), rest_joints (22,3), fps, visible."""
    rng = np.random.default_rng(seed)
    visible = np.ones((frames, 22), bool)
    if occluded:
        visible[frames // 3 : 2 * frames // 3, [4, 5, 7, 8]] = False
    return {
        "trans": rng.normal(size=(frames, 3)),
        "root_orient": rng.normal(scale=0.5, size=(frames, 3)),
        "pose_body": rng.normal(scale=0.3, size=(frames, 63)),
        "rest_joints": rng.normal(scale=0.3, size=(22, 3)),
        "fps": 30.0,
        "visible": visible,
    }


class RawPeer:
    """A bare DEALER socket for sending arbitrary frames and reading the replies."""

    def __init__(self, info: protocol.ConnectionInfo):
        self.info = info
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(info.url)

    def send(self, frames: list) -> None:
        self.sock.send_multipart(frames)

    def send_message(self, msg: protocol.Message, key: bytes | None = None) -> None:
        self.send(protocol.encode(msg, self.info.key if key is None else key))

    def recv(self, timeout: float = 5.0) -> protocol.Message | None:
        """The next reply, decoded and verified, or None if nothing came within timeout."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        if frames and frames[0] == b"":  # the server answers a delimited request in kind
            frames = frames[1:]
        return protocol.decode(frames, self.info.key)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def spawn_backend(conn_file: Path, *extra: str) -> subprocess.Popen:
    """Start tests/server/serve_tiny.py as a real backend process; waits for its connection file."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "serve_tiny.py"), "--connection-file", str(conn_file), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not conn_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"backend did not start (rc={proc.returncode}):\n{out}\n{err}")
        time.sleep(0.02)
    return proc
