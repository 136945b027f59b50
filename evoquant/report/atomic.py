"""Atomic file writes, so a crash mid-report never leaves a half-written file in a run dir."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary sibling of ``path``, then rename it over ``path``.

    The sibling is opened like any new file (not `tempfile.mkstemp`, whose
    0600 mode would make the reports unreadable to other users).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """UTF-8 text version of `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))
