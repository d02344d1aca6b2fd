"""The wire format on its own (no sockets): encode/decode, signatures, and every rejection."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from server_helpers import make_clip

from dreamor.server import protocol
from dreamor.server.protocol import Message, ProtocolError

KEY = b"k" * 32
SERVER_DIR = Path(protocol.__file__).parent


def roundtrip(msg: Message, key: bytes = KEY) -> Message:
    return protocol.decode([bytes(f) for f in protocol.encode(msg, key)], key)


def code_of(frames, key: bytes = KEY, **kw) -> str:
    with pytest.raises(ProtocolError) as info:
        protocol.decode(frames, key, **kw)
    assert len(info.value.message) > 20  # a sentence, not just a code
    return info.value.code


def resign(header: dict, buffers: list[bytes], key: bytes = KEY) -> list[bytes]:
    raw = json.dumps(header).encode()
    return [protocol.sign(key, raw, buffers).encode(), raw, *buffers]


def submit_frames(frames: int = 10) -> tuple[dict, list[bytes]]:
    clip = make_clip(frames)
    wire = [bytes(f) for f in protocol.encode(protocol.submit_message(**clip), KEY)]
    return json.loads(wire[1]), wire[2:]


def test_shared_modules_import_only_stdlib_numpy_zmq_and_each_other(build_addon):
    """The add-on ships verbatim copies of the wire modules: no torch, no dreamor.*."""
    allowed = {"__future__", "hashlib", "hmac", "json", "math", "os", "secrets", "uuid", "dataclasses", "typing",
               "collections", "time", "tempfile", "pathlib", "numpy", "zmq"}
    siblings = {Path(f).stem for f in build_addon.WIRE_FILES}
    assert {"protocol", "client", "envelope", "messages", "connection"} <= siblings
    for name in build_addon.WIRE_FILES:
        tree = ast.parse((SERVER_DIR / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: only siblings
                    assert node.module is None or node.module in siblings, (name, node.module)
                    continue
                mods = [node.module.split(".")[0]]
            else:
                continue
            assert set(mods) <= allowed, (name, mods)


def test_roundtrip_keeps_every_field_and_array_exactly():
    bufs = {
        "a": np.arange(12, dtype=np.float64).reshape(3, 4),
        "b": np.array([[True, False]]),
        "c": np.arange(5, dtype=np.float32),
        "d": np.zeros((0, 3)),
        "e": np.arange(3, dtype=">f8"),  # big-endian goes out little-endian
    }
    msg = Message("partial", {"start": 3, "nested": {"x": [1, "y"]}}, bufs, job_id="j1", reply_to="r1")
    out = roundtrip(msg)
    assert (out.type, out.content, out.job_id, out.reply_to, out.msg_id) == ("partial", msg.content, "j1", "r1", msg.msg_id)
    assert list(out.buffers) == list(bufs)
    for name, arr in bufs.items():
        assert out.buffers[name].shape == arr.shape
        np.testing.assert_array_equal(out.buffers[name], arr)
    assert out.buffers["e"].dtype.str == "<f8"


def test_header_declares_each_buffer_and_signature_covers_them():
    frames = protocol.encode(Message("ping", {}, {"x": np.ones((2, 3), np.float32)}), KEY)
    header = json.loads(bytes(frames[1]))
    assert header["protocol"] == 1 and header["type"] == "ping"
    assert header["buffers"] == [{"name": "x", "dtype": "<f4", "shape": [2, 3]}]
    import hashlib
    import hmac

    assert bytes(frames[0]).decode() == hmac.new(KEY, bytes(frames[1]) + bytes(frames[2]), hashlib.sha256).hexdigest()


def test_wrong_key_and_tampered_buffer_are_bad_signature():
    frames = [bytes(f) for f in protocol.encode(Message("ping", {}, {"x": np.ones(4)}), KEY)]
    assert code_of(frames, b"other key") == "bad_signature"
    tampered = frames[:2] + [frames[2][:-1] + b"\x01"]
    assert code_of(tampered) == "bad_signature"
    with pytest.raises(ProtocolError) as info:
        protocol.decode(frames, b"other key")
    assert info.value.reply_to == json.loads(frames[1])["msg_id"]  # the client can match the error


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_other_protocol_version_is_bad_version_signed_or_not(version):
    header, bufs = submit_frames()
    header["protocol"] = version
    assert code_of(resign(header, bufs)) == "bad_version"
    assert code_of(resign(header, bufs, key=b"old key")) == "bad_version"
    with pytest.raises(ProtocolError, match="must be the integer 1" if version == "1" else "update the add-on or the backend"):
        protocol.decode(resign(header, bufs), KEY)


def test_truncated_messages_are_malformed():
    header, bufs = submit_frames()
    assert code_of([]) == "malformed"
    assert code_of([b"sig"]) == "malformed"
    assert code_of(resign(header, bufs[:-1])) == "malformed"  # a buffer frame missing
    header["buffers"] = header["buffers"][:-1]
    assert code_of(resign(header, bufs)) == "malformed"  # a buffer spec missing


def test_wrong_buffer_sizes_are_malformed_with_numbers():
    header, bufs = submit_frames()
    bufs[0] = bufs[0][:-8]
    with pytest.raises(ProtocolError, match=r"buffer 'trans' holds 232 bytes but its header declares shape \(10, 3\)") as info:
        protocol.decode(resign(header, bufs), KEY)
    assert info.value.code == "malformed"


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h["buffers"][0].update(dtype="object"),
        lambda h: h["buffers"][0].update(dtype=">f8"),
        lambda h: h["buffers"][0].update(dtype="V8"),
        lambda h: h["buffers"][0].update(shape=[-1, 3]),
        lambda h: h["buffers"][0].update(shape=[1, 1, 1, 1, 30]),
        lambda h: h["buffers"][0].update(shape="10,3"),
        lambda h: h["buffers"][0].update(name=""),
        lambda h: h["buffers"][1].update(name="trans"),
        lambda h: h.update(content=[1, 2]),
        lambda h: h.update(type=7),
        lambda h: h.pop("msg_id"),
        lambda h: h.update(buffers={"a": 1}),
    ],
)
def test_bad_header_fields_are_malformed(change):
    header, bufs = submit_frames()
    change(header)
    assert code_of(resign(header, bufs)) == "malformed"


def test_header_that_is_not_json_is_malformed():
    for raw in (b"\xff\xfe", b"[1, 2]", b"{\"a\": NaN}", b"[" * 5000 + b"]" * 5000):
        assert code_of([protocol.sign(KEY, raw, []).encode(), raw]) == "malformed"


def test_huge_header_and_too_many_buffers_and_big_messages_are_too_large():
    raw = json.dumps({"pad": "x" * protocol.MAX_HEADER_BYTES}).encode()
    assert code_of([protocol.sign(KEY, raw, []).encode(), raw]) == "too_large"
    assert code_of([b"s", b"{}"] + [b""] * (protocol.MAX_BUFFERS + 1)) == "too_large"
    frames = [bytes(f) for f in protocol.encode(Message("ping", {}, {"x": np.ones(1000)}), KEY)]
    assert code_of(frames, max_bytes=4000) == "too_large"


# ---------------------------------------------------------------------------- submit checks
def submit(**changes) -> Message:
    clip = {**make_clip(12), **changes}
    options = clip.pop("options", {})
    return protocol.decode([bytes(f) for f in protocol.encode(protocol.submit_message(**clip, **options), KEY)], KEY)


def test_check_submit_normalises_arrays_and_fills_options():
    arrays, fps, options = protocol.check_submit(submit(trans=make_clip(12)["trans"].astype(np.float32)))
    assert fps == 30.0 and options == {"preset": "default", "keep_visible": True, "noisy": False, "lock_feet": False, "samples": 1,
                                   "device": None}
    assert arrays["trans"].dtype == np.float64 and arrays["trans"].flags.writeable
    assert arrays["visible"].dtype == bool and arrays["visible"].shape == (12, 22)
    arrays, _, _ = protocol.check_submit(submit(visible=None))
    assert arrays["visible"].all() and "pinned" not in arrays and "confidence" not in arrays


def test_pins_and_confidence_travel_with_a_submit():
    pinned = np.zeros((12, 22), bool)
    pinned[5, 7] = True
    conf = np.full((12, 22), 0.5)
    arrays, _, _ = protocol.check_submit(submit(pinned=pinned, confidence=conf))
    assert (arrays["pinned"] == pinned).all() and arrays["pinned"].dtype == bool
    assert np.allclose(arrays["confidence"], 0.5) and arrays["confidence"].dtype == np.float64


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"trans": np.full((12, 3), np.nan)}, "'trans' holds NaN"),
        ({"pose_body": np.full((12, 63), np.inf)}, "'pose_body' holds NaN or infinite"),
        ({"trans": np.full((12, 3), 1e9)}, "beyond"),
        ({"pose_body": np.zeros((11, 63))}, r"'pose_body' has shape \(11, 63\), expected \(12, 63\)"),
        ({"rest_joints": np.zeros((24, 3))}, r"expected \(22, 3\)"),
        ({"visible": np.ones((12, 21), bool)}, "'visible' has shape"),
        ({"trans": np.zeros((12, 3), np.int64)}, "send float32 or float64"),
        ({"trans": np.zeros((0, 3)), "root_orient": np.zeros((0, 3)), "pose_body": np.zeros((0, 63)), "visible": None}, "0 frames"),
        ({"fps": 0.0}, "fps is 0.0"),
        ({"fps": float("inf")}, None),
        ({"options": {"preset": "ultra"}}, "preset 'ultra' is not one of"),
        ({"options": {"iterations": 5}}, r"unknown option\(s\) \['iterations'\]"),
        ({"options": {"keep_visible": "yes"}}, "keep_visible must be true or false"),
        ({"options": {"noisy": 1}}, "noisy must be true or false"),
        ({"options": {"samples": 0}}, "samples must be a whole number from 1 to 8"),
        ({"options": {"samples": 9}}, "samples must be a whole number from 1 to 8"),
        ({"options": {"samples": 2.5}}, "samples must be a whole number"),
        ({"options": {"samples": True}}, "samples must be a whole number"),
        ({"confidence": np.full((12, 22), 1.5)}, r"'confidence' must lie in \[0, 1\]"),
        ({"confidence": np.ones((12, 21))}, "'confidence' has shape"),
    ],
)
def test_check_submit_rejects_with_a_sentence(changes, pattern):
    try:
        msg = submit(**changes)
    except ValueError:  # fps inf cannot even be encoded (JSON has no Infinity)
        assert pattern is None
        return
    with pytest.raises(ProtocolError, match=pattern) as info:
        protocol.check_submit(msg)
    assert info.value.code == "bad_input" and info.value.reply_to == msg.msg_id


def test_check_submit_enforces_the_frame_limit(monkeypatch):
    from dreamor.server import messages

    monkeypatch.setattr(messages, "MAX_CLIP_FRAMES", 10)  # the module that checks it
    with pytest.raises(ProtocolError, match="refines 1 to 10 frames"):
        protocol.check_submit(submit())


def test_visible_bytes_other_than_0_1_are_rejected():
    msg = submit()
    msg.buffers["visible"] = np.full((12, 22), 7, np.uint8).view(bool)
    with pytest.raises(ProtocolError, match="'visible' must be bool"):
        protocol.check_submit(msg)


def test_missing_and_unknown_arrays_are_named():
    msg = submit()
    del msg.buffers["pose_body"]
    with pytest.raises(ProtocolError, match=r"missing array\(s\) \['pose_body'\]"):
        protocol.check_submit(msg)
    msg = submit()
    msg.buffers["betas"] = np.zeros(10)
    with pytest.raises(ProtocolError, match=r"unknown array\(s\) \['betas'\]"):
        protocol.check_submit(msg)


def test_json_safe_metrics():
    out = protocol.json_safe({"a": np.float32(1.5), "b": float("nan"), "c": np.int64(3), "d": "x", "e": True, "f": None})
    assert out == {"a": 1.5, "b": None, "c": 3, "d": "x", "e": True, "f": None}
    json.dumps(out, allow_nan=False)


def test_connection_file_checks(tmp_path):
    info = protocol.ConnectionInfo("127.0.0.1", 5555, b"\x01" * 32, pid=7)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(info.to_json()))
    assert protocol.read_connection_file(path) == info
    with pytest.raises(ValueError, match="is the DREAMoR backend running"):
        protocol.read_connection_file(tmp_path / "missing.json")
    path.write_text(json.dumps({**info.to_json(), "protocol": 2}))
    with pytest.raises(ValueError, match="protocol 2"):
        protocol.read_connection_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="restart the backend"):
        protocol.read_connection_file(path)


# ---------------------------------------------------------------------------- properties
wire_dtypes = st.sampled_from([np.float32, np.float64, np.bool_, np.uint8, np.int32, np.int64])


@settings(max_examples=60, deadline=None)
@given(arrays=st.lists(hnp.arrays(wire_dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)), max_size=5),
       content=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8) | st.booleans(), max_size=5))
def test_property_roundtrip(arrays, content):
    msg = Message("result", content, {f"b{i}": a for i, a in enumerate(arrays)}, job_id="j")
    out = roundtrip(msg)
    assert out.content == content
    for name, arr in msg.buffers.items():
        assert out.buffers[name].dtype == arr.dtype and out.buffers[name].shape == arr.shape
        np.testing.assert_array_equal(out.buffers[name], arr)


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(st.binary(max_size=200), max_size=6))
def test_property_random_frames_raise_only_protocol_error(frames):
    with pytest.raises(ProtocolError) as info:
        protocol.decode(frames, KEY)
    assert info.value.code in {"malformed", "too_large", "bad_signature", "bad_version"}
    assert len(info.value.message) > 20


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_property_any_single_byte_flip_is_rejected(data):
    frames = [bytearray(f) for f in protocol.encode(Message("ping", {"a": 1}, {"x": np.arange(4.0)}), KEY)]
    i = data.draw(st.integers(0, len(frames) - 1))
    j = data.draw(st.integers(0, len(frames[i]) - 1))
    frames[i][j] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ProtocolError):
        protocol.decode([bytes(f) for f in frames], KEY)


def test_output_arrays_with_samples_and_doubt_are_checked():
    """A result may carry the doubt (T, 22) and the completions (N, T, ...), all sample arrays or none, one N."""
    t = 5
    base = {"trans": np.zeros((t, 3)), "root_orient": np.zeros((t, 3)), "pose_body": np.zeros((t, 63)),
            "joints": np.zeros((t, 22, 3)), "contacts": np.zeros((t, 9))}
    samples = {"samples": np.zeros((3, t, 22, 3)), "sample_trans": np.zeros((3, t, 3)),
               "sample_root_orient": np.zeros((3, t, 3)), "sample_pose_body": np.zeros((3, t, 63)),
               "sample_contacts": np.zeros((3, t, 9))}
    protocol.check_output_arrays({**base, "uncertainty": np.zeros((t, 22)), **samples}, t)
    with pytest.raises(ValueError, match="missing beside"):
        protocol.check_output_arrays({**base, "samples": samples["samples"]}, t)
    with pytest.raises(ValueError, match="sample_trans' has shape"):
        protocol.check_output_arrays({**base, **samples, "sample_trans": np.zeros((2, t, 3))}, t)
    with pytest.raises(ValueError, match="uncertainty' has shape"):
        protocol.check_output_arrays({**base, "uncertainty": np.zeros((t, 21))}, t)
    with pytest.raises(ValueError, match="sample_contacts' must lie in"):
        protocol.check_output_arrays({**base, **samples, "sample_contacts": np.full((3, t, 9), 2.0)}, t)
    with pytest.raises(ValueError, match="unknown output array"):
        protocol.check_output_arrays({**base, "bogus": np.zeros((t, 1))}, t)
