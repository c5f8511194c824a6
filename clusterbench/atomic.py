"""Atomic file writes (a temporary file in the same folder, then a rename), without torch:
the engine's checkpoints and JSON files and bench's summary use the same writer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def file_mode() -> int:
    """The mode a plain open() would give a new file: 0666 less the umask (0644 by default).
    mkstemp makes 0600 files, which lab-mates on a shared server cannot read."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, write, before_replace=None) -> None:
    """Writes via a temporary file in the same folder, then renames: never a half-written file.
    The file gets the umask's mode, as a plain open() would give it. `before_replace` (if any)
    runs once the new file is on disk, just before the rename (e.g. to keep the old file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
