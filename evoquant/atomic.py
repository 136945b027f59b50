"""The one way evoquant writes a file: whole or not at all, even after a crash or a full disk.

The data goes to a hidden sibling, is flushed to disk, then renamed over the target, and
the directory entry is flushed too; on any failure the sibling is removed and the old
file is untouched. New files get the usual ``0666 & ~umask`` mode, whatever the writer
(safetensors and ``tempfile`` create theirs ``0600``, unreadable to a team's other users).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """``write(temporary_path)`` creates the file's content; then it replaces ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Strict JSON (no NaN), keys sorted, so equal states give equal files."""
    text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False)
    return write_text_atomic(path, text + "\n")
