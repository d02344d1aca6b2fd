"""Hostile and broken messages on a real socket: each gets an `error` reply (or is dropped),
and a normal job still succeeds afterwards."""
from __future__ import annotations

import json

import numpy as np
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import make_clip
from tiny_runner import expected_for

from dreamor.server import protocol
from dreamor.server.protocol import Message


def signed(header: dict, buffers: list[bytes], key: bytes) -> list[bytes]:
    raw = json.dumps(header).encode()
    return [protocol.sign(key, raw, buffers).encode(), raw, *buffers]


def submit_parts(key: bytes, frames: int = 16) -> tuple[dict, list[bytes]]:
    wire = protocol.encode(protocol.submit_message(**make_clip(frames)), key)
    return json.loads(bytes(wire[1])), [bytes(b) for b in wire[2:]]


def a_job_still_succeeds(server, connect) -> None:
    clip = make_clip(40, seed=42)
    result = connect(server).submit(**clip).wait(timeout=20)
    assert np.array_equal(result.pose_body, expected_for(**clip).pose_body)


def expect_error(peer, code: str, reply_to: str | None = "any") -> Message:
    reply = peer.recv(timeout=5)
    assert reply is not None, f"no reply (expected {code})"
    assert reply.type == "error" and reply.content["code"] == code, reply.content
    assert len(reply.content["message"]) > 20
    if reply_to != "any":
        assert reply.reply_to == reply_to
    return reply


def test_each_kind_of_bad_message_gets_its_error_code(start_server, connect, raw_peer):
    server = start_server()
    key = server.key
    peer = raw_peer(server)

    header, bufs = submit_parts(key)
    peer.send(signed(header, bufs, b"wrong key"))
    assert "current connection file" in expect_error(peer, "bad_signature", header["msg_id"]).content["message"]

    header, bufs = submit_parts(key)
    header["protocol"] = 0
    peer.send(signed(header, bufs, key))
    expect_error(peer, "bad_version", header["msg_id"])

    header, bufs = submit_parts(key)
    peer.send(signed(header, bufs[:2], key))  # truncated: fewer buffer frames than declared
    expect_error(peer, "malformed", header["msg_id"])
    peer.send([b"only a signature"])
    expect_error(peer, "malformed", None)

    huge = json.dumps({"protocol": 1, "type": "ping", "msg_id": "m", "content": {"pad": "x" * (1 << 20)}, "buffers": []})
    peer.send([b"0" * 64, huge.encode()])
    expect_error(peer, "too_large")

    header, bufs = submit_parts(key)
    bufs[1] = bufs[1] + b"\0" * 8  # wrong buffer size
    peer.send(signed(header, bufs, key))
    assert "holds 392 bytes" in expect_error(peer, "malformed", header["msg_id"]).content["message"]

    clip = make_clip(16)
    clip["pose_body"][5, 7] = np.nan
    msg = protocol.submit_message(**clip)
    peer.send_message(msg)
    assert "NaN" in expect_error(peer, "bad_input", msg.msg_id).content["message"]

    msg = Message("result", {})
    peer.send_message(msg)
    expect_error(peer, "unknown_type", msg.msg_id)

    msg = protocol.submit_message(**make_clip(16), device="tpu")
    peer.send_message(msg)
    expect_error(peer, "bad_input", msg.msg_id)

    peer.send_message(Message("shutdown"), key=b"not the key")  # only a key holder may stop it
    expect_error(peer, "bad_signature")

    msg = Message("hello", {"protocol": 99})  # a client that says it speaks another protocol is not welcomed
    peer.send_message(msg)
    assert "client says it speaks 99" in expect_error(peer, "bad_version", msg.msg_id).content["message"]

    msg = Message("cancel", {})
    peer.send_message(msg)
    assert "cancel needs the job's id" in expect_error(peer, "malformed", msg.msg_id).content["message"]

    clip = make_clip(16)
    clip["rest_joints"] = np.zeros((24, 3))
    msg = protocol.submit_message(**clip)
    peer.send_message(msg)
    assert "SMPL's 22 joints" in expect_error(peer, "bad_input", msg.msg_id).content["message"]

    a_job_still_succeeds(server, connect)


def test_too_large_messages_get_an_error_or_are_dropped(start_server, connect, raw_peer):
    server = start_server(max_message_bytes=1 << 20)
    peer = raw_peer(server)
    chunks = {f"b{i}": np.zeros(50_000) for i in range(3)}  # 3 x 400 kB: each frame fits, the message does not
    peer.send_message(Message("ping", {}, chunks))
    assert "at most 1.0 MiB" in expect_error(peer, "too_large").content["message"]
    peer.send([b"s", b"h", *[b""] * (protocol.MAX_BUFFERS + 4)])
    expect_error(peer, "too_large")
    peer.send([b"s" * (2 << 20)])  # one frame beyond the socket's limit: libzmq drops the connection
    assert peer.recv(timeout=0.5) is None
    a_job_still_succeeds(server, connect)


def test_a_req_socket_following_the_envelope_works(start_server):
    server = start_server()
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(server.info.url)
    try:
        msg = Message("ping")
        req.send_multipart(protocol.encode(msg, server.key))
        assert req.poll(5000)
        reply = protocol.decode(req.recv_multipart(), server.key)
        assert reply.type == "pong" and reply.reply_to == msg.msg_id
    finally:
        req.close(0)
        ctx.term()


frame_lists = st.lists(st.binary(max_size=300), min_size=1, max_size=5)


def test_random_bytes_are_answered_with_errors(start_server, connect, raw_peer):
    server = start_server()
    peer = raw_peer(server)
    header, bufs = submit_parts(server.key)
    good = signed(header, bufs, server.key)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames=frame_lists | st.builds(lambda i, junk: good[:i] + [junk] + good[i + 1 :], st.integers(0, len(good) - 1), st.binary(max_size=300)))
    def fuzz(frames):
        peer.send(frames)
        reply = peer.recv(timeout=5)
        assert reply is not None and reply.type == "error"
        assert reply.content["code"] in {"malformed", "too_large", "bad_signature", "bad_version"}

    fuzz()
    a_job_still_succeeds(server, connect)


def test_signed_but_random_headers_and_contents_are_answered(start_server, connect, raw_peer):
    """A client holding the key but speaking nonsense: every message still gets an answer."""
    server = start_server()
    peer = raw_peer(server)
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)
    headers = st.fixed_dictionaries(
        {"protocol": st.just(1), "msg_id": st.text(min_size=1, max_size=10)},
        optional={
            "type": st.sampled_from(["submit", "cancel", "ping", "hello", "progress", "x"]) | st.text(max_size=5),
            "job_id": json_values,
            "content": st.dictionaries(st.sampled_from(["fps", "options", "job_id", "x"]), json_values, max_size=3) | json_values,
            "buffers": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["trans", "pose_body", "visible", "x"]), "dtype": st.sampled_from(["<f8", "|b1", "<f4", "O", "<i8"]), "shape": st.lists(st.integers(-1, 70), max_size=3)}), max_size=3),
        },
    )

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(header=headers, bufs=st.lists(st.binary(max_size=64), max_size=3))
    def fuzz(header, bufs):
        if header.get("type") == "shutdown":
            return
        peer.send(signed(header, bufs, server.key))
        reply = peer.recv(timeout=5)
        assert reply is not None
        assert reply.type in {"error", "pong", "welcome"}, reply.type
        if reply.type == "error":
            assert reply.content["code"] in {"malformed", "bad_input", "unknown_type", "unknown_job", "too_large"}

    fuzz()
    a_job_still_succeeds(server, connect)
