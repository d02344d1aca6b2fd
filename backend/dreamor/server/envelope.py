"""The wire's envelope: a message as HMAC-signed multipart ZeroMQ frames (DESIGN.md, docs/protocol.md).

A message is the frames ``[signature, header, buffer...]``:

- ``header``: UTF-8 JSON ``{"protocol": 1, "type", "msg_id", "job_id"?, "reply_to"?,
  "content": {...}, "buffers": [{"name", "dtype", "shape"}, ...]}``, one buffer spec per
  raw frame that follows, in order. ``dtype`` is numpy's little-endian string
  (``"<f8"``, ``"<f4"``, ``"|b1"``, ``"|u1"``, ``"<i4"``, ``"<i8"``; ``"float64"`` etc. too).
- ``signature``: hex HMAC-SHA256 of the header bytes followed by every buffer's bytes, keyed
  with the connection file's ``key`` string encoded as UTF-8 bytes (Jupyter's convention: the
  string itself, not the bytes its hex digits spell). Never pickle.

:class:`Session` holds the key; every way a message can be wrong raises :class:`ProtocolError` with a code
and a sentence a user can act on. What the messages say is ``messages.py``. Standard library and numpy only
(the Blender add-on ships a verbatim copy).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

PROTOCOL_VERSION = 1
SIGNATURE_SCHEME = "hmac-sha256"

#: Limits of one message. A 100,000-frame float64 result is about 115 MB.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_BUFFERS = 16

#: Error codes (``error`` reply content: ``{"code", "message"}``).
BAD_SIGNATURE = "bad_signature"
BAD_VERSION = "bad_version"
MALFORMED = "malformed"
TOO_LARGE = "too_large"
BAD_INPUT = "bad_input"
UNKNOWN_TYPE = "unknown_type"
UNKNOWN_JOB = "unknown_job"
JOB_FINISHED = "job_finished"
BUSY = "busy"
JOB_FAILED = "job_failed"
INTERNAL = "internal"
SERVER_STOPPED = "server_stopped"

_DTYPES = {"<f4", "<f8", "|b1", "|u1", "<i4", "<i8"}
_NAMES = {"float32": "<f4", "float64": "<f8", "bool": "|b1", "uint8": "|u1", "int32": "<i4", "int64": "<i8"}



class ProtocolError(Exception):
    """A message that cannot be accepted. ``code`` is one of the codes above."""

    def __init__(self, code: str, message: str, reply_to: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reply_to = reply_to


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Message:
    """One decoded message. ``buffers`` are numpy arrays (read-only views when decoded)."""

    type: str
    content: dict = field(default_factory=dict)
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    job_id: str | None = None
    reply_to: str | None = None
    msg_id: str = field(default_factory=new_id)
    protocol: int = PROTOCOL_VERSION


def error_message(code: str, message: str, reply_to: str | None = None, job_id: str | None = None) -> Message:
    """The ``error`` reply for a request (``reply_to``: its msg_id, when it could be read)."""
    return Message("error", {"code": code, "message": message}, reply_to=reply_to, job_id=job_id)


# ---------------------------------------------------------------------------- encode
def wire_array(arr: np.ndarray) -> np.ndarray:
    """The array as it travels: a little-endian dtype the wire allows, C-contiguous (TypeError otherwise)."""
    arr = np.asarray(arr)
    if arr.dtype.str not in _DTYPES:
        if arr.dtype.kind == "f":
            arr = arr.astype("<f8")
        elif arr.dtype.kind in "iu" and arr.dtype.newbyteorder("<").str in _DTYPES:
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        else:
            raise TypeError(f"cannot send an array of dtype {arr.dtype}; use float32/float64, bool, uint8 or int32/64")
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d arrays 1-d)


def new_key() -> bytes:
    """A fresh signing key: 64 random hex digits, as the bytes of that string (see ConnectionInfo)."""
    return secrets.token_hex(32).encode("ascii")


def sign(key: bytes, header: bytes, buffers: Iterable) -> str:
    """Hex HMAC-SHA256 of the header bytes followed by every buffer's bytes."""
    mac = hmac.new(key, header, hashlib.sha256)
    for buf in buffers:
        mac.update(buf)
    return mac.hexdigest()


def encode(msg: Message, key: bytes) -> list:
    """Message -> frames ``[signature, header, buffer...]`` (buffers are zero-copy array views)."""
    arrays = [wire_array(a) for a in msg.buffers.values()]
    header = {
        "protocol": msg.protocol,
        "type": msg.type,
        "msg_id": msg.msg_id,
        "job_id": msg.job_id,
        "reply_to": msg.reply_to,
        "content": msg.content,
        "buffers": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in zip(msg.buffers, arrays)],
    }
    header_bytes = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    views = [memoryview(a).cast("B") if a.size else b"" for a in arrays]
    return [sign(key, header_bytes, views).encode(), header_bytes, *views]


# ---------------------------------------------------------------------------- decode
def _nbytes(frame) -> int:
    return memoryview(frame).nbytes


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _parse_header(raw) -> dict:
    try:
        header = json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(MALFORMED, "the message header is not valid UTF-8 JSON; is the add-on the same version as the backend?") from None
    if not isinstance(header, dict):
        raise ProtocolError(MALFORMED, "the message header must be a JSON object")
    return header


def _str_field(header: dict, key: str, required: bool, reply_to: str | None) -> str | None:
    value = header.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise ProtocolError(MALFORMED, f"the message header needs '{key}' as a short string, got {value!r:.60}", reply_to)
    return value


def parse_dtype(name: Any) -> np.dtype:
    """A wire dtype name -> numpy dtype; ValueError for anything not allowed."""
    if not isinstance(name, str) or len(name) > 16:
        raise ValueError(f"dtype {name!r:.40} is not allowed")
    name = _NAMES.get(name, name)
    if name not in _DTYPES:
        raise ValueError(f"dtype {name!r} is not allowed (use one of {sorted(_DTYPES)}, little-endian)")
    return np.dtype(name)


def decode(frames: list, key: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Frames ``[signature, header, buffer...]`` (bytes-like) -> Message, or ProtocolError.

    Checks, in order: frame count and sizes (``malformed``/``too_large``), signature
    (``bad_signature``; ``bad_version`` if the header names another protocol), version,
    header fields and buffer specs (``malformed``). The type is not checked here.
    """
    if len(frames) < 2:
        raise ProtocolError(MALFORMED, f"a message needs at least 2 frames (signature, header), got {len(frames)}")
    if len(frames) > MAX_BUFFERS + 2:
        raise ProtocolError(TOO_LARGE, f"a message may carry at most {MAX_BUFFERS} buffers, got {len(frames) - 2}")
    sizes = [_nbytes(f) for f in frames]
    if sizes[1] > MAX_HEADER_BYTES:
        raise ProtocolError(TOO_LARGE, f"the message header is {sizes[1]} bytes; the limit is {MAX_HEADER_BYTES}")
    if sum(sizes) > max_bytes:
        raise ProtocolError(TOO_LARGE, f"the message is {sum(sizes) / 2**20:.1f} MiB; this backend accepts at most {max_bytes / 2**20:.1f} MiB (refine a shorter range)")
    signature, header_raw, bufs = frames[0], frames[1], frames[2:]
    expected = sign(key, bytes(header_raw), bufs)
    if sizes[0] != len(expected) or not hmac.compare_digest(bytes(signature), expected.encode()):
        reply_to = None
        try:
            header = _parse_header(header_raw)
            reply_to = header.get("msg_id") if isinstance(header.get("msg_id"), str) else None
            version = header.get("protocol")
        except ProtocolError:
            version = PROTOCOL_VERSION
        if version != PROTOCOL_VERSION:
            raise ProtocolError(BAD_VERSION, _version_sentence(version), reply_to)
        raise ProtocolError(
            BAD_SIGNATURE,
            "the message signature does not match this backend's key; reconnect using the backend's current connection file",
            reply_to,
        )
    header = _parse_header(header_raw)
    msg_id = header.get("msg_id")
    reply_to = msg_id if isinstance(msg_id, str) and 0 < len(msg_id) <= 128 else None
    if header.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(BAD_VERSION, _version_sentence(header.get("protocol")), reply_to)
    msg_type = _str_field(header, "type", True, reply_to)
    msg_id = _str_field(header, "msg_id", True, reply_to)
    job_id = _str_field(header, "job_id", False, reply_to)
    in_reply = _str_field(header, "reply_to", False, reply_to)
    content = header.get("content", {})
    specs = header.get("buffers", [])
    if not isinstance(content, dict):
        raise ProtocolError(MALFORMED, "the message 'content' must be a JSON object", reply_to)
    if not isinstance(specs, list) or len(specs) != len(bufs):
        n = len(specs) if isinstance(specs, list) else "no list of"
        raise ProtocolError(MALFORMED, f"the header describes {n} buffers but {len(bufs)} buffer frames followed (truncated message?)", reply_to)
    buffers: dict[str, np.ndarray] = {}
    for spec, buf, size in zip(specs, bufs, sizes[2:]):
        name, arr = _decode_buffer(spec, buf, size, reply_to)
        if name in buffers:
            raise ProtocolError(MALFORMED, f"buffer name '{name}' appears twice", reply_to)
        buffers[name] = arr
    return Message(msg_type, content, buffers, job_id=job_id, reply_to=in_reply, msg_id=msg_id)


def _version_sentence(version: Any) -> str:
    if isinstance(version, str) and version.strip() == str(PROTOCOL_VERSION):
        return f"the header's 'protocol' must be the integer {PROTOCOL_VERSION}, not {version!r:.20} (a {type(version).__name__})"
    return (
        f"this backend speaks protocol {PROTOCOL_VERSION} but the message uses protocol {version!r:.20}; "
        "update the add-on or the backend so that their versions match"
    )


def _decode_buffer(spec: Any, buf, size: int, reply_to: str | None) -> tuple[str, np.ndarray]:
    if not isinstance(spec, dict):
        raise ProtocolError(MALFORMED, "each entry of 'buffers' must be an object {name, dtype, shape}", reply_to)
    name, shape = spec.get("name"), spec.get("shape")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise ProtocolError(MALFORMED, f"buffer name {name!r:.60} must be a short string", reply_to)
    try:
        dtype = parse_dtype(spec.get("dtype"))
    except ValueError as exc:
        raise ProtocolError(MALFORMED, f"buffer '{name}': {exc}", reply_to) from None
    if (
        not isinstance(shape, list)
        or len(shape) > 4
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40 for s in shape)
    ):
        raise ProtocolError(MALFORMED, f"buffer '{name}' has shape {shape!r:.60}; expected a list of at most 4 non-negative ints", reply_to)
    expected = math.prod(shape) * dtype.itemsize
    if expected != size:
        raise ProtocolError(
            MALFORMED,
            f"buffer '{name}' holds {size} bytes but its header declares shape {tuple(shape)} of {dtype.str} ({expected} bytes)",
            reply_to,
        )
    arr = np.frombuffer(buf, dtype=dtype) if size else np.empty(0, dtype)
    return name, arr.reshape(shape)


class Session:
    """The signing side of a connection (Jupyter's Session): holds the key, turns messages into frames and back."""

    def __init__(self, key: bytes):
        self.key = key

    def encode(self, msg: Message) -> list:
        return encode(msg, self.key)

    def decode(self, frames: list, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
        return decode(frames, self.key, max_bytes=max_bytes)
