"""Storage: atomic writes, the instance lock (live and stale), a damaged database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from aegis_tui.storage.atomic import atomic_write_bytes, atomic_writer, quarantine
from aegis_tui.storage.database import Database, DatabaseError
from aegis_tui.storage.lock import DataDirLock, DataDirLocked, read_holder


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.tmp")), "the temp file is cleaned up"


def test_quarantine_moves_never_deletes(tmp_path):
    bad = tmp_path / "thing.db"
    bad.write_bytes(b"junk")
    moved = quarantine(bad, tmp_path / "q", "damaged")
    assert not bad.exists() and moved.read_bytes() == b"junk"


def test_lock_held_by_a_live_process_is_refused(tmp_path):
    lock = DataDirLock(tmp_path / "aegis.lock").acquire()
    try:
        with pytest.raises(DataDirLocked, match=f"pid {os.getpid()}"):
            DataDirLock(tmp_path / "aegis.lock").acquire()
        assert read_holder(tmp_path / "aegis.lock")["pid"] == os.getpid()
    finally:
        lock.release()
    assert read_holder(tmp_path / "aegis.lock") is None


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from pathlib import Path
        from aegis_tui.storage.lock import DataDirLock
        DataDirLock(Path({str(tmp_path / 'aegis.lock')!r})).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(DataDirLocked, match=f"pid {child.pid}"):
        DataDirLock(tmp_path / "aegis.lock").acquire()
    child.send_signal(signal.SIGKILL)
    child.wait()
    lock = DataDirLock(tmp_path / "aegis.lock").acquire()
    assert lock.previous_holder and lock.previous_holder["pid"] == child.pid
    lock.release()


def test_damaged_database_is_quarantined_and_salvaged(tmp_path):
    path = tmp_path / "agent.sqlite3"
    db = Database(path, quarantine_dir=tmp_path / "q")
    db.add_goal("keep me", "keep me", ["keep"], "config", 0.0)
    db.close()
    data = bytearray(path.read_bytes())
    data[:16] = b"definitely not!!"  # the SQLite header
    path.write_bytes(bytes(data))
    db = Database(path, quarantine_dir=tmp_path / "q")
    assert "damaged" in db.recovery_message
    assert db.recovered_from and db.recovered_from.exists()
    assert db.goals() == [] or db.goals()[0].text == "keep me"
    db.add_goal("new", "new", [], "config", 0.0)  # and it is usable
    db.close()


def test_newer_schema_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "agent.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(DatabaseError, match="newer aegis-tui"):
        Database(path, quarantine_dir=tmp_path / "q")


def test_readonly_open_of_missing_database_is_clear(tmp_path):
    with pytest.raises(DatabaseError, match="no agent database"):
        Database(tmp_path / "missing.sqlite3", readonly=True)
