"""Marks on pose bones: keyed custom properties -- 'visible' (occlusion marks, True where unmarked),
'pinned' (the animator's pins: True on the frames a bone's pose was pinned) and 'confidence'
(noisy marks: a float in [0, 1], 1 where unmarked).

A mark is an ordinary animated property, so it shows in the Dope Sheet and Graph Editor
and survives save/load. Keys are CONSTANT (a step function) and only where the value
changes; before its first key a bone is as its first key says. The bool marks are keyed
as 0 / 1 and read as True above 0.5.
"""
from __future__ import annotations

import numpy as np

from .armature_io import (
    CONSTANT,
    VISIBLE_DESCRIPTION,
    active_channelbag,
    ensure_bone_props,
    step_keys,
)
from .conventions import CONFIDENCE_PROP, PINNED_PROP, VISIBLE_PROP

PINNED_DESCRIPTION = "DREAMoR: True on the frames where the animator pinned this bone's pose (Pin Pose)"
CONFIDENCE_DESCRIPTION = "DREAMoR: how far this joint's capture is trusted (1 trusted, below: noisy, smoothed)"
#: each mark's value where a bone has none, and its tooltip.
MARK_DEFAULTS = {
    VISIBLE_PROP: (True, VISIBLE_DESCRIPTION),
    PINNED_PROP: (False, PINNED_DESCRIPTION),
    CONFIDENCE_PROP: (1.0, CONFIDENCE_DESCRIPTION),
}


def _path(obj, name: str, prop: str = VISIBLE_PROP) -> str:
    bone = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'pose.bones["{bone}"]["{prop}"]'  # (path_from_id needs the property to exist)


def _read_keys(fc) -> tuple[np.ndarray, np.ndarray]:
    n = len(fc.keyframe_points)
    co = np.empty(2 * n, np.float32)
    fc.keyframe_points.foreach_get("co", co)
    order = np.argsort(co[0::2], kind="stable")
    return co[0::2][order].astype(np.float64), co[1::2][order].astype(np.float64)


def _value_at(keys_x: np.ndarray, keys_y: np.ndarray, frame: float, static: float) -> float:
    if len(keys_x) == 0:
        return static
    i = np.searchsorted(keys_x, frame, side="right") - 1
    return float(keys_y[max(i, 0)])


def set_mark(obj, bone_names, frame_lo: int, frame_hi: int, value: float, prop: str) -> int:
    """Key mark ``prop`` = ``value`` (0 / 1 for a bool mark) on frames ``frame_lo..frame_hi`` (inclusive) for the bones.

    Frames outside the range keep their value. Returns the number of bones changed.
    """
    if frame_hi < frame_lo:
        frame_lo, frame_hi = frame_hi, frame_lo
    names = list(bone_names)
    if not names:
        return 0
    ensure_bone_props(obj, names, prop, *MARK_DEFAULTS[prop])
    bag = active_channelbag(obj, create=True)
    for name in names:
        path = _path(obj, name, prop)
        fc = bag.fcurves.find(path, index=0)
        static = float(obj.pose.bones[name][prop])
        if fc is None:
            fc = bag.fcurves.new(path, index=0, group_name=name)
            xs, ys = np.zeros(0), np.zeros(0)
        else:
            xs, ys = _read_keys(fc)
        before = _value_at(xs, ys, frame_lo - 1, static)
        after = _value_at(xs, ys, frame_hi + 1, static)
        keep = (xs < frame_lo) | (xs > frame_hi)
        new_x, new_y = list(xs[keep]), list(ys[keep])
        if not np.any(xs < frame_lo):
            new_x.append(frame_lo - 1)
            new_y.append(before)
        new_x.append(frame_lo)
        new_y.append(float(value))
        if not np.any(xs == frame_hi + 1):
            new_x.append(frame_hi + 1)
            new_y.append(after)
        order = np.argsort(new_x, kind="stable")
        fx, fy = step_keys(np.asarray(new_x)[order], np.asarray(new_y, np.float32)[order])  # as stored: equal values merge
        kp = fc.keyframe_points
        kp.clear()
        kp.add(len(fx))
        co = np.empty(2 * len(fx), np.float32)
        co[0::2], co[1::2] = fx, fy
        kp.foreach_set("co", co)
        kp.foreach_set("interpolation", np.full(len(fx), CONSTANT, np.int32))
        fc.update()
    obj.update_tag(refresh={"OBJECT"})
    return len(names)


def set_visibility(obj, bone_names, frame_lo: int, frame_hi: int, visible: bool, prop: str = VISIBLE_PROP) -> int:
    """``set_mark`` for a bool mark (default 'visible')."""
    return set_mark(obj, bone_names, frame_lo, frame_hi, 1.0 if visible else 0.0, prop)


def mark_values(obj, bone_names, frames, prop: str) -> np.ndarray:
    """(T, len(bone_names)) float64: the values of mark ``prop`` of the bones at integer ``frames``."""
    frames = np.asarray(frames)
    bag = active_channelbag(obj)
    out = np.full((len(frames), len(bone_names)), float(MARK_DEFAULTS[prop][0]))
    for i, name in enumerate(bone_names):
        pb = obj.pose.bones[name]
        if prop not in pb:
            continue
        fc = bag.fcurves.find(_path(obj, name, prop), index=0) if bag is not None else None
        if fc is None or fc.mute or len(fc.keyframe_points) == 0:
            out[:, i] = float(pb[prop])
            continue
        xs, ys = _read_keys(fc)
        out[:, i] = ys[np.clip(np.searchsorted(xs, frames, side="right") - 1, 0, None)]
    return out


def visibility(obj, bone_names, frames, prop: str = VISIBLE_PROP) -> np.ndarray:
    """(T, len(bone_names)) bool: the bool marks ``prop`` (default 'visible') of the bones at integer ``frames``."""
    return mark_values(obj, bone_names, frames, prop) > 0.5


def clear_all(obj, bone_names, prop: str = VISIBLE_PROP) -> int:
    """Remove the marks ``prop`` (default 'visible'; keys and property) of the bones; returns how many had some."""
    bag = active_channelbag(obj)
    count = 0
    for name in bone_names:
        pb = obj.pose.bones[name]
        fc = bag.fcurves.find(_path(obj, name, prop), index=0) if bag is not None else None
        if fc is not None:
            bag.fcurves.remove(fc)
        if prop in pb:
            del pb[prop]
            count += 1
    return count
