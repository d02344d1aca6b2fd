"""The messages of the wire: their types, the submit's arrays and options, the result's arrays, and the checks
both sides run on them (the envelope that carries them is ``envelope.py``).

Messages (``->`` client to backend, ``<-`` back; replies carry ``reply_to``, job messages ``job_id``):

-> hello {protocol, client}                 <- welcome {protocol, version, pid, devices, default_device, models, limits}
-> ping {}                                  <- pong {busy, running: [job ids], queued}
-> submit {fps, options: {preset, keep_visible, noisy, lock_feet, samples, device}}
   buffers trans (T,3), root_orient (T,3), pose_body (T,63), rest_joints (22,3); optional visible,
   pinned (T,22) bool and confidence (T,22) in [0, 1]
                                            <- accepted {job_id, position (0: runs now), device, frames}
                                            <- progress {stage, fraction 0..1, energies, position, elapsed_s}
                                               at least once a second until the job ends
                                            <- partial {start, stop} + OUTPUT_ARRAYS for frames [start, stop)
                                            <- result {frames, metrics, elapsed_s} + OUTPUT_ARRAYS
                                               [+ uncertainty (T,22) m] [+ SAMPLE_ARRAYS (N,T,...) when samples > 1]
-> cancel {job_id} (job_id in the header)   <- cancelled {job_id}
-> shutdown {}                              <- goodbye {}
any request                                 <- error {code, message}

:func:`check_submit` validates a ``submit`` (clip arrays, fps, options) the same way on both sides.
Standard library and numpy only (the Blender add-on ships a verbatim copy).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .envelope import BAD_INPUT, Message, ProtocolError

#: Limits of a clip.
MAX_CLIP_FRAMES = 100_000
MAX_ABS_VALUE = 1e6
MIN_FPS, MAX_FPS = 1.0, 1000.0
NUM_JOINTS = 22
NUM_CONTACTS = 9

#: What a client may send, and what the server sends back.
REQUEST_TYPES = ("hello", "ping", "submit", "cancel", "shutdown")
REPLY_TYPES = ("welcome", "pong", "accepted", "progress", "partial", "result", "cancelled", "goodbye", "error")

#: Submit options and their defaults (``device`` None: the backend's own device).
PRESETS = ("fast", "default", "best")
OPTION_DEFAULTS: dict[str, Any] = {"preset": "default", "keep_visible": True, "noisy": False, "lock_feet": False,
                                   "samples": 1, "device": None}
#: the most completions a submit may ask for (the answer and up to 7 alternatives).
MAX_SAMPLES = 8

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

#: Optional per-frame arrays of a result: the doubt, metres (0 where seen).
OPTIONAL_OUTPUTS: dict[str, tuple[int, ...]] = {"uncertainty": (NUM_JOINTS,)}
#: The completions of a result (``samples`` > 1): (N, T, ...), the answer first (as the clip file's keys).
SAMPLE_ARRAYS: dict[str, tuple[int, ...]] = {"samples": (NUM_JOINTS, 3), "sample_trans": (3,), "sample_root_orient": (3,),
                                             "sample_pose_body": (63,), "sample_contacts": (NUM_CONTACTS,)}

_FLOAT_DTYPES = {"<f4", "<f8"}


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
            why = ("the rest positions of SMPL's 22 joints" if name == "rest_joints" else
                   "all per-frame arrays need the same number of frames")
            raise bad(f"array '{name}' has shape {arr.shape}, expected {shape} ({why})")
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
    n = out["samples"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise ProtocolError(BAD_INPUT, f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {n!r:.30}", reply_to)
    if out["device"] is not None and (not isinstance(out["device"], str) or len(out["device"]) > 32):
        raise ProtocolError(BAD_INPUT, f"device must be a name such as 'cpu' or 'cuda', got {out['device']!r:.30}", reply_to)
    return out


def check_output_arrays(arrays: Mapping[str, np.ndarray], frames: int) -> None:
    """Raise ValueError unless ``arrays`` holds every OUTPUT_ARRAYS entry for ``frames``
    frames, finite, with contacts in [0, 1]; OPTIONAL_OUTPUTS and SAMPLE_ARRAYS (all or none, one N) when there."""
    unknown = sorted(set(arrays) - set(OUTPUT_ARRAYS) - set(OPTIONAL_OUTPUTS) - set(SAMPLE_ARRAYS))
    if unknown:
        raise ValueError(f"unknown output array(s) {unknown}")
    given = [k for k in SAMPLE_ARRAYS if k in arrays]
    if given and len(given) != len(SAMPLE_ARRAYS):
        raise ValueError(f"output arrays {sorted(set(SAMPLE_ARRAYS) - set(given))} are missing beside {given}")
    num = np.asarray(arrays["samples"]).shape[0] if given else 0
    expected = {**{k: (frames, *t) for k, t in OUTPUT_ARRAYS.items()},
                **{k: (frames, *t) for k, t in OPTIONAL_OUTPUTS.items() if k in arrays},
                **{k: (num, frames, *t) for k, t in SAMPLE_ARRAYS.items() if given}}
    for name, shape in expected.items():
        arr = arrays.get(name)
        if arr is None:
            raise ValueError(f"output array '{name}' is missing")
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise ValueError(f"output array '{name}' has shape {arr.shape}, expected {shape}")
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
            raise ValueError(f"output array '{name}' must be finite floats (dtype {arr.dtype})")
    for name in ("contacts", "sample_contacts"):
        c = np.asarray(arrays.get(name, np.zeros(0)))
        if c.size and (c.min() < 0 or c.max() > 1):
            raise ValueError(f"output '{name}' must lie in [0, 1]")


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
