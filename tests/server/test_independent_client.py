"""docs/protocol_client.py -- a client written from docs/protocol.md, importing pyzmq and the standard library
only -- against the real server: hello, submit, progress, result, cancel, and a forged message refused."""
import importlib.util
import json
from pathlib import Path

import pytest
from tiny_runner import TinyRunner

ROOT = Path(__file__).resolve().parents[2]
SMPL_REST = ROOT / "backend" / "dreamor" / "body" / "smpl22_rest_joints.json"


@pytest.fixture(scope="module")
def wire():
    spec = importlib.util.spec_from_file_location("protocol_client", ROOT / "docs" / "protocol_client.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rest():
    return [v for joint in json.loads(SMPL_REST.read_text())["rest_joints_m"] for v in joint]


def test_the_client_does_not_import_dreamor():
    text = (ROOT / "docs" / "protocol_client.py").read_text()
    assert "import dreamor" not in text and "from dreamor" not in text


def test_hello_submit_progress_result(start_server, wire):
    server = start_server(TinyRunner(window=10, step_s=0.01))
    client = wire.WireClient(str(server.connection_file))
    try:
        welcome = client.hello()
        assert welcome["type"] == "welcome" and welcome["content"]["protocol"] == 1
        job = client.submit(30, 30.0, _rest(), {"preset": "fast"})
        seen = []
        while True:
            head, bufs = client.receive()
            assert head["job_id"] == job
            seen.append(head["type"])
            if head["type"] in ("result", "error"):
                break
        assert "progress" in seen and seen[-1] == "result"
        assert len(bufs["joints"]) == 30 * 22 * 3 and len(bufs["contacts"]) == 30 * 9
        assert head["content"]["metrics"]["preset"] == "fast"
    finally:
        client.close()


def test_cancel(start_server, wire):
    server = start_server(TinyRunner(window=5, step_s=0.2))
    client = wire.WireClient(str(server.connection_file))
    try:
        job = client.submit(200, 30.0, _rest())
        client.send("cancel", {"job_id": job}, job_id=job)
        types = []
        while "cancelled" not in types:
            types.append(client.receive()[0]["type"])
        assert "result" not in types
    finally:
        client.close()


def test_a_forged_message_is_refused(start_server, wire):
    server = start_server()
    client = wire.WireClient(str(server.connection_file))
    try:
        client.send("ping", key=b"not the key")
        head, _ = client.receive()
        assert head["type"] == "error" and head["content"]["code"] == "bad_signature"
        client.send("ping")  # the real key still works
        assert client.receive()[0]["type"] == "pong"
    finally:
        client.close()


def test_the_example_runs_end_to_end(start_server, wire, capsys):
    server = start_server(TinyRunner(window=20, step_s=0.01))
    assert wire.main(str(server.connection_file), str(SMPL_REST)) == 0
    out = capsys.readouterr().out
    assert "welcome" in out and "result: 60 frames" in out
