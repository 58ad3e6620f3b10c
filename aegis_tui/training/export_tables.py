"""``aegis-tui export --format csv|jsonl --table metrics|epochs|rl``: the run's numbers as rows.

Three tables, read from ``agent.sqlite3`` on a read-only connection (so it works while an
agent runs), with fixed, documented columns (README, "Exports"):

- ``metrics``: one row per iteration (the newest 50,000 are kept): iteration, time (Unix
  seconds), phase, policy (``teacher`` or ``hrm``), action, reward (immediate),
  delayed_reward (credited later: answers, approvals), knowledge_gained, success.
- ``epochs``: one row per imitation epoch of every training run: run, started_at, examples,
  forced, status, epoch, loss, train_accuracy, val_accuracy, elapsed_s.
- ``rl``: one row per Phase 3 policy-gradient update (the newest 5,000): update, iteration,
  time, loss, mean_reward, entropy, kl.

A missing, damaged or foreign database is an ``ExportError`` with a one-line reason.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from typing import Any

from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database, DatabaseError

TABLES = ("metrics", "epochs", "rl")
COLUMNS: dict[str, tuple[str, ...]] = {
    "metrics": ("iteration", "time", "phase", "policy", "action", "reward", "delayed_reward",
                "knowledge_gained", "success"),
    "epochs": ("run", "started_at", "examples", "forced", "status", "epoch", "loss",
               "train_accuracy", "val_accuracy", "elapsed_s"),
    "rl": ("update", "iteration", "time", "loss", "mean_reward", "entropy", "kl"),
}
_ALL = 10**12  # "no limit" for the database's LIMIT queries


class ExportError(ValueError):
    """The export cannot be made; the message says why in one line."""


def _metrics(db: Database) -> list[dict[str, Any]]:
    return [{"iteration": r["iteration"], "time": r["at"], "phase": r["phase"],
             "policy": r["policy"], "action": r["action"], "reward": r["reward"],
             "delayed_reward": r["delayed_reward"],
             "knowledge_gained": r["knowledge_gained"], "success": bool(r["success"])}
            for r in db.recent_metrics(_ALL)]


def _epochs(db: Database) -> list[dict[str, Any]]:
    rows = []
    for run in reversed(db.training_runs(limit=_ALL)):  # oldest run first
        for e in run.epochs:
            if not isinstance(e, dict):
                continue
            rows.append({"run": run.id, "started_at": run.started_at, "examples": run.examples,
                         "forced": run.forced, "status": run.status, "epoch": e.get("epoch"),
                         "loss": e.get("loss"), "train_accuracy": e.get("train_accuracy"),
                         "val_accuracy": e.get("val_accuracy"),
                         "elapsed_s": e.get("elapsed_s")})
    return rows


def _rl(db: Database) -> list[dict[str, Any]]:
    return [{"update": r["id"], "iteration": r["iteration"], "time": r["at"],
             "loss": r["loss"], "mean_reward": r["mean_reward"], "entropy": r["entropy"],
             "kl": r["kl"]}
            for r in db.recent_rl_updates(_ALL)]


_READERS = {"metrics": _metrics, "epochs": _epochs, "rl": _rl}
_SQL_TABLES = {"metrics": "metrics", "epochs": "training_runs", "rl": "rl_updates"}


def read_table(paths: DataPaths, table: str) -> list[dict[str, Any]]:
    """Every row of ``table`` (one of ``TABLES``) with the columns of ``COLUMNS[table]``."""
    if table not in _READERS:
        raise ExportError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if not paths.database.exists():
        raise ExportError(f"no agent database in {paths.root} (run the agent first, or pass "
                          "--data-dir)")
    try:
        db = Database(paths.database, readonly=True)
    except DatabaseError as exc:
        raise ExportError(str(exc)) from None
    try:
        return _READERS[table](db)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise ExportError(f"{paths.database} has no {_SQL_TABLES[table]} table (not an "
                              "aegis-tui database, or a damaged one)") from None
        raise ExportError(f"{paths.database} could not be read: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise ExportError(f"{paths.database} is damaged or not a database ({exc})") from None
    finally:
        db.close()


def to_csv(table: str, rows: list[dict[str, Any]]) -> str:
    """A header line and one line per row; booleans as 1/0, missing values empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS[table], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: int(v) if isinstance(v, bool) else v for k, v in row.items()})
    return out.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    """One JSON object per line (JSON Lines), the same keys as the CSV columns."""
    return "".join(json.dumps(row) + "\n" for row in rows)
