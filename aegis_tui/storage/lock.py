"""One agent per data directory: a ``filelock`` lock on ``aegis.lock``, and a holder record.

The lock is ``filelock.FileLock``: ``flock`` on Linux and macOS, ``LockFileEx`` on Windows.
Either way the operating system drops it when its process dies, so a lock left by a killed
process is never stale in effect: the next instance takes it over.

Who holds it is written next to it, in ``aegis.lock.holder`` (pid, host, start time,
command), because a Windows lock keeps other processes from reading the locked file itself.
A clean release deletes the record; one found by the next holder was left by a process that
died holding the lock, and ``previous_holder`` says whose it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from aegis_tui.storage.atomic import atomic_write_bytes

HOLDER_SUFFIX = ".holder"


class DataDirLocked(RuntimeError):
    """Another live process holds the data directory."""


def holder_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + HOLDER_SUFFIX)


def _file_lock(path: Path) -> FileLock:
    # Not thread-local: the dashboard opens the runtime in one thread and may close it from
    # another. Non-blocking: a second agent is refused at once, never queued.
    return FileLock(str(path), blocking=False, thread_local=False)


class DataDirLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: FileLock | None = None
        self.previous_holder: dict[str, object] | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = _file_lock(self.path)
        try:
            lock.acquire()
        except Timeout:
            raise DataDirLocked(
                f"data directory {self.path.parent} is in use by "
                f"{describe(_read_record(holder_path(self.path)))}; "
                "stop it first or pass another --data-dir"
            ) from None
        try:
            previous = _read_record(holder_path(self.path))
            if previous and previous.get("pid") != os.getpid():
                self.previous_holder = previous
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(os.path.basename(a) if i == 0 else a
                                    for i, a in enumerate(sys.argv))[:200],
            }
            atomic_write_bytes(holder_path(self.path), json.dumps(info).encode())
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            with contextlib.suppress(OSError):
                holder_path(self.path).unlink()
        finally:
            self._lock.release()
            self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_record(path: Path) -> dict[str, object] | None:
    try:
        raw = path.read_bytes()[:4096]
        data = json.loads(raw.decode()) if raw.strip() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(holder: dict[str, object] | None) -> str:
    if not holder:
        return "another aegis-tui process"
    return (
        f"aegis-tui pid {holder.get('pid')} on {holder.get('host')} "
        f"(started {holder.get('started')}: {holder.get('command')})"
    )


def read_holder(path: Path) -> dict[str, object] | None:
    """Who holds the lock now (``{}`` when the record is unreadable), or None when nobody
    does (for ``status``)."""
    if not path.exists():
        return None
    lock = _file_lock(path)
    try:
        lock.acquire()
    except Timeout:
        return _read_record(holder_path(path)) or {}
    except OSError:
        return None  # e.g. a read-only data directory: nobody can be running an agent on it
    lock.release()
    return None
