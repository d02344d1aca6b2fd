"""The connection file: where the backend listens and the key that signs its messages (Jupyter's connection
file), written by the backend and read by its clients; both here.

``{"transport": "tcp", "ip", "port", "key", "signature_scheme": "hmac-sha256", "pid", "protocol"}``, readable
by the user only (0600). Standard library only (the Blender add-on ships a verbatim copy).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .envelope import PROTOCOL_VERSION, SIGNATURE_SCHEME


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


def default_connection_file() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"dreamor-backend-{os.getpid()}.json"


def write_connection_file(path: str | os.PathLike, info: ConnectionInfo) -> Path:
    """Write the connection file atomically, readable by the user only (mode 0600)."""
    # dreamor.files.atomic_write does this in the backend; this module is standard library only (the add-on
    # ships a copy), so it writes its one private file itself.
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info.to_json(), fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_connection_file(path: Path, key: bytes) -> None:
    """Remove the connection file if it is still ours (a newer backend may have replaced it)."""
    try:
        if read_connection_file(path).key == key:
            path.unlink()
    except (ValueError, OSError):
        pass
