"""Writing files whole or not at all: every file dreamor writes goes through :func:`atomic_write`."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
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
