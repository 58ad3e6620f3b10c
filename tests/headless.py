"""Test helpers: a real ``aegis-tui run --headless`` in a child process, and what it left.

The fault and concurrency tests start the agent exactly as a user does (``python -m
aegis_tui run --headless``), watch its output file and data directory while it runs, and
kill it (``SIGKILL``) or stop it (``SIGTERM``, the graceful path) from outside.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis_tui.training.example_log import ScanResult, read_examples

WORKER_MODULE = "aegis_tui.training.worker"

FAST = ("--world", "sim", "--teacher", "rules", "--think-interval", "0")


class HeadlessRun:
    """One headless agent process; its stdout and stderr go to ``out``."""

    def __init__(self, data_dir: Path, out: Path, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.out = out
        cmd = [sys.executable, "-m", "aegis_tui", "run", "--headless", "--quiet", *args,
               "--data-dir", str(data_dir)]
        self._out_handle = open(out, "wb")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(cmd, stdout=self._out_handle, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL,
                                        env={**os.environ, **(env or {})})

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_for(self, condition: Callable[[], bool], timeout_s: float,
                 poll_s: float = 0.01) -> bool:
        """Poll ``condition`` until it holds (True) or the process exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            if not self.running():
                return condition()
            time.sleep(poll_s)
        return False

    def wait_for_text(self, text: str, timeout_s: float) -> bool:
        return self.wait_for(lambda: text in self.output(), timeout_s)

    def kill(self) -> None:
        """``kill -9``: no handler, no cleanup, no final flush."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (what Ctrl-C does too) and wait for the graceful exit."""
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 120.0) -> int:
        try:
            code = self.process.wait(timeout=timeout_s)
        finally:
            self._out_handle.close()
        return code

    def __enter__(self) -> HeadlessRun:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running():
            self.kill()
        self._out_handle.close()


def cli_in_process(capsys: Any, *args: str) -> tuple[int, str, str]:
    """Run ``aegis-tui ARGS`` in this process; ``(exit code, stdout, stderr)``."""
    from aegis_tui.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # how some commands end early, as ``sys.exit`` would
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The single ``aegis-tui: error: ...`` line ``err`` must be (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("aegis-tui: error: ") and "Traceback" not in err
    return lines[0]


def worker_pids(data_dir: Path) -> list[int]:
    """Training workers running on ``data_dir`` (found through /proc)."""
    found = []
    needle = str(data_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if WORKER_MODULE.encode() in cmdline and needle in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


def scan_log(data_dir: Path) -> ScanResult:
    return read_examples(data_dir / "hrm_training_data.msgpack")


def read_meta(data_dir: Path) -> dict[str, Any]:
    """The ``meta`` table as another process sees it (read-only, so nothing is changed)."""
    import json

    path = data_dir / "agent.sqlite3"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    finally:
        conn.close()
    return {key: json.loads(value) for key, value in rows}


def db_phase(data_dir: Path) -> int:
    state = read_meta(data_dir).get("phase_state") or {}
    return int(state.get("phase", 1))


def integrity(data_dir: Path) -> str:
    conn = sqlite3.connect(f"file:{data_dir / 'agent.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
