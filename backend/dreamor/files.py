"""Writing files whole or not at all: every file dreamor writes goes through :func:`atomic_write`."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import OutputFileError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, private: bool = False,
                 encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an error it replaces
    ``path`` (an interrupted or failed write leaves the old file, or none, never half of one).

    The folder is created. ``private``: readable by the user only (0600, e.g. a file holding a key);
    otherwise the usual mode for a new file (0666 less the umask). ``mode`` is 'wb' or 'w'.
    """
    path = Path(path)
    _check_layout(path, folder=False)  # the temporary file below is the real try
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    try:
        if not private:
            os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """OutputFileError unless ``path`` (a file, or with ``folder`` a folder) can be written: not a folder where a
    file goes (or a file where a folder goes), and its nearest existing folder is a folder this user may write in.
    Leaves nothing behind, so a command can check its output before it starts the work."""
    path = Path(path)
    parent = _check_layout(path, folder)
    try:  # a real try (root passes os.access, a read-only mount or /proc fails only here); removed at once
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot be written in {parent} ({exc.strerror or exc})") from None


def _check_layout(path: Path, folder: bool) -> Path:
    """OutputFileError if a folder stands where the file ``path`` goes (or a file where the folder goes), or a file
    where one of its folders should be; else the nearest existing folder, where it would be written."""
    if path.exists() and path.is_dir() != folder:
        raise OutputFileError(f"{path}: is a {'file' if folder else 'folder'}; give a {'folder' if folder else 'file'} path")
    if folder and path.is_dir():
        return path
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputFileError(f"{path}: cannot be written, {parent} is a file, not a folder")
    return parent
