"""The add-on's side of the backend: the wire package, the backend process, and its status.

``dreamor_wire`` is a copy of the wire modules of ``backend/dreamor/server/`` (protocol and its parts, the client) made by
``scripts/build_addon.py``; it needs ``zmq`` (the bundled pyzmq wheel). Both are imported
lazily, so the add-on registers and its other tools work without them.

One :class:`Backend` per Blender session (:func:`get`). It either **owns** a process it
started (``<python> -m dreamor.cli serve --connection-file F --device D``, stderr kept in a
log file so a failed start can say why) or is **attached** to a backend someone else started,
through its connection file. States: ``stopped`` -> ``starting`` -> ``ready`` (``busy`` while
a job runs); a start that fails goes back to ``stopped`` with ``message`` saying why.

Nothing here blocks for long except :meth:`Backend.wait_started` (background mode) and
:meth:`Backend.stop`; the UI drives starting through :meth:`Backend.poll_start` from a timer.
No bpy here except :func:`status_line` and the watcher timer, which read/tag the UI.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 120.0  # loading the models (first CUDA use) can take a while
HELLO_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
WATCH_INTERVAL_S = 2.0


class BackendUnavailable(RuntimeError):
    """The wire package or pyzmq is missing, or no backend is running; the message says what to do."""


def wire():
    """The ``dreamor_wire`` subpackage (``.protocol``, ``.client``), imported on first use."""
    try:
        package = importlib.import_module(f"{__package__}.dreamor_wire")
        importlib.import_module(f"{__package__}.dreamor_wire.client")
    except ImportError as exc:
        raise BackendUnavailable(
            f"the backend client is not available ({exc}); install the add-on from the zip that "
            "scripts/build_addon.py builds (it bundles the client and pyzmq)"
        ) from None
    return package


def last_error_line(text: str) -> str:
    """The most useful line of a process's stderr: its last ``error: ...`` line, else its last line unless that is
    one of the backend's own log lines ('dreamor serve: job ... accepted' is no cause of anything)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error:"):
            return line[len("error:"):].strip()
    return lines[-1] if lines and not lines[-1].startswith(("dreamor serve:", "dreamor backend listening")) else ""


def exit_sentence(code: int, why: str) -> str:
    """'the backend exited with code 2: why' / 'the backend was killed (signal 9)'."""
    if code < 0:
        return f"the backend was killed (signal {-code}){': ' + why if why else ''}"
    return f"the backend exited with code {code}{': ' + why if why else ''}"


def pid_alive(pid: int | None) -> bool | None:
    """Whether a local process exists (POSIX); None when that cannot be told (no pid, Windows)."""
    if not pid or os.name != "posix":
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def resolve_device(device: str) -> str:
    """'cpu' / 'cuda' as given; 'auto' -> 'cuda' when an NVIDIA driver is installed, else 'cpu'."""
    if device != "auto":
        return device
    return "cuda" if sys.platform != "darwin" and shutil.which("nvidia-smi") else "cpu"


class Backend:
    """The backend this Blender session talks to (see the module docstring)."""

    def __init__(self):
        self.state = "stopped"
        self.message = ""  # why the last start failed / the backend stopped; or a note
        self.client = None
        self.welcome: dict | None = None
        self.busy = False  # a job runs (ours or another client's, from the last ping)
        self.our_job = False  # the refine module sets this while one of our jobs runs
        self.owned = False
        self.proc: subprocess.Popen | None = None
        self.connection_file: Path | None = None
        self.log_path: Path | None = None
        self.device = ""
        self._auto_device = False
        self._python = ""
        self._deadline = 0.0
        self._started_at = 0.0
        self._last_ping = 0.0
        self._dir: Path | None = None

    # -- what the panel shows
    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.client is not None

    @property
    def device_name(self) -> str:
        if self.welcome:
            return str(self.welcome.get("default_device") or ",".join(self.welcome.get("devices", [])) or self.device)
        return self.device

    def elapsed(self) -> float:
        return time.monotonic() - self._started_at

    # -- starting a process
    def start(self, python: str, device: str = "auto", timeout: float = START_TIMEOUT_S) -> None:
        """Start ``<python> -m dreamor.cli serve`` (returns at once; then poll_start / wait_started).

        Raises BackendUnavailable with a sentence when the process cannot even be launched.
        """
        if self.state in ("starting", "ready"):
            return
        wire()  # fail now, not after a minute, when the client cannot be imported
        python = (python or "").strip()
        if not python:
            raise BackendUnavailable(
                "no backend Python is set: in Edit > Preferences > Add-ons > DREAMoR, set 'Backend Python' to the "
                "python of the environment where the dreamor package is installed (or give a connection file)"
            )
        exe = Path(bpy_abspath(python))
        if exe.is_dir():
            raise BackendUnavailable(
                f"the backend Python '{python}' is a folder; choose the python executable inside the environment "
                "(bin/python, or Scripts\\python.exe on Windows)"
            )
        if not exe.is_file():
            found = shutil.which(python)
            if found is None:
                raise BackendUnavailable(f"the backend Python '{python}' does not exist; set 'Backend Python' in the DREAMoR add-on preferences")
            exe = Path(found)
        self._python, self._auto_device = str(exe), device == "auto"
        self._launch(resolve_device(device), timeout)

    def _launch(self, device: str, timeout: float) -> None:
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="dreamor-blender-"))
        self.connection_file = self._dir / "backend.json"
        self.log_path = self._dir / "backend-stderr.log"
        self.connection_file.unlink(missing_ok=True)
        cmd = [self._python, "-m", "dreamor.cli", "serve", "--connection-file", str(self.connection_file), "--device", device]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env, creationflags=flags
                )
            except OSError as exc:
                self.proc = None
                raise BackendUnavailable(f"cannot run the backend Python '{self._python}' ({exc}); check 'Backend Python' in the DREAMoR add-on preferences") from None
        self.owned, self.device, self.welcome, self.busy = True, device, None, False
        self.state, self.message = "starting", ""
        self._started_at = time.monotonic()
        self._deadline = self._started_at + timeout

    def stderr_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""
        except OSError:
            return ""

    def poll_start(self) -> str:
        """Advance a start: the state afterwards ('starting', 'ready' or 'stopped' with ``message``)."""
        if self.state != "starting":
            return self.state
        if self.proc is not None and self.proc.poll() is not None:
            code, why = self.proc.returncode, last_error_line(self.stderr_tail())
            self._forget_process()
            if self._auto_device and self.device == "cuda":  # no usable CUDA after all: try the CPU
                self._launch("cpu", self._deadline - time.monotonic() + 10.0)
                self.message = f"the CUDA backend did not start ({why or f'exit code {code}'}); trying the CPU"
                return self.state
            self.state = "stopped"
            self.message = f"the backend did not start: {why}" if why else f"the backend exited with code {code} before it was ready"
            return self.state
        if self.connection_file is not None and self.connection_file.exists():
            try:
                self._connect(self.connection_file)
            except BackendUnavailable as exc:
                if time.monotonic() > self._deadline:
                    self._fail_start(str(exc))
            return self.state
        if time.monotonic() > self._deadline:
            self._fail_start(f"the backend did not become ready within {self._deadline - self._started_at:.0f} s")
        return self.state

    def _fail_start(self, message: str) -> None:
        self._end_process()
        self.state, self.message = "stopped", message

    def wait_started(self, poll_s: float = 0.05) -> str:
        """Block until the start ends (background mode); the final state."""
        while self.poll_start() == "starting":
            time.sleep(poll_s)
        return self.state

    # -- attaching to a running backend
    def attach(self, connection_file: str) -> None:
        """Connect to a backend that is already running; BackendUnavailable says why not."""
        if self.state in ("starting", "ready"):
            self.stop()
        self.owned, self.proc, self.welcome = False, None, None
        self.state, self.message = "stopped", ""
        self._connect(Path(bpy_abspath(connection_file)))

    def _connect(self, path: Path) -> None:
        client_mod = wire().client
        client = None
        try:
            client = client_mod.Client.from_connection_file(path)
            welcome = client.hello(timeout=HELLO_TIMEOUT_S)
        except client_mod.ClientError as exc:
            if client is not None:
                client.close()
            raise BackendUnavailable(str(exc)) from None
        self.close_client()
        self.client, self.welcome, self.connection_file = client, welcome, path
        self.state, self.busy, self._last_ping = "ready", False, time.monotonic()
        if not self.owned:
            self.device = str(welcome.get("default_device", ""))

    # -- while running
    def check_alive(self) -> bool:
        """False (and state 'stopped' with a message) when the backend process has gone."""
        if self.state != "ready":
            return self.state == "starting"
        if self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                why = last_error_line(self.stderr_tail())
                self._gone(exit_sentence(code, why))
                return False
            return True
        pid = getattr(getattr(self.client, "info", None), "pid", None)
        if pid_alive(pid) is False:
            self._gone(f"the backend process {pid} is no longer running")
            return False
        return True

    def ping(self, timeout: float = 1.0) -> bool:
        """Refresh ``busy``; False (state 'stopped') when the backend does not answer."""
        if not self.check_alive():
            return False
        try:
            pong = self.client.ping(timeout=timeout)
        except wire().client.ClientError as exc:
            self._gone(f"the backend does not answer ({exc})")
            return False
        self.busy, self._last_ping = bool(pong.get("busy")), time.monotonic()
        return True

    def _gone(self, message: str) -> None:
        self.close_client()
        self._forget_process()
        self.state, self.message, self.busy, self.welcome = "stopped", message, False, None

    # -- stopping
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> str:
        """Stop an owned backend (shutdown request, then terminate/kill); detach from an attached one.

        Returns a sentence for the report.
        """
        owned, client = self.owned and self.proc is not None, self.client
        asked = False
        if client is not None and owned:
            try:
                client.shutdown(timeout=2.0)
                asked = True
            except wire().client.ClientError:
                pass
        self.close_client()
        if owned:
            text = "stopped the DREAMoR backend"
            self._end_process(grace=timeout if asked else 0.0, timeout=timeout)
            self.remove_files()
        elif client is not None:
            text = "disconnected from the DREAMoR backend (it keeps running; it was not started from Blender)"
        else:
            text = "the DREAMoR backend was not running"
            self._end_process(grace=0.0, timeout=timeout)
        self.state, self.message, self.busy, self.welcome = "stopped", "", False, None
        return text

    def _end_process(self, grace: float = 0.0, timeout: float = STOP_TIMEOUT_S) -> None:
        """Wait ``grace`` s for the process to exit by itself, then terminate (SIGTERM: the
        backend removes its connection file), then kill."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
        self._forget_process()

    def _forget_process(self) -> None:
        self.proc = None
        if self.owned and self.connection_file is not None:
            self.connection_file.unlink(missing_ok=True)  # a killed backend leaves it behind

    def remove_files(self) -> None:
        """Delete the temporary folder (connection file, stderr log) of a backend that has ended."""
        if self.proc is None and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = self.log_path = None

    def close_client(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None


def bpy_abspath(path: str) -> str:
    """Blender's '//relative' paths made absolute (plain paths unchanged)."""
    if path.startswith("//"):
        try:
            import bpy

            return bpy.path.abspath(path)
        except ImportError:
            pass
    return os.path.expanduser(path)


_backend: Backend | None = None


def get() -> Backend:
    """The session's backend (made on first use)."""
    global _backend
    if _backend is None:
        _backend = Backend()
    return _backend


def shutdown_owned() -> None:
    """Stop a backend Blender started (on unregister and at exit); leave attached ones running."""
    if _backend is None:
        return
    try:
        if _backend.proc is not None or _backend.client is not None:
            _backend.stop(timeout=2.0)
        _backend.remove_files()  # also after a backend that failed to start or died
    except Exception:  # never block Blender from quitting
        pass


# --------------------------------------------------------------------------- UI


def status(context=None) -> tuple[str, str, str]:
    """(state, text, detail) for the panel: state is 'missing', 'stopped', 'starting', 'ready' or 'busy'."""
    try:
        wire()
    except BackendUnavailable:
        return "missing", "Backend client not installed", "reinstall the add-on from its built zip"
    b = get()
    b.check_alive()
    job = getattr(context.window_manager, "dreamor_job", None) if context is not None else None
    if b.state == "starting":
        return "starting", f"Starting on {b.device}... ({b.elapsed():.0f} s)", b.message
    if b.state == "ready":
        where = b.device_name or "?"
        attached = "" if b.owned else " (attached)"
        if (job is not None and job.running) or b.busy:
            return "busy", f"Busy on {where}{attached}", ""
        return "ready", f"Ready on {where}{attached}", ""
    return "stopped", "Not running", b.message


_LIGHTS = {  # state -> icon candidates (Blender 4.4 renamed SEQUENCE_COLOR_* to STRIP_COLOR_*)
    "missing": ("ERROR",),
    "stopped": ("STRIP_COLOR_01", "SEQUENCE_COLOR_01", "UNLINKED"),
    "starting": ("STRIP_COLOR_03", "SEQUENCE_COLOR_03", "SORTTIME"),
    "ready": ("STRIP_COLOR_04", "SEQUENCE_COLOR_04", "LINKED"),
    "busy": ("STRIP_COLOR_05", "SEQUENCE_COLOR_05", "TIME"),
}
_icons: set[str] | None = None


def light_icon(state: str) -> str:
    """The status light's icon name, one this Blender has."""
    global _icons
    if _icons is None:
        import bpy

        _icons = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())
    return next((i for i in _LIGHTS[state] if i in _icons), "NONE")


def status_line(context) -> tuple[str, str]:
    """(text, icon) for the panel's backend row."""
    state, text, _detail = status(context)
    return text, light_icon(state)


def tag_redraw() -> None:
    """Redraw the sidebars and the status bar (progress and the status light)."""
    import bpy

    if bpy.app.background:
        return
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()):
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "STATUSBAR", "PREFERENCES"):
                area.tag_redraw()


def _watch() -> float | None:
    """bpy.app.timers callback (UI only): finish a start, ping now and then, redraw on change."""
    b = get()
    before = (b.state, b.busy)
    if b.state == "starting":
        b.poll_start()
    elif b.state == "ready" and not b.our_job and time.monotonic() - b._last_ping >= WATCH_INTERVAL_S:
        b.ping(timeout=1.0)
    elif b.state == "ready":
        b.check_alive()
    if (b.state, b.busy) != before or b.state == "starting":
        tag_redraw()
    if b.state == "stopped":
        return None
    return 0.2 if b.state == "starting" else 0.5


def watch() -> None:
    """Start the watcher timer (no-op in background mode, where timers never run)."""
    import bpy

    if not bpy.app.background and not bpy.app.timers.is_registered(_watch):
        bpy.app.timers.register(_watch, first_interval=0.1, persistent=True)


def unwatch() -> None:
    import bpy

    if bpy.app.timers.is_registered(_watch):
        bpy.app.timers.unregister(_watch)

