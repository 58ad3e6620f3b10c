"""Crash-safe file replacement: write a temp file, fsync it, ``os.replace`` it, fsync the dir.

A reader (or a restart after ``kill -9``) sees either the old file or the new one, never
half of each.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
import time
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


def _open_shared_temp(path: Path) -> tuple[int, str]:
    """A new temp file next to ``path`` with the permissions a new file normally gets.

    ``mkstemp`` always creates mode 0600, right for our own files but not for one a person
    asked for (``export -o``). Opening with 0666 lets the kernel apply the umask (0644 for
    the usual 022); replacing an existing file keeps that file's mode instead.
    """
    try:
        keep: int | None = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        keep = None
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        if keep is not None:
            with contextlib.suppress(OSError):
                os.chmod(tmp, keep)
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file next to {path}")


@contextlib.contextmanager
def atomic_writer(path: Path, *, private: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file; on clean exit it atomically becomes ``path``.

    ``private``: mode 0600 (the agent's own files); otherwise the umask's permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    else:
        fd, tmp = _open_shared_temp(path)
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


def atomic_write_bytes(path: Path, data: bytes, *, private: bool = True) -> None:
    with atomic_writer(path, private=private) as handle:
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
