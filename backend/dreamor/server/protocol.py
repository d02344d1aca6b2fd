"""The backend <-> add-on wire format: HMAC-signed multipart ZeroMQ messages (DESIGN.md).

A message is the frames ``[signature, header, buffer...]``:

- ``header``: UTF-8 JSON ``{"protocol": 1, "type", "msg_id", "job_id"?, "reply_to"?,
  "content": {...}, "buffers": [{"name", "dtype", "shape"}, ...]}``, one buffer spec per
  raw frame that follows, in order. ``dtype`` is numpy's little-endian string
  (``"<f8"``, ``"<f4"``, ``"|b1"``, ``"|u1"``, ``"<i4"``, ``"<i8"``; ``"float64"`` etc. too).
- ``signature``: hex HMAC-SHA256 of the header bytes followed by every buffer's bytes, keyed
  with the connection file's ``key`` string encoded as UTF-8 bytes (Jupyter's convention: the
  string itself, not the bytes its hex digits spell). Never pickle. docs/protocol.md has it all.

Messages (``->`` client to backend, ``<-`` back; replies carry ``reply_to``, job messages ``job_id``):

-> hello {protocol, client}                 <- welcome {protocol, version, pid, devices, default_device, models, limits}
-> ping {}                                  <- pong {busy, running: [job ids], queued}
-> submit {fps, options: {preset, keep_visible, noisy, lock_feet, device}}
   buffers trans (T,3), root_orient (T,3), pose_body (T,63), rest_joints (22,3); optional visible,
   pinned (T,22) bool and confidence (T,22) in [0, 1]
                                            <- accepted {job_id, position (0: runs now), device, frames}
                                            <- progress {stage, fraction 0..1, energies, position, elapsed_s}
                                               at least once a second until the job ends
                                            <- partial {start, stop} + OUTPUT_ARRAYS for frames [start, stop)
                                            <- result {frames, metrics, elapsed_s} + OUTPUT_ARRAYS
-> cancel {job_id} (job_id in the header)   <- cancelled {job_id}
-> shutdown {}                              <- goodbye {}
any request                                 <- error {code, message}

Every way a message can be wrong raises :class:`ProtocolError` with a code and a sentence
a user can act on; the server turns it into an ``error`` reply. :func:`check_submit`
validates a ``submit`` (clip arrays, fps, options) the same way on both sides.

Standard library and numpy only: the Blender add-on ships a verbatim copy of this file.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

PROTOCOL_VERSION = 1
SIGNATURE_SCHEME = "hmac-sha256"

#: Limits. A 100,000-frame float64 result is about 115 MB.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_BUFFERS = 16
MAX_CLIP_FRAMES = 100_000
MAX_ABS_VALUE = 1e6
MIN_FPS, MAX_FPS = 1.0, 1000.0
NUM_JOINTS = 22
NUM_CONTACTS = 9

#: What a client may send, and what the server sends back.
REQUEST_TYPES = ("hello", "ping", "submit", "cancel", "shutdown")
REPLY_TYPES = ("welcome", "pong", "accepted", "progress", "partial", "result", "cancelled", "goodbye", "error")

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

#: Submit options and their defaults (``device`` None: the backend's own device).
PRESETS = ("fast", "default", "best")
OPTION_DEFAULTS: dict[str, Any] = {"preset": "default", "keep_visible": True, "noisy": False, "lock_feet": False,
                                   "device": None}

#: Per-frame arrays of a submit and of a result/partial: name -> shape after the frame axis.
INPUT_ARRAYS: dict[str, tuple[int, ...]] = {"trans": (3,), "root_orient": (3,), "pose_body": (63,), "visible": (NUM_JOINTS,),
                                            "pinned": (NUM_JOINTS,), "confidence": (NUM_JOINTS,)}
#: Optional per-frame marks of a submit: visible and pinned are flags, confidence in [0, 1].
OPTIONAL_INPUTS = ("visible", "pinned", "confidence")
OUTPUT_ARRAYS: dict[str, tuple[int, ...]] = {
    "trans": (3,),
    "root_orient": (3,),
    "pose_body": (63,),
    "joints": (NUM_JOINTS, 3),
    "contacts": (NUM_CONTACTS,),
}

_DTYPES = {"<f4", "<f8", "|b1", "|u1", "<i4", "<i8"}
_FLOAT_DTYPES = {"<f4", "<f8"}
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
def _wire_array(arr: np.ndarray) -> np.ndarray:
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
    arrays = [_wire_array(a) for a in msg.buffers.values()]
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


# ---------------------------------------------------------------------------- submit
def submit_message(
    trans: np.ndarray,
    root_orient: np.ndarray,
    pose_body: np.ndarray,
    rest_joints: np.ndarray,
    fps: float,
    visible: np.ndarray | None = None,
    pinned: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    **options: Any,
) -> Message:
    """Build a ``submit``: trans (T,3) m, root_orient (T,3) and pose_body (T,63) axis-angle,
    rest_joints (22,3) m, visible (T,22) bool (None: all visible), pinned (T,22) bool (joints the animator
    fixed), confidence (T,22) in [0, 1] (None: all 1), fps, options."""
    buffers = {"trans": trans, "root_orient": root_orient, "pose_body": pose_body, "rest_joints": rest_joints}
    for name, arr in (("visible", visible), ("pinned", pinned)):
        if arr is not None:
            buffers[name] = np.asarray(arr, dtype=bool)
    if confidence is not None:
        buffers["confidence"] = np.asarray(confidence, dtype=np.float32)
    return Message("submit", {"fps": float(fps), "options": options}, buffers)


def check_submit(msg: Message) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
    """Validate a ``submit`` -> (arrays, fps, options), or ProtocolError ``bad_input``.

    arrays: trans (T,3), root_orient (T,3), pose_body (T,63), rest_joints (22,3) as
    writable float64 copies and visible (T,22) bool (all True when absent); options: every
    key of OPTION_DEFAULTS, filled with defaults.
    """

    def bad(text: str) -> ProtocolError:
        return ProtocolError(BAD_INPUT, text, msg.msg_id)

    needed = ("trans", "root_orient", "pose_body", "rest_joints")
    missing = [n for n in needed if n not in msg.buffers]
    if missing:
        raise bad(
            f"the submit is missing array(s) {missing}; it needs trans (T,3), root_orient (T,3), "
            "pose_body (T,63), rest_joints (22,3) and optionally visible, pinned, confidence (T,22)"
        )
    unknown = sorted(set(msg.buffers) - set(needed) - set(OPTIONAL_INPUTS))
    if unknown:
        raise bad(f"the submit carries unknown array(s) {unknown}; known arrays are {list(needed) + list(OPTIONAL_INPUTS)}")
    frames = msg.buffers["trans"].shape[0] if msg.buffers["trans"].ndim else 0
    if not 1 <= frames <= MAX_CLIP_FRAMES:
        raise bad(f"the clip has {frames} frames; this backend refines 1 to {MAX_CLIP_FRAMES} frames at a time (refine a shorter range)")
    arrays: dict[str, np.ndarray] = {}
    for name, arr in msg.buffers.items():
        shape = (NUM_JOINTS, 3) if name == "rest_joints" else (frames, *INPUT_ARRAYS[name])
        if arr.shape != shape:
            raise bad(f"array '{name}' has shape {arr.shape}, expected {shape} (all per-frame arrays need the same number of frames)")
        if name in ("visible", "pinned"):
            if arr.dtype.str not in ("|b1", "|u1") or (arr.size and arr.view(np.uint8).max() > 1):
                raise bad(f"array '{name}' must be bool (or uint8 holding 0/1), one flag per frame and joint")
            arrays[name] = arr.astype(bool)
            continue
        if arr.dtype.str not in _FLOAT_DTYPES:
            raise bad(f"array '{name}' has dtype {arr.dtype.str}; send float32 or float64")
        if not np.all(np.isfinite(arr)):
            raise bad(f"array '{name}' holds NaN or infinite values; fix or delete those keyframes and try again")
        if arr.size and np.abs(arr).max() > MAX_ABS_VALUE:
            raise bad(f"array '{name}' holds values beyond ±{MAX_ABS_VALUE:g}; are the units metres and radians?")
        if name == "confidence" and arr.size and not (arr.min() >= 0 and arr.max() <= 1):
            raise bad("array 'confidence' must lie in [0, 1] (0 hidden, 1 trusted, between: noisy)")
        arrays[name] = np.array(arr, dtype=np.float64)
    arrays.setdefault("visible", np.ones((frames, NUM_JOINTS), dtype=bool))
    fps = msg.content.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not MIN_FPS <= fps <= MAX_FPS:
        raise bad(f"fps is {fps!r:.30}; send the scene frame rate as a number between {MIN_FPS:g} and {MAX_FPS:g}")
    return arrays, float(fps), check_options(msg.content.get("options", {}), msg.msg_id)


def check_options(options: Any, reply_to: str | None = None) -> dict[str, Any]:
    """Validate submit options -> every known option, defaults filled in; ProtocolError ``bad_input``."""
    if not isinstance(options, dict):
        raise ProtocolError(BAD_INPUT, "'options' must be a JSON object", reply_to)
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise ProtocolError(BAD_INPUT, f"unknown option(s) {unknown}; known options are {list(OPTION_DEFAULTS)}", reply_to)
    out = {**OPTION_DEFAULTS, **options}
    if out["preset"] not in PRESETS:
        raise ProtocolError(BAD_INPUT, f"preset {out['preset']!r:.30} is not one of {list(PRESETS)}", reply_to)
    for flag in ("keep_visible", "noisy", "lock_feet"):
        if not isinstance(out[flag], bool):
            raise ProtocolError(BAD_INPUT, f"{flag} must be true or false, got {out[flag]!r:.30}", reply_to)
    if out["device"] is not None and (not isinstance(out["device"], str) or len(out["device"]) > 32):
        raise ProtocolError(BAD_INPUT, f"device must be a name such as 'cpu' or 'cuda', got {out['device']!r:.30}", reply_to)
    return out


def check_output_arrays(arrays: Mapping[str, np.ndarray], frames: int) -> None:
    """Raise ValueError unless ``arrays`` holds every OUTPUT_ARRAYS entry for ``frames``
    frames, finite, with contacts in [0, 1]."""
    for name, tail in OUTPUT_ARRAYS.items():
        arr = arrays.get(name)
        if arr is None:
            raise ValueError(f"output array '{name}' is missing")
        arr = np.asarray(arr)
        if arr.shape != (frames, *tail):
            raise ValueError(f"output array '{name}' has shape {arr.shape}, expected {(frames, *tail)}")
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
            raise ValueError(f"output array '{name}' must be finite floats (dtype {arr.dtype})")
    contacts = np.asarray(arrays["contacts"])
    if contacts.size and (contacts.min() < 0 or contacts.max() > 1):
        raise ValueError("output 'contacts' must lie in [0, 1]")


def json_safe(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A flat dict of numbers/strings/bools for a message; non-finite numbers become None."""
    out: dict[str, Any] = {}
    for k, v in (values or {}).items():
        if isinstance(v, (bool, str)) or v is None:
            out[str(k)] = v
        elif isinstance(v, (int, np.integer)):
            out[str(k)] = int(v)
        else:
            try:
                f = float(v)
            except (TypeError, ValueError):
                out[str(k)] = str(v)
                continue
            out[str(k)] = f if math.isfinite(f) else None
    return out


# ---------------------------------------------------------------------------- connection file
@dataclass(frozen=True)
class ConnectionInfo:
    """Where the backend listens and the key that signs its messages (the connection file).
    ``key``: the HMAC key, the UTF-8 bytes of the file's ``key`` string."""

    ip: str
    port: int
    key: bytes
    pid: int | None = None
    transport: str = "tcp"

    @property
    def url(self) -> str:
        return f"{self.transport}://{self.ip}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "ip": self.ip,
            "port": self.port,
            "key": self.key.decode("utf-8"),
            "signature_scheme": SIGNATURE_SCHEME,
            "pid": self.pid,
            "protocol": PROTOCOL_VERSION,
        }


def read_connection_file(path: str | os.PathLike) -> ConnectionInfo:
    """Read and check a connection file; ValueError with a sentence a user can act on."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"no connection file at {path}; is the DREAMoR backend running?") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the connection file {path} ({exc}); restart the backend") from None
    try:
        if data.get("signature_scheme") != SIGNATURE_SCHEME:
            raise ValueError(f"signature scheme {data.get('signature_scheme')!r} is not {SIGNATURE_SCHEME!r}")
        if data.get("protocol") != PROTOCOL_VERSION:
            raise ValueError(f"the backend speaks protocol {data.get('protocol')!r} but this client speaks {PROTOCOL_VERSION}; update one of them")
        if data.get("transport") != "tcp":
            raise ValueError(f"transport {data.get('transport')!r} is not 'tcp'")
        if not isinstance(data["key"], str) or not data["key"]:
            raise ValueError("its key is not a string")
        return ConnectionInfo(ip=str(data["ip"]), port=int(data["port"]), key=data["key"].encode("utf-8"), pid=data.get("pid"))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"connection file {path} is not usable: {exc}") from None
