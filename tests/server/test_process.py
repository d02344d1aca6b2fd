"""The backend as a real process: connection file, signals, loopback-only binding, crashes."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from server_helpers import make_clip, spawn_backend

from dreamor.server import protocol
from dreamor.server.client import BackendGone, Client

linux_only = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp")


def stop_and_wait(proc: subprocess.Popen, how) -> int:
    how(proc)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "shutdown"])
def test_connection_file_is_private_and_removed_on_exit(tmp_path, how):
    conn = tmp_path / "run" / "backend.json"
    proc = spawn_backend(conn)
    try:
        assert stat.S_IMODE(conn.stat().st_mode) == 0o600
        data = json.loads(conn.read_text())
        assert set(data) == {"transport", "ip", "port", "key", "signature_scheme", "pid", "protocol"}
        assert (data["transport"], data["ip"], data["signature_scheme"], data["protocol"], data["pid"]) == ("tcp", "127.0.0.1", "hmac-sha256", 1, proc.pid)
        assert len(bytes.fromhex(data["key"])) == 32  # 64 hex digits; the HMAC key is the string's bytes
        assert not list(conn.parent.glob(".*.tmp"))  # written atomically, no leftovers
        with Client.from_connection_file(conn, timeout=10) as client:
            assert client.hello()["pid"] == proc.pid
            if how == "shutdown":
                client.shutdown()
        if how == "shutdown":
            rc = proc.wait(timeout=15)
        else:
            rc = stop_and_wait(proc, lambda p: p.send_signal(getattr(signal, how)))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, proc.stderr.read()
    assert not conn.exists()


def test_keys_differ_between_backends(tmp_path):
    procs = [spawn_backend(tmp_path / f"b{i}.json") for i in range(2)]
    try:
        keys = {protocol.read_connection_file(tmp_path / f"b{i}.json").key for i in range(2)}
        assert len(keys) == 2
    finally:
        for p in procs:
            stop_and_wait(p, lambda p: p.terminate())


def _listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets that process ``pid`` listens on (hex, as in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                found.append(cols[1])
    return found


@linux_only
def test_binds_nothing_but_127_0_0_1(tmp_path):
    conn = tmp_path / "b.json"
    proc = spawn_backend(conn)
    try:
        port = protocol.read_connection_file(conn).port
        listening = _listening_addresses(proc.pid)
        assert listening == [f"0100007F:{port:04X}"], listening  # exactly one socket: 127.0.0.1:port
    finally:
        stop_and_wait(proc, lambda p: p.terminate())


def test_a_killed_backend_makes_the_client_raise_not_hang(tmp_path):
    conn = tmp_path / "b.json"
    proc = spawn_backend(conn, "--window", "10", "--step-s", "0.2")
    try:
        with Client.from_connection_file(conn, timeout=1.5) as client:
            job = client.submit(**make_clip(300))
            next(job.events(timeout=10))
            proc.kill()
            proc.wait(10)
            t0 = time.monotonic()
            with pytest.raises(BackendGone, match="sent nothing about job"):
                job.wait(timeout=30)
            assert time.monotonic() - t0 < 4.0
            with pytest.raises(BackendGone):
                client.ping(timeout=0.5)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_serve_rejects_a_bad_device_and_port():
    from argparse import Namespace

    from dreamor.errors import DreamorError
    from dreamor.server.server import run_serve

    with pytest.raises(DreamorError, match="unknown device 'gpu'; use cpu or cuda"):
        run_serve(Namespace(connection_file=None, port=0, device="gpu"))
    with pytest.raises(DreamorError, match="port 70000 is out of range"):
        run_serve(Namespace(connection_file=None, port=70000, device="cpu"))


def test_serve_on_a_taken_port_says_so_before_loading_models(start_server, monkeypatch):
    from argparse import Namespace

    from dreamor.errors import DreamorError
    from dreamor.server import server as server_module

    taken = start_server().info.port
    monkeypatch.setattr(server_module, "default_runner", lambda device: pytest.fail("the models loaded first"))
    with pytest.raises(DreamorError, match=f"cannot listen on 127.0.0.1:{taken}"):
        server_module.run_serve(Namespace(connection_file=None, port=taken, device="cpu"))


def test_a_taken_port_is_a_clear_error(tmp_path, start_server):
    from dreamor.errors import DreamorError
    from dreamor.server.server import Server

    taken = start_server().info.port
    with pytest.raises(DreamorError, match=f"cannot listen on 127.0.0.1:{taken}"):
        Server({"cpu": lambda *a: None}, port=taken, connection_file=tmp_path / "x.json").start()
    assert not (tmp_path / "x.json").exists()
