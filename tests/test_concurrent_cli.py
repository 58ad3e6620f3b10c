"""Another terminal while a headless agent runs: the lock, the reports, answers and approvals.

A real ``aegis-tui run --headless`` runs in a child process; this test is the second
terminal. A second agent is refused with a message naming the running one; ``status``,
``training``, ``export``, ``answer``, ``review`` and ``train`` work against the live data
directory (SQLite WAL readers and short writes), and the running agent credits the answer
and the approval to the decisions that earned them and starts the training it was asked
for. A lock left by a ``kill -9`` is taken over by the next agent, which names the old one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.headless import FAST, HeadlessRun, cli_in_process, wait_until

pytestmark = pytest.mark.timeout(180)

# Slow enough that a proposal is still pending for a moment when the test looks at it.
ARGS = ("--world", "sim", "--teacher", "rules", "--think-interval", "0.02", "--seed", "3",
        "--collect-threshold", "100000", "--epochs", "1")
ANSWER = "Read the asyncio docs: an event loop runs one [b]callback[/b] at a time."


def _row(data: Path, sql: str, *params: Any) -> sqlite3.Row | None:
    conn = sqlite3.connect(f"file:{data / 'agent.sqlite3'}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchone()
    finally:
        conn.close()


def _first_id(listing: str) -> list[int]:
    return [int(line[1:].split()[0]) for line in listing.splitlines() if line.startswith("#")]


def _resolve_one(capsys: pytest.CaptureFixture[str], data: Path, command: str,
                 *extra: str) -> int:
    """Answer (or approve) a record the running agent created and still waits on.

    The sim's own human and reviewer resolve records too, so one may be gone by the time
    this terminal acts on it ("already answered"); then the next pending one is tried.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, out, _ = cli_in_process(capsys, command, "--list", "--data-dir", str(data))
        assert code == 0
        for record_id in _first_id(out):
            code, out, err = cli_in_process(capsys, command, str(record_id), *extra,
                                            "--data-dir", str(data))
            if code == 0:
                return record_id
            assert "is already" in err, err
        time.sleep(0.05)
    raise AssertionError(f"no pending record to {command} within a minute")


def test_cli_from_another_terminal_reaches_the_running_agent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with HeadlessRun(data, tmp_path / "agent.out", *ARGS) as run:
        assert run.wait_for_text("agent running", 60), run.output()

        # One agent per data directory: the second is told who holds it.
        code, out, err = cli_in_process(capsys, "run", "--headless", *FAST,
                                        "--data-dir", str(data))
        assert code == 3
        assert f"is in use by aegis-tui pid {run.pid} on " in err and "--data-dir" in err

        code, out, _ = cli_in_process(capsys, "status", "--json", "--data-dir", str(data))
        status = json.loads(out)
        assert code == 0 and status["agent_running"] and status["agent"]["pid"] == run.pid
        code, out, _ = cli_in_process(capsys, "training", "--json", "--data-dir", str(data))
        assert code == 0 and json.loads(out)["phase"]["number"] == 1

        question = _resolve_one(capsys, data, "answer", ANSWER)
        proposal = _resolve_one(capsys, data, "review", "approve")

        # The running agent applies and credits both on its next iterations.
        def credited() -> bool:
            q = _row(data, "SELECT * FROM questions WHERE id=?", question)
            p = _row(data, "SELECT * FROM proposals WHERE id=?", proposal)
            return bool(q and q["credited"] and p and p["credited"])

        assert wait_until(credited, 30), run.output()[-2000:]
        q = _row(data, "SELECT * FROM questions WHERE id=?", question)
        assert q["status"] == "answered" and q["answer"] == ANSWER and q["reward"] == 0.5
        p = _row(data, "SELECT * FROM proposals WHERE id=?", proposal)
        assert p["status"] == "approved" and p["reviewer"] == "human"
        assert p["reward"] == 10.0 and p["applied"] and not p["applied"].startswith("not")
        earned = _row(data, "SELECT delayed_reward FROM metrics WHERE iteration=?",
                      p["iteration"])
        assert earned is not None and earned[0] >= 10.0, "credit reaches the proposing decision"

        code, out, err = cli_in_process(capsys, "export", "--data-dir", str(data))
        document = json.loads(out)
        assert code == 0 and document["metadata"]["total_examples"] >= 1
        assert len(document["examples"]) == document["metadata"]["total_examples"]

        # ``train`` asks the running agent, which starts the run in its own child process.
        assert wait_until(lambda: json.loads(cli_in_process(
            capsys, "training", "--json", "--data-dir", str(data))[1])["examples"] >= 60, 60)
        code, out, err = cli_in_process(capsys, "train", "--data-dir", str(data))
        assert code == 0 and f"asked the running agent (pid {run.pid})" in out
        assert run.wait_for_text("TRAINING FORCED on", 30), run.output()[-2000:]

        assert run.stop() == 0, run.output()[-3000:]
        final = run.output()
    assert f"question #{question} answered (reward +0.50)" in final
    assert f"proposal #{proposal} approved (reward +10.00)" in final


def test_a_lock_left_by_a_killed_agent_is_taken_over(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with HeadlessRun(data, tmp_path / "agent.out", *FAST, "--collect-threshold",
                     "100000") as run:
        assert run.wait_for_text("agent running", 60), run.output()
        run.kill()
        pid = run.pid
    code, out, _ = cli_in_process(capsys, "status", "--json", "--data-dir", str(data))
    assert code == 0 and json.loads(out)["agent_running"] is False
    code, out, err = cli_in_process(capsys, "run", "--headless", "--quiet", *FAST,
                                    "--iterations", "3", "--data-dir", str(data))
    assert code == 0, err
    line = next(x for x in out.splitlines() if "took over the lock" in x)
    assert f"left by aegis-tui pid {pid} on " in line and line.endswith("no longer running")
