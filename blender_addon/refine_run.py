"""One Refine, from the armature to the backend and back (the operators in operators.py drive it).

:class:`RefineRun` reads the armature (``armature_io.read_animation``: the occlusion marks
become ``visible``, the pins ``pinned``, the noisy marks ``confidence``), submits the frames to
refine, follows the job with :meth:`RefineRun.step` (never blocks: a modal timer or the
background loop calls it) and, when the result is in,
:meth:`RefineRun.apply` writes a new action with ``armature_io.write_animation``. Nothing
touches the scene before ``apply``, and ``apply`` checks everything before its first write,
so an error or a cancel leaves the scene as it was.

Frames: the motion is read over the scene range widened to every key of the SMPL bones, so
the new action keeps frames that are not refined; ``refine_frames`` 'PREVIEW' sends only the
preview range. Keep visible: the backend is asked (``keep_visible``) and the result is
checked: on visible frames, visible bones get their captured local rotations back (and the
pelvis its captured position) whatever the backend returned; ``kept_deg`` says by how much
the backend's answer had differed.

Live preview: every clip comes back in ``partial`` windows before the result (the motion as it
stands, at most every 1.5 s of work, and the finished frames of long clips). Their joints are
kept in :attr:`RefineRun.preview` (Blender world units, over the read frames, NaN where nothing
has arrived) for the overlay's ghost skeleton (``overlay.ghost_segments``); the preview is drawn,
never written, so the scene still stays untouched until ``apply``.
"""
from __future__ import annotations

import itertools
import math
import time
import traceback

import numpy as np

from . import armature_io, backend_process
from .posemath import merge_result

_TRANSFORM_SUFFIXES = (".location", ".rotation_quaternion", ".rotation_axis_angle", ".rotation_euler", ".scale")
#: A visible bone the backend moved by more than this (radians / metres) counts as changed.
KEEP_TOL_RAD, KEEP_TOL_M = 1e-4, 1e-4


class RefineError(RuntimeError):
    """A refine that cannot start or did not finish; the message is the report."""


def keyed_range(obj) -> tuple[int, int] | None:
    """The first and last frame keyed on the armature's bone transforms (None: no such key)."""
    bag = armature_io.active_channelbag(obj)
    spans = [fc.range() for fc in (bag.fcurves if bag is not None else ())
             if fc.data_path.startswith("pose.bones[") and fc.data_path.endswith(_TRANSFORM_SUFFIXES)
             and len(fc.keyframe_points)]
    if not spans:
        return None
    return int(math.floor(min(a for a, _ in spans))), int(math.ceil(max(b for _, b in spans)))


def read_range(obj, scene) -> tuple[int, int]:
    """The scene range widened to the keys of the armature's bone transforms (nothing is dropped)."""
    lo, hi = scene.frame_start, scene.frame_end
    keys = keyed_range(obj)
    if keys is not None:
        lo, hi = min(lo, keys[0]), max(hi, keys[1])
    return int(lo), int(hi)


def frames_mask(frame_start: int, frame_end: int, scene, refine_frames: str) -> np.ndarray:
    """(T,) bool over frames ``frame_start..frame_end``: those to refine ('ALL': the scene range,
    'PREVIEW': the preview range, or the scene range when none is set)."""
    frames = np.arange(frame_start, frame_end + 1)
    lo, hi = scene.frame_start, scene.frame_end
    if refine_frames == "PREVIEW" and scene.use_preview_range:
        lo, hi = scene.frame_preview_start, scene.frame_preview_end
    return (frames >= lo) & (frames <= hi)


def _check_mode(obj) -> None:
    """RefineError unless the armature is in object or pose mode (the result cannot be keyed in another)."""
    if obj.mode not in ("OBJECT", "POSE"):
        raise RefineError(f"'{obj.name}' is in {obj.mode.lower()} mode; leave it (Tab) and press Refine again")


def _check_something_hidden(anim, mask: np.ndarray, frames: tuple[int, int]) -> None:
    """RefineError when Keep Visible Bones would keep every bone of the frames to refine (``mask`` over the
    animation's frames) as captured: nothing marked occluded or noisy there, so the result would be a copy."""
    if anim.visible[mask].all() and (anim.confidence is None or (anim.confidence[mask] >= 1.0).all()):
        raise RefineError(
            f"nothing to refine on frames {frames[0]}..{frames[1]}: no bone is marked occluded or noisy there and "
            "Keep Visible Bones keeps every captured bone as it is; mark the lost bones (Occlusion > Mark Occluded), "
            "or turn Keep Visible Bones off to clean the whole motion"
        )


class RefineRun:
    """One refine job in flight. ``state``: running | done | failed | cancelled; ``error`` says why."""

    def __init__(self, obj, scene, preset: str = "default", keep_visible: bool = False, refine_frames: str = "ALL",
                 noisy: bool = False, lock_feet: bool = False, alternatives: int = 1):
        if obj is not None:
            _check_mode(obj)  # told now, not after the job has run
        try:
            lo, hi = read_range(obj, scene) if obj is not None and obj.type == "ARMATURE" else (scene.frame_start, scene.frame_end)
            self.anim = armature_io.read_animation(obj, scene, (lo, hi))
        except armature_io.ArmatureError as exc:
            raise RefineError(str(exc)) from None
        self.mask = frames_mask(self.anim.frame_start, self.anim.frame_end, scene, refine_frames)
        if self.mask.sum() < 2:
            which = "preview" if refine_frames == "PREVIEW" and scene.use_preview_range else "scene"
            a, b = (scene.frame_preview_start, scene.frame_preview_end) if which == "preview" else (scene.frame_start, scene.frame_end)
            fix = "move it over the motion" if self.mask.sum() == 0 else "set a longer range"
            raise RefineError(
                f"the frames to refine (the {which} range, {a}..{b}) hold {int(self.mask.sum())} frame(s) of the "
                f"motion on frames {lo}..{hi}; {fix}"
            )
        self.frames = (int(self.anim.frame_start + np.argmax(self.mask)), int(self.anim.frame_end - np.argmax(self.mask[::-1])))
        if keep_visible and not noisy:  # Lock Feet alone changes nothing: visible feet stay where captured
            _check_something_hidden(self.anim, self.mask, self.frames)
        self.obj_name, self.preset, self.keep_visible = obj.name, preset, keep_visible
        self.action_name = obj.animation_data.action.name if obj.animation_data.action else None
        self.state, self.error, self.stage, self.fraction = "running", "", "submitting", 0.0
        self.result = None
        #: (T, 22, 3) joints of the partial windows, Blender world units, over the read frames; NaN elsewhere.
        self.preview = np.full((self.anim.num_frames, 22, 3), np.nan)
        self.started = time.monotonic()
        self._cancel_requested = False
        self.backend = b = backend_process.get()
        if not b.ready or not b.check_alive():
            why = f" ({b.message})" if b.message else ""
            raise RefineError(
                f"the DREAMoR backend is not running{why}; start it in the sidebar (DREAMoR > Backend > Start) "
                "or set its connection file in the add-on preferences, then press Refine again"
            )
        client_mod = backend_process.wire().client
        a, m = self.anim, self.mask
        try:
            self.job = b.client.submit(
                a.trans[m], a.root_orient[m], a.pose_body[m], a.rest_joints, a.fps, a.visible[m],
                pinned=None if a.pinned is None else a.pinned[m], confidence=None if a.confidence is None else a.confidence[m],
                preset=preset, keep_visible=bool(keep_visible), noisy=bool(noisy), lock_feet=bool(lock_feet),
                samples=int(alternatives),
            )  # fmt: skip
        except client_mod.BackendError as exc:
            raise RefineError(f"the backend refused the clip: {exc.message}") from None
        except client_mod.ClientError as exc:
            b.ping(timeout=1.0)  # marks it stopped when it is gone
            raise RefineError(f"cannot reach the DREAMoR backend ({exc}); start it again and press Refine") from None
        b.our_job = True
        self.stage = "queued" if self.job.position else "started"

    # -- following the job
    @property
    def finished(self) -> bool:
        return self.state != "running"

    @property
    def previewed(self) -> int:
        """How many frames the preview holds."""
        return int(np.count_nonzero(~np.isnan(self.preview[:, 0, 0])))

    @property
    def label(self) -> str:
        """A short line for the progress bar."""
        if self.stage == "queued":
            return f"Queued (position {self.job.position})"
        text = f"{self.stage.replace('_', ' ').capitalize()} {self.fraction:.0%}"
        if self.previewed and not self.finished:
            text += f" ({self.previewed} of {int(self.mask.sum())} frames previewed)"
        return text

    def preview_at(self, frame: int) -> np.ndarray | None:
        """(22, 3) previewed joints (world units) at a scene frame, or None where there are none yet."""
        i = int(frame) - self.anim.frame_start
        if not 0 <= i < self.anim.num_frames or np.isnan(self.preview[i, 0, 0]):
            return None
        return self.preview[i]

    def _keep_partial(self, start: int, stop: int, joints: np.ndarray) -> None:
        """Store frames [start, stop) of the frames sent, joints (stop - start, 22, 3) metres,
        in the preview; a window that does not fit the clip is left out (it is only a preview)."""
        sent = np.flatnonzero(self.mask)  # sent frame k is read frame sent[k]
        joints = np.asarray(joints, np.float64)
        if not 0 <= start < stop <= len(sent) or joints.shape != (stop - start, 22, 3):
            return
        self.preview[sent[start:stop]] = joints / self.anim.metres_per_unit

    def request_cancel(self) -> None:
        """Ask for a cancel (from the Cancel button); the next ``step`` sends it."""
        self._cancel_requested = True

    def step(self) -> bool:
        """Take what the backend sent (never blocks); True when the job has ended."""
        try:
            return self._step()
        except Exception as exc:  # a bug must not leave a modal refine running forever
            traceback.print_exc()
            self.cancel()
            return self._fail(f"the refine failed unexpectedly ({type(exc).__name__}: {exc}); nothing was changed. Please report this")

    def _step(self) -> bool:
        if self.finished:
            return True
        if self._cancel_requested:
            self.cancel()
            return True
        client_mod = backend_process.wire().client
        if not self.backend.check_alive():
            return self._fail(_backend_lost("stopped while refining", self.backend.message))
        try:
            events = self.job.poll()
        except client_mod.JobCancelled:
            return self._end("cancelled", "the job was cancelled on the backend; nothing was changed")
        except client_mod.JobFailed as exc:
            return self._fail(f"the backend could not refine this clip: {exc.message}")
        except client_mod.BackendGone as exc:
            self.backend.ping(timeout=0.5)
            return self._fail(_backend_lost("stopped answering", str(exc)))
        for event in events:
            if isinstance(event, client_mod.Progress):
                self.stage, self.fraction = event.stage, min(max(event.fraction, 0.0), 1.0)
            elif isinstance(event, client_mod.Partial):
                self._keep_partial(event.start, event.stop, event.arrays.get("joints"))
            elif isinstance(event, client_mod.Result):
                self.result, self.stage, self.fraction = event, "done", 1.0
                return self._end("done", "")
        return False

    def cancel(self) -> None:
        """Cancel the job (the backend confirms within a couple of seconds, or we stop waiting)."""
        if self.finished:
            return
        try:
            self.job.cancel(timeout=2.0)
        except backend_process.wire().client.ClientError:
            pass  # gone or already over: either way nothing will be written
        self._end("cancelled", "refine cancelled; nothing was changed")

    def wait(self, poll_s: float = 0.02) -> None:
        """Block until the job ends (background mode, where no timer runs)."""
        while not self.step():
            time.sleep(poll_s)

    def _fail(self, message: str) -> bool:
        return self._end("failed", message)

    def _end(self, state: str, message: str) -> bool:
        self.state, self.error = state, message
        self.backend.our_job = False
        return True

    def _doubt(self, result, n: int) -> np.ndarray | None:
        """(T, 22) metres over the read frames (0 outside the refined ones), or None when the backend sent none."""
        u = (getattr(result, "extra", None) or {}).get("uncertainty")
        if u is None:
            return None
        u = np.asarray(u, np.float64)
        if u.shape != (n, 22):
            raise RefineError(f"the backend's doubt has shape {u.shape}, expected {(n, 22)}; nothing was written (please report this)")
        out = np.zeros((self.anim.num_frames, 22))
        out[self.mask] = u
        return out

    def warning(self) -> str:
        """The backend's warning about the result ('' when none): e.g. visible joints it could not follow."""
        metrics = getattr(self.result, "metrics", None) or {}
        return str(metrics.get("warning") or "")

    # -- writing
    def apply(self, context) -> str:
        """Write the result as a new action on the armature; returns the report sentence.

        Raises RefineError (scene untouched) when the armature is gone or the result does not fit.
        """
        import bpy

        if self.state != "done" or self.result is None:
            raise RefineError(self.error or "the refine has not finished")
        obj = bpy.data.objects.get(self.obj_name)
        if obj is None or obj.type != "ARMATURE":
            raise RefineError(f"the armature '{self.obj_name}' was deleted or renamed while refining; nothing was written")
        ad = obj.animation_data
        now = ad.action.name if ad is not None and ad.action is not None else None
        if now != self.action_name:
            raise RefineError(
                f"the action of '{obj.name}' changed while refining ('{self.action_name}' -> '{now}'); "
                "nothing was written: press Refine again"
            )
        r, n = self.result, int(self.mask.sum())
        if r.trans.shape[0] != n:
            raise RefineError(f"the backend returned {r.trans.shape[0]} frames for the {n} sent; nothing was written (please report this)")
        merged = merge_result(self.anim, self.mask, r, self.keep_visible)
        metrics = getattr(r, "metrics", None) or {}
        alternatives = [merge_result(self.anim, self.mask, alt, self.keep_visible) for alt in result_alternatives(r, n)]
        doubt = self._doubt(r, n)
        _check_mode(obj)  # the animator may have switched while the job ran
        source = ad.action if ad is not None else None
        heads = int(metrics.get("alternative_heads", 0))  # the first ones: the hypotheses network's, then the draws
        kept_alts = [(alt, HEAD_KIND if k < heads else DRAW_KIND) for k, alt in enumerate(alternatives)
                     if not _same_motion(alt, merged)]  # nothing hidden: no copies
        alternatives = [alt for alt, _ in kept_alts]
        kinds = ["answer"] + [kind for _, kind in kept_alts]
        action, names, replaced, kept = self._write_set(obj, source, merged, alternatives, doubt, kinds)
        lo, hi = self.frames
        text = f"refined frames {lo}..{hi} of '{obj.name}' into action '{action.name}' ({time.monotonic() - self.started:.1f} s)"
        if names:
            text += f"; {len(names)} alternative(s): {alternatives_sentence(names, kinds[1:])} (switch actions to pick one)"
        if replaced:
            text += f"; replaced {len(replaced)} action(s) of the earlier refine ({', '.join(replaced)}; undo brings them back)"
        if kept:
            text += f"; kept the earlier refine's {', '.join(kept)} (still in use)"
        text += doubt_sentence(metrics, self.frames[0])
        if metrics.get("windows_reused") and metrics.get("windows"):  # the backend kept what an earlier refine optimised
            text += f"; {metrics['windows_reused']:.0f} of {metrics['windows']:.0f} stretches reused from an earlier refine"
        if self.keep_visible and (merged.kept_deg > math.degrees(KEEP_TOL_RAD) or merged.kept_cm > 100 * KEEP_TOL_M):
            text += (
                f"; visible bones kept as captured (the backend had moved them by up to {merged.kept_deg:.2f}\u00b0"
                f" / {merged.kept_cm:.2f} cm)"
            )
        return text


    def _write_set(self, obj, source, merged, alternatives: list, doubt, kinds: list[str] | None = None) -> tuple:
        """Write the answer as ``<base>_refined`` (played) and the alternatives as ``<base>_refined_alt2``, ...,
        ``base`` the capture (``armature_io.refine_root``: a refine of a refined action is named from the capture),
        each kept by a fake user, stamped for ``obj`` and with its ``kinds`` entry as ``dreamor_kind`` (default: the
        answer, then draws). The actions an earlier refine wrote for ``obj`` from that
        capture (``armature_io.refined_set``) are replaced: removed, unless something else uses them or the source
        is one whose capture is gone. -> (the answer, the alternatives' names, the replaced actions' names, the kept
        ones' 'old -> new' names). All or nothing: RefineError (anything unexpected is re-raised after the rollback)."""
        import bpy

        kinds = kinds or ["answer"] + [DRAW_KIND] * len(alternatives)
        ad = obj.animation_data
        slot_before = ad.action_slot if ad is not None else None
        fake_before = source.use_fake_user if source is not None else False
        root = armature_io.refine_root(source) if source is not None else None
        base = _fit_name(root) if root else None
        wanted = [f"{base}_refined"] + [f"{base}_refined_alt{k}" for k in range(2, len(alternatives) + 2)] if base \
            else [None] * (len(alternatives) + 1)
        earlier = [(a, a.name) for a in (armature_io.refined_set(obj.name, base) if base else [])]
        created = []
        try:
            for a, name in earlier:  # out of the new names' way until the new ones are written
                a.name = f"{name}~earlier"
            action = armature_io.write_animation(
                obj, merged.trans, merged.rotmats, self.anim.frame_start, contacts=merged.contacts,
                metres_per_unit=self.anim.metres_per_unit, doubt=doubt, action_name=wanted[0],
            )  # fmt: skip
            created.append(action)
            slot = obj.animation_data.action_slot
            for alt, name in zip(alternatives, wanted[1:]):  # each from the captured action
                created.append(armature_io.write_animation(
                    obj, alt.trans, alt.rotmats, self.anim.frame_start, contacts=alt.contacts,
                    metres_per_unit=self.anim.metres_per_unit, doubt=doubt, source=source, action_name=name,
                ))  # fmt: skip
            obj.animation_data.action = action  # the answer is the action the armature plays
            obj.animation_data.action_slot = slot
        except Exception as exc:
            _roll_back(obj, source, slot_before, fake_before, created, earlier)
            if isinstance(exc, (armature_io.ArmatureError, ValueError)):
                raise RefineError(f"the result could not be written ({exc}); nothing was changed") from None
            raise
        for a, kind in zip(created, kinds):  # kept on save whichever one the animator plays; stamped as this refine's
            a.use_fake_user = True
            a[armature_io.REFINED_FOR] = obj.name
            a[KIND_PROPERTY] = kind
            if root:
                a["dreamor_source_action"] = root
        root_here = root is not None and bpy.data.actions.get(root) is not None
        replaced, kept = [], []
        for a, name in earlier:
            if a.users - int(a.use_fake_user) > 0 or (a == source and not root_here):
                a.name = name  # still used elsewhere (or the only way back to a lost capture): kept
                if a.name != name:
                    kept.append(f"{name} -> {a.name}")
            else:
                replaced.append(name)
                bpy.data.actions.remove(a)
        return action, [a.name for a in created[1:]], replaced, kept

def _roll_back(obj, source, slot_before, fake_before: bool, created: list, earlier: list) -> None:
    """Undo what ``RefineRun._write_set`` had done when it failed."""
    import bpy

    if obj.animation_data is not None:
        obj.animation_data.action = source
        if slot_before is not None and source is not None:
            obj.animation_data.action_slot = slot_before
    for a in created:
        bpy.data.actions.remove(a)
    for a, name in earlier:
        a.name = name
    if source is not None:
        source.use_fake_user = fake_before


def _fit_name(base: str, room: int = 200) -> str:
    """``base`` cut to ``room`` bytes (UTF-8), so that '_refined_altN' and Blender's '.001' still fit its 255."""
    raw = base.encode()
    return base if len(raw) <= room else raw[:room].decode(errors="ignore")


def _backend_lost(what: str, why: str) -> str:
    text = f"the DREAMoR backend {what} ({why}); nothing was changed"
    return text if "start it again" in why.lower() else f"{text}. Start it again and press Refine"


def _same_motion(a, b) -> bool:
    return bool(np.array_equal(a.trans, b.trans) and np.array_equal(a.rotmats, b.rotmats))


def result_alternatives(result, n: int) -> list:
    """The result's alternatives (the completions after the answer) as objects with trans, root_orient, pose_body and
    contacts for ``merge_result``; [] when the backend sent none. RefineError when their shapes do not fit."""
    from types import SimpleNamespace

    extra = getattr(result, "extra", None) or {}
    if "samples" not in extra:
        return []
    parts = {k: np.asarray(extra.get(f"sample_{k}")) for k in ("trans", "root_orient", "pose_body", "contacts")}
    num = np.asarray(extra["samples"]).shape[0]
    tails = {"trans": 3, "root_orient": 3, "pose_body": 63, "contacts": 9}
    for k, arr in parts.items():
        if arr.shape != (num, n, tails[k]):
            raise RefineError(f"the backend's sample_{k} has shape {arr.shape}; nothing was written (please report this)")
    return [SimpleNamespace(**{k: arr[i] for k, arr in parts.items()}) for i in range(1, num)]


#: the viewport's doubt rings start here (``overlay.DOUBT_MIN_M``, cm): below it the report says nothing of doubt
DOUBT_MENTION_CM = 5.0


#: an action's custom property saying what it holds: "answer", HEAD_KIND or DRAW_KIND
KIND_PROPERTY = "dreamor_kind"
HEAD_KIND = "the network's likeliest other answer"
DRAW_KIND = "drawn by the motion prior"


def alternatives_sentence(names: list[str], kinds: list[str]) -> str:
    """The alternatives' names, each run of one kind (HEAD_KIND, DRAW_KIND) followed by what it is."""
    parts, start = [], 0
    for kind, run in itertools.groupby(kinds):
        n = len(list(run))
        plural = "s" if n > 1 and kind == HEAD_KIND else ""
        parts.append(f"{', '.join(names[start:start + n])} ({kind}{plural})")
        start += n
    return ", ".join(parts)


def doubt_sentence(metrics: dict, first_frame: int) -> str:
    """From the result's doubt metrics: '; the engine is unsure of frames A..B (...)' where some joint may be more
    than 10 cm off, else '; the engine's doubt reaches X cm ...' from the rings' threshold, else ''. The doubt is the
    engine's estimate of the typical error, not a bound: a joint can be further off."""
    lo, hi = int(metrics.get("doubt_from", -1)), int(metrics.get("doubt_to", -1))
    top = float(metrics.get("doubt_max_cm", 0.0))
    if lo >= 0 and hi >= 0:
        return (f"; the engine is unsure of frames {first_frame + lo}..{first_frame + hi} (its doubt there reaches "
                f"{top:.0f} cm, a typical error, not a bound; see the bones' 'doubt')")
    if top >= DOUBT_MENTION_CM:
        return f"; the engine's doubt for the hidden joints reaches {top:.0f} cm (the viewport's rings show where)"
    return ""


#: The refine in flight (one at a time), for the Cancel button and file loads.
active: RefineRun | None = None
