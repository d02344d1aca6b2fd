"""The add-on's side of the backend: the wire package and the status shown in the panel.

``dreamor_wire`` is a copy of ``backend/dreamor/server/{protocol,client}.py`` made by
``scripts/build_addon.py``; it needs ``zmq`` (the bundled pyzmq wheel). Both are imported
lazily, so the add-on registers and its other tools work without them.

Still to wire (the client lands separately): starting/stopping the backend from the
preferences' Python, ``hello``/``welcome``, and the status line below.
"""
from __future__ import annotations

import importlib


class BackendUnavailable(RuntimeError):
    """The wire package or pyzmq is missing; the message says how to fix it."""


def wire():
    """The ``dreamor_wire`` subpackage (protocol + client), imported on first use."""
    try:
        return importlib.import_module(f"{__package__}.dreamor_wire")
    except ImportError as exc:
        raise BackendUnavailable(
            f"the backend client is not available ({exc}); install the add-on from the zip that "
            "scripts/build_addon.py builds (it bundles the client and pyzmq)"
        ) from None


def status_line(context) -> tuple[str, str]:
    """(text, icon) for the panel's backend row.

    Placeholder until the client is wired: reports the job state's ``backend_status`` when
    something sets it, otherwise whether the wire package is present.
    """
    job = getattr(context.window_manager, "dreamor_job", None)
    if job is not None and job.backend_status:
        return job.backend_status, "LINKED"
    try:
        wire()
    except BackendUnavailable:
        return "Backend client not installed", "ERROR"
    return "Backend not running", "UNLINKED"
