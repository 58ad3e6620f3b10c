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
        held = DataDirLock(Path({str(tmp_path / "aegis.lock")!r})).acquire()
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
    import sqlite3

    path = tmp_path / "agent.sqlite3"
    db = Database(path, quarantine_dir=tmp_path / "q")
    db.add_goal("keep me", "keep me", ["keep"], "config", 0.0)
    db.add_goal("and me", "and me", ["me"], "config", 0.0)
    db.close()
    # Overwrite one index's page: the integrity check fails, the tables' rows still read.
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE type='index' AND "
                        "name='curiosity_active'").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page_size:root * page_size] = b"\xff" * page_size
    path.write_bytes(bytes(data))
    db = Database(path, quarantine_dir=tmp_path / "q")
    assert "damaged" in db.recovery_message and "recovered" in db.recovery_message
    assert db.recovered_from and db.recovered_from.exists()
    assert sorted(g.text for g in db.goals()) == ["and me", "keep me"]
    db.add_goal("new", "new", [], "config", 0.0)  # and it is usable
    assert len(db.goals()) == 3
    db.close()


def test_an_unreadable_database_is_quarantined_and_replaced(tmp_path):
    path = tmp_path / "agent.sqlite3"
    db = Database(path, quarantine_dir=tmp_path / "q")
    db.add_goal("lost", "lost", [], "config", 0.0)
    db.close()
    data = bytearray(path.read_bytes())
    data[:16] = b"definitely not!!"  # the SQLite header: nothing can be read
    path.write_bytes(bytes(data))
    db = Database(path, quarantine_dir=tmp_path / "q")
    assert "damaged" in db.recovery_message
    assert db.recovered_from and db.recovered_from.exists()
    assert db.goals() == []
    db.add_goal("new", "new", [], "config", 0.0)
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


def test_the_lock_is_filelock_and_its_holder_record_sits_beside_it(tmp_path):
    import json
    import threading

    import filelock

    path = tmp_path / "aegis.lock"
    lock = DataDirLock(path).acquire()
    holder = tmp_path / "aegis.lock.holder"
    record = json.loads(holder.read_text())
    assert record["pid"] == os.getpid() and record["host"]
    # Any filelock user sees it held: the lock is the portable library's, not our fcntl.
    with pytest.raises(filelock.Timeout):
        filelock.FileLock(str(path), blocking=False).acquire()
    # Opened in one thread, released in another (the dashboard does both).
    done = threading.Thread(target=lock.release)
    done.start()
    done.join(5)
    assert not lock.held and not holder.exists()
    again = DataDirLock(path).acquire()
    assert again.previous_holder is None  # a clean release leaves no record to report
    again.release()


def test_a_garbage_holder_record_still_refuses_with_a_clear_message(tmp_path):
    path = tmp_path / "aegis.lock"
    lock = DataDirLock(path).acquire()
    try:
        (tmp_path / "aegis.lock.holder").write_bytes(b"\x00\xffnot json")
        with pytest.raises(DataDirLocked, match="in use by another aegis-tui process"):
            DataDirLock(path).acquire()
        assert read_holder(path) == {}
    finally:
        lock.release()


def test_export_style_writes_get_umask_permissions(tmp_path):
    target = tmp_path / "export.json"
    old = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"{}", private=False)
        assert (os.stat(target).st_mode & 0o777) == 0o644
        os.umask(0o077)
        other = tmp_path / "other.json"
        atomic_write_bytes(other, b"{}", private=False)
        assert (os.stat(other).st_mode & 0o777) == 0o600
        target.chmod(0o640)  # replacing a file keeps the mode it has
        atomic_write_bytes(target, b"[]", private=False)
        assert (os.stat(target).st_mode & 0o777) == 0o640 and target.read_bytes() == b"[]"
    finally:
        os.umask(old)
    atomic_write_bytes(tmp_path / "own.bin", b"x")  # the agent's own files stay private
    assert (os.stat(tmp_path / "own.bin").st_mode & 0o777) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))
