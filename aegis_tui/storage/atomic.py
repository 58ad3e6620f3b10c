"""Crash-safe file replacement: write a temp file, fsync it, ``os.replace`` it, fsync the dir.

A reader (or a restart after ``kill -9``) sees either the old file or the new one, never
half of each.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform/filesystem supports it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file; on clean exit it atomically becomes ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    with atomic_writer(path) as handle:
        write(handle)


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files a killed writer left behind; returns how many were removed."""
    removed = 0
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


def quarantine(path: Path, quarantine_dir: Path, reason: str) -> Path:
    """Move a damaged file aside (never delete it) and return where it went."""
    import time

    quarantine_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = quarantine_dir / f"{path.name}.{stamp}.{reason}"
    n = 1
    while target.exists():
        n += 1
        target = quarantine_dir / f"{path.name}.{stamp}.{reason}.{n}"
    os.replace(path, target)
    fsync_dir(path.parent)
    return target
