"""Fixtures for the server tests: servers with the tiny runner on real loopback sockets."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_helpers import RawPeer  # noqa: E402
from tiny_runner import TinyRunner  # noqa: E402

from dreamor.server.client import Client  # noqa: E402
from dreamor.server.server import Server  # noqa: E402


@pytest.fixture
def start_server(tmp_path):
    """start_server(runner=None, **Server kwargs) -> a running Server (in a thread); stopped after the test."""
    started: list[tuple[Server, threading.Thread]] = []

    def start(runner=None, **kwargs) -> Server:
        runners = kwargs.pop("runners", None) or {"cpu": runner or TinyRunner()}
        server = Server(runners, connection_file=tmp_path / f"backend-{len(started)}.json", **kwargs)
        server.start()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.stop()
        thread.join(15)
        assert not thread.is_alive(), "server thread did not stop"


@pytest.fixture
def connect():
    """connect(server_or_info, timeout=10) -> Client; closed after the test."""
    clients: list[Client] = []

    def make(target, timeout: float = 10.0) -> Client:
        info = target.info if isinstance(target, Server) else target
        client = Client(info, timeout=timeout)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def raw_peer():
    peers: list[RawPeer] = []

    def make(server: Server) -> RawPeer:
        peers.append(RawPeer(server.info))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()
