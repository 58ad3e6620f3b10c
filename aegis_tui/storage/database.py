"""``agent.sqlite3``: goals, curiosity, knowledge, questions, proposals, metrics, phase.

SQLite in WAL mode, so the CLI (``status``, ``answer``, ``review``) can read and write from
another terminal while an agent runs: readers never block the writer and every write is a
short transaction. ``synchronous=NORMAL`` in WAL survives a killed process (not a power cut
mid-commit, which at worst loses the last transaction, never corrupts the file).

A damaged file is moved to ``quarantine/`` and as many rows as can still be read are copied
into a fresh database, so a user loses as little as possible and is told what happened.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from aegis_tui.storage.atomic import quarantine
from aegis_tui.storage.records import (
    ANSWERED,
    APPROVED,
    DUPLICATE,
    EXPIRED,
    LATE,
    PENDING,
    REJECTED,
    Goal,
    KnowledgeItem,
    Proposal,
    Question,
    Topic,
    TrainingRun,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS goals(
    id INTEGER PRIMARY KEY, text TEXT NOT NULL, norm TEXT NOT NULL UNIQUE,
    keywords TEXT NOT NULL, matched INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL, created_at REAL NOT NULL,
    completed_at REAL);
CREATE TABLE IF NOT EXISTS curiosity(
    norm TEXT PRIMARY KEY, topic TEXT NOT NULL, priority REAL NOT NULL,
    provenance TEXT NOT NULL, times_searched INTEGER NOT NULL DEFAULT 0,
    last_searched INTEGER, active INTEGER NOT NULL DEFAULT 1, added_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS curiosity_active ON curiosity(active, priority DESC);
CREATE TABLE IF NOT EXISTS knowledge(
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
    title TEXT NOT NULL, text TEXT NOT NULL, source TEXT NOT NULL,
    created_at REAL NOT NULL, iteration INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS questions(
    id INTEGER PRIMARY KEY, text TEXT NOT NULL, topic TEXT NOT NULL, status TEXT NOT NULL,
    answer TEXT, asked_at REAL NOT NULL, iteration INTEGER NOT NULL, resolved_at REAL,
    credited INTEGER NOT NULL DEFAULT 0, reward REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS questions_state ON questions(credited, status);
CREATE INDEX IF NOT EXISTS questions_status ON questions(status, asked_at);
CREATE TABLE IF NOT EXISTS proposals(
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, text TEXT NOT NULL,
    norm TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    iteration INTEGER NOT NULL, resolved_at REAL, credited INTEGER NOT NULL DEFAULT 0,
    reward REAL NOT NULL DEFAULT 0, applied TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS proposals_norm ON proposals(norm);
CREATE INDEX IF NOT EXISTS proposals_state ON proposals(credited, status);
CREATE INDEX IF NOT EXISTS proposals_status ON proposals(status, created_at);
CREATE TABLE IF NOT EXISTS metrics(
    iteration INTEGER PRIMARY KEY, at REAL NOT NULL, phase INTEGER NOT NULL,
    policy TEXT NOT NULL, action TEXT NOT NULL, reward REAL NOT NULL,
    delayed_reward REAL NOT NULL DEFAULT 0, knowledge_gained INTEGER NOT NULL,
    success INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS training_runs(
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
    examples INTEGER NOT NULL, forced INTEGER NOT NULL, status TEXT NOT NULL,
    val_accuracy REAL, train_accuracy REAL, message TEXT NOT NULL DEFAULT '',
    epochs TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS rl_updates(
    id INTEGER PRIMARY KEY, iteration INTEGER NOT NULL, at REAL NOT NULL, loss REAL NOT NULL,
    mean_reward REAL NOT NULL, entropy REAL NOT NULL, kl REAL NOT NULL);
"""

_TABLES = ("meta", "goals", "curiosity", "knowledge", "questions", "proposals", "metrics",
           "training_runs", "rl_updates")


class DatabaseError(RuntimeError):
    """The database cannot be used (newer schema, unreadable); the message says why."""


class Database:
    """A thread-safe handle on ``agent.sqlite3``. Open one per process (or per thread group)."""

    def __init__(self, path: Path, *, readonly: bool = False, quarantine_dir: Path | None = None,
                 busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.readonly = readonly
        self.recovered_from: Path | None = None
        self.recovery_message = ""
        self._lock = threading.RLock()
        self._busy_timeout_ms = busy_timeout_ms
        try:
            self._conn = self._open()
            if not readonly:
                self._check_and_migrate()
        except sqlite3.DatabaseError as exc:
            if readonly or quarantine_dir is None:
                raise DatabaseError(f"{path} is damaged or not a database ({exc})") from None
            with contextlib.suppress(Exception):
                self._conn.close()
            self._recover(quarantine_dir, str(exc))

    # -- connection management -------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.exists():
                raise DatabaseError(f"no agent database at {self.path}")
            uri = f"file:{self.path}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        if not self.readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        # Touch the file so "not a database" surfaces here, not at the first query.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn

    def _check_and_migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{self.path} was written by a newer aegis-tui (schema {version} > "
                f"{SCHEMA_VERSION}); upgrade aegis-tui or use another --data-dir"
            )
        ok = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {ok}")
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _recover(self, quarantine_dir: Path, reason: str) -> None:
        """Quarantine a damaged file and salvage what rows can still be read."""
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                quarantine(side, quarantine_dir, "damaged")
        moved = quarantine(self.path, quarantine_dir, "damaged")
        self.recovered_from = moved
        self._conn = self._open()
        self._check_and_migrate()
        salvaged, lost = self._salvage(moved)
        self.recovery_message = (
            f"{self.path.name} was damaged ({reason}); moved to {moved}, recovered {salvaged} "
            f"rows into a fresh database" + (f", {lost} tables unreadable" if lost else "")
        )

    def _salvage(self, source: Path) -> tuple[int, int]:
        rows = lost = 0
        try:
            old = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        except sqlite3.Error:
            return 0, len(_TABLES)
        try:
            for table in _TABLES:
                try:
                    cur = old.execute(f"SELECT * FROM {table}")
                    names = [d[0] for d in cur.description]
                    marks = ",".join("?" * len(names))
                    with self.transaction():
                        for row in cur:
                            try:
                                self._conn.execute(
                                    f"INSERT OR IGNORE INTO {table}({','.join(names)}) "
                                    f"VALUES ({marks})", row)
                                rows += 1
                            except sqlite3.Error:
                                continue
                except sqlite3.Error:
                    lost += 1
        finally:
            old.close()
        return rows, lost

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; nested use joins the outer one."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = self._query(sql, params)
        return rows[0][0] if rows else None

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        raw = self._scalar("SELECT value FROM meta WHERE key=?", (key,))
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            return default

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                      "SET value=excluded.value", (key, json.dumps(value)))

    def all_meta(self) -> dict[str, Any]:
        out = {}
        for row in self._query("SELECT key, value FROM meta"):
            with contextlib.suppress(ValueError):
                out[row["key"]] = json.loads(row["value"])
        return out

    # -- goals -----------------------------------------------------------------------------
    def add_goal(self, text: str, norm: str, keywords: Iterable[str], source: str,
                 now: float) -> int | None:
        """Insert a goal; returns its id, or None when an equal goal already exists."""
        with self.transaction() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO goals(text, norm, keywords, source, created_at) "
                "VALUES(?,?,?,?,?)", (text, norm, json.dumps(list(keywords)), source, now))
            return cur.lastrowid if cur.rowcount else None

    def goals(self, *, active_only: bool = False, limit: int | None = None) -> list[Goal]:
        """Goals, active ones first (then by id); ``active_only`` skips completed ones."""
        sql = "SELECT * FROM goals" + (" WHERE completed=0" if active_only else "")
        sql += " ORDER BY completed, id"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            Goal(id=r["id"], text=r["text"], keywords=tuple(json.loads(r["keywords"])),
                 matched=r["matched"], completed=bool(r["completed"]), source=r["source"],
                 created_at=r["created_at"])
            for r in self._query(sql, params)
        ]

    def update_goal(self, goal_id: int, matched: int, completed: bool, now: float) -> None:
        with self.transaction() as c:
            c.execute("UPDATE goals SET matched=?, completed=?, completed_at=CASE WHEN ? AND "
                      "completed_at IS NULL THEN ? ELSE completed_at END WHERE id=?",
                      (matched, int(completed), int(completed), now, goal_id))

    # -- curiosity -------------------------------------------------------------------------
    # A topic's effective priority is its base priority scaled by how long ago it was last
    # searched (0 right after, back to full after ``recovery`` iterations): the queue rotates,
    # and a topic is revisited once new material may have appeared. Each search also lowers
    # the base priority a little (curiosity satisfied), so well-worn topics make room for new
    # ones. Topics trimmed from the queue stay as inactive rows, so rediscovering one does
    # not reset its history.
    _EFFECTIVE = ("priority * CASE WHEN last_searched IS NULL THEN 1.0 ELSE "
                  "min(1.0, max(0.0, (? - last_searched) * 1.0 / ?)) END")
    MAX_INACTIVE_TOPICS = 5000
    SEARCH_DECAY = 0.85

    def upsert_topic(self, topic: str, norm: str, priority: float, provenance: str,
                     now: float) -> bool:
        """Add a topic, or re-activate / raise an existing one; True when it joined the queue."""
        with self.transaction() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO curiosity(norm, topic, priority, provenance, added_at) "
                "VALUES(?,?,?,?,?)", (norm, topic, priority, provenance, now))
            if cur.rowcount:
                return True
            was_active, searched = c.execute(
                "SELECT active, times_searched FROM curiosity WHERE norm=?", (norm,)).fetchone()
            c.execute("UPDATE curiosity SET priority=max(priority, ?), active=1 WHERE norm=?",
                      (priority * self.SEARCH_DECAY ** searched, norm))
            return not was_active

    def topics(self, limit: int | None = None, *, iteration: int | None = None,
               recovery: int = 1) -> list[Topic]:
        """Active topics, best first; with ``iteration``, ranked by effective priority."""
        if iteration is None:
            expr, params = "priority", []
        else:
            expr, params = self._EFFECTIVE, [iteration, max(1, recovery)]
        sql = (f"SELECT *, {expr} AS effective FROM curiosity WHERE active=1 "
               "ORDER BY effective DESC, added_at, norm")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Topic(topic=r["topic"], priority=r["effective"], provenance=r["provenance"],
                      times_searched=r["times_searched"], added_at=r["added_at"],
                      last_searched=r["last_searched"])
                for r in self._query(sql, params)]

    def topic_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM curiosity WHERE active=1") or 0)

    def mark_searched(self, norm: str, iteration: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE curiosity SET times_searched=times_searched+1, last_searched=?, "
                      "priority=priority*? WHERE norm=?", (iteration, self.SEARCH_DECAY, norm))

    def remove_topic(self, norm: str) -> bool:
        """Take a topic out of the queue (its history is kept); False if it was not in it."""
        with self.transaction() as c:
            return c.execute("UPDATE curiosity SET active=0 WHERE norm=? AND active=1",
                             (norm,)).rowcount > 0

    def trim_topics(self, keep: int, *, iteration: int = 0, recovery: int = 1) -> int:
        """Deactivate the lowest-ranked topics beyond ``keep``; returns how many went."""
        with self.transaction() as c:
            gone = c.execute(
                f"UPDATE curiosity SET active=0 WHERE active=1 AND norm NOT IN ("
                f"SELECT norm FROM curiosity WHERE active=1 ORDER BY {self._EFFECTIVE} DESC, "
                "added_at, norm LIMIT ?)", (iteration, max(1, recovery), keep)).rowcount
            inactive = c.execute("SELECT count(*) FROM curiosity WHERE active=0").fetchone()[0]
            # Deleting in batches (10% over the cap) keeps this off every search's path.
            if inactive > self.MAX_INACTIVE_TOPICS * 1.1:
                c.execute("DELETE FROM curiosity WHERE active=0 AND norm NOT IN (SELECT norm "
                          "FROM curiosity WHERE active=0 ORDER BY added_at DESC LIMIT ?)",
                          (self.MAX_INACTIVE_TOPICS,))
            return gone

    # -- knowledge -------------------------------------------------------------------------
    def add_knowledge(self, items: Iterable[tuple[str, KnowledgeItem]]) -> list[KnowledgeItem]:
        """Insert ``(dedup key, item)`` pairs; return only the items that were new."""
        new: list[KnowledgeItem] = []
        with self.transaction() as c:
            for key, item in items:
                cur = c.execute(
                    "INSERT OR IGNORE INTO knowledge(key, topic, title, text, source, "
                    "created_at, iteration) VALUES(?,?,?,?,?,?,?)",
                    (key, item.topic, item.title, item.text, item.source, item.created_at,
                     item.iteration))
                if cur.rowcount:
                    new.append(item)
        return new

    def knowledge_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM knowledge") or 0)

    def knowledge_sources(self) -> dict[str, int]:
        rows = self._query("SELECT source, count(*) AS n FROM knowledge GROUP BY source "
                           "ORDER BY n DESC LIMIT 20")
        return {r["source"]: r["n"] for r in rows}

    def latest_knowledge(self, limit: int = 10) -> list[KnowledgeItem]:
        return [
            KnowledgeItem(topic=r["topic"], title=r["title"], text=r["text"], source=r["source"],
                          created_at=r["created_at"], iteration=r["iteration"], id=r["id"])
            for r in self._query("SELECT * FROM knowledge ORDER BY id DESC LIMIT ?", (limit,))
        ]

    # -- questions -------------------------------------------------------------------------
    def add_question(self, text: str, topic: str, iteration: int, now: float) -> int:
        with self.transaction() as c:
            cur = c.execute("INSERT INTO questions(text, topic, status, asked_at, iteration) "
                            "VALUES(?,?,?,?,?)", (text, topic, PENDING, now, iteration))
            return int(cur.lastrowid or 0)

    def questions(self, status: str | None = None, limit: int = 100) -> list[Question]:
        if status is None:
            rows = self._query("SELECT * FROM questions ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query("SELECT * FROM questions WHERE status=? ORDER BY id LIMIT ?",
                               (status, limit))
        return [_question(r) for r in rows]

    def question(self, question_id: int) -> Question | None:
        rows = self._query("SELECT * FROM questions WHERE id=?", (question_id,))
        return _question(rows[0]) if rows else None

    def count_questions(self, status: str) -> int:
        return int(self._scalar("SELECT count(*) FROM questions WHERE status=?", (status,)) or 0)

    def resolve_question(self, question_id: int, status: str, answer: str | None,
                         now: float) -> bool:
        """Answer or expire a pending question; False when it was not pending."""
        assert status in (ANSWERED, EXPIRED)
        with self.transaction() as c:
            return c.execute(
                "UPDATE questions SET status=?, answer=?, resolved_at=? "
                "WHERE id=? AND status=?", (status, answer, now, question_id, PENDING)
            ).rowcount > 0

    def expire_questions(self, asked_before: float, now: float,
                         keep: Collection[int] = ()) -> int:
        """Expire pending questions asked before ``asked_before``, except those in ``keep``
        (on a person's screen)."""
        keep = [int(k) for k in keep]
        spared = f" AND id NOT IN ({','.join('?' * len(keep))})" if keep else ""
        with self.transaction() as c:
            return c.execute("UPDATE questions SET status=?, resolved_at=? WHERE status=? AND "
                             f"asked_at<=?{spared}",
                             (EXPIRED, now, PENDING, asked_before, *keep)).rowcount

    def store_late_answer(self, question_id: int, answer: str, now: float) -> bool:
        """Keep an answer to an expired question, for the agent to learn without reward.

        Not yet credited: it stays ``expired`` and is credited (nothing) once, as usual.
        Already credited: it becomes ``late`` and uncredited, so the agent picks it up once
        more but credits nothing a second time. False when the question is not expired
        or already has an answer.
        """
        with self.transaction() as c:
            return c.execute(
                "UPDATE questions SET answer=?, resolved_at=?, "
                "status=CASE WHEN credited THEN ? ELSE status END, credited=0 "
                "WHERE id=? AND status=? AND answer IS NULL",
                (answer, now, LATE, question_id, EXPIRED)).rowcount > 0

    def uncredited_questions(self) -> list[Question]:
        rows = self._query("SELECT * FROM questions WHERE credited=0 AND status!=? ORDER BY id",
                           (PENDING,))
        return [_question(r) for r in rows]

    def mark_question_credited(self, question_id: int, reward: float) -> None:
        with self.transaction() as c:
            c.execute("UPDATE questions SET credited=1, reward=? WHERE id=?",
                      (reward, question_id))

    # -- proposals -------------------------------------------------------------------------
    def add_proposal(self, kind: str, payload: dict[str, Any], text: str, norm: str,
                     status: str, iteration: int, now: float) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO proposals(kind, payload, text, norm, status, created_at, iteration, "
                "credited) VALUES(?,?,?,?,?,?,?,?)",
                (kind, json.dumps(payload), text, norm, status, now, iteration,
                 int(status != PENDING)))
            return int(cur.lastrowid or 0)

    def proposal_exists(self, norm: str) -> bool:
        return self._scalar("SELECT 1 FROM proposals WHERE norm=? LIMIT 1", (norm,)) is not None

    def proposals(self, status: str | None = None, limit: int = 100) -> list[Proposal]:
        if status is None:
            rows = self._query("SELECT * FROM proposals ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query("SELECT * FROM proposals WHERE status=? ORDER BY id LIMIT ?",
                               (status, limit))
        return [_proposal(r) for r in rows]

    def proposal(self, proposal_id: int) -> Proposal | None:
        rows = self._query("SELECT * FROM proposals WHERE id=?", (proposal_id,))
        return _proposal(rows[0]) if rows else None

    def count_proposals(self, status: str) -> int:
        return int(self._scalar("SELECT count(*) FROM proposals WHERE status=?", (status,)) or 0)

    def resolve_proposal(self, proposal_id: int, status: str, reviewer: str, now: float) -> bool:
        assert status in (APPROVED, REJECTED, EXPIRED)
        with self.transaction() as c:
            return c.execute(
                "UPDATE proposals SET status=?, reviewer=?, resolved_at=? WHERE id=? AND "
                "status=?", (status, reviewer, now, proposal_id, PENDING)).rowcount > 0

    def expire_proposals(self, created_before: float, now: float) -> int:
        with self.transaction() as c:
            return c.execute("UPDATE proposals SET status=?, reviewer='expired', resolved_at=? "
                             "WHERE status=? AND created_at<=?",
                             (EXPIRED, now, PENDING, created_before)).rowcount

    def uncredited_proposals(self) -> list[Proposal]:
        rows = self._query("SELECT * FROM proposals WHERE credited=0 AND status!=? ORDER BY id",
                           (PENDING,))
        return [_proposal(r) for r in rows]

    def mark_proposal_credited(self, proposal_id: int, reward: float, applied: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE proposals SET credited=1, reward=?, applied=? WHERE id=?",
                      (reward, applied, proposal_id))

    # -- metrics ---------------------------------------------------------------------------
    def record_iteration(self, iteration: int, now: float, phase: int, policy: str, action: str,
                         reward: float, knowledge_gained: int, success: bool) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO metrics(iteration, at, phase, policy, action, reward, "
                "knowledge_gained, success) VALUES(?,?,?,?,?,?,?,?)",
                (iteration, now, phase, policy, action, reward, knowledge_gained, int(success)))

    def add_delayed_reward(self, iteration: int, reward: float) -> None:
        with self.transaction() as c:
            c.execute("UPDATE metrics SET delayed_reward=delayed_reward+? WHERE iteration=?",
                      (reward, iteration))

    def delayed_rewards(self) -> dict[int, float]:
        """Delayed credit per iteration (only iterations that received any)."""
        rows = self._query("SELECT iteration, delayed_reward FROM metrics "
                           "WHERE delayed_reward != 0")
        return {int(r[0]): float(r[1]) for r in rows}

    # What one iteration did, for the decision inspector.
    def metrics_at(self, iteration: int) -> sqlite3.Row | None:
        """The metrics row of one iteration (None once pruned, or never recorded)."""
        rows = self._query("SELECT * FROM metrics WHERE iteration=?", (iteration,))
        return rows[0] if rows else None

    def questions_asked_at(self, iteration: int) -> list[Question]:
        return [_question(r) for r in
                self._query("SELECT * FROM questions WHERE iteration=? ORDER BY id",
                            (iteration,))]

    def proposals_made_at(self, iteration: int) -> list[Proposal]:
        return [_proposal(r) for r in
                self._query("SELECT * FROM proposals WHERE iteration=? ORDER BY id",
                            (iteration,))]

    def last_iteration(self) -> int:
        return int(self._scalar("SELECT max(iteration) FROM metrics") or 0)

    def recent_metrics(self, limit: int) -> list[sqlite3.Row]:
        rows = self._query("SELECT * FROM metrics ORDER BY iteration DESC LIMIT ?", (limit,))
        return rows[::-1]

    def rolling_reward(self, policy: str, window: int) -> tuple[float | None, int]:
        """Mean total reward of the last ``window`` decisions by ``policy`` and their count."""
        row = self._query(
            "SELECT avg(reward + delayed_reward), count(*) FROM (SELECT reward, delayed_reward "
            "FROM metrics WHERE policy=? ORDER BY iteration DESC LIMIT ?)", (policy, window))[0]
        return (row[0], int(row[1]))

    def policy_rewards(self, policy: str, limit: int,
                       since: int | None = None) -> list[tuple[int, float]]:
        """``(iteration, total reward)`` of the last ``limit`` decisions by ``policy``
        (after iteration ``since``, when given), newest first."""
        sql = "SELECT iteration, reward + delayed_reward FROM metrics WHERE policy=?"
        params: list[Any] = [policy]
        if since is not None:
            sql += " AND iteration > ?"
            params.append(since)
        sql += " ORDER BY iteration DESC LIMIT ?"
        params.append(limit)
        return [(int(r[0]), float(r[1])) for r in self._query(sql, params)]

    def action_counts(self, policy: str | None = None) -> dict[str, int]:
        if policy is None:
            rows = self._query("SELECT action, count(*) AS n FROM metrics GROUP BY action")
        else:
            rows = self._query("SELECT action, count(*) AS n FROM metrics WHERE policy=? "
                               "GROUP BY action", (policy,))
        return {r["action"]: r["n"] for r in rows}


    def prune_metrics(self, keep: int) -> int:
        """Keep the newest ``keep`` iterations of metrics so a long run stays bounded."""
        with self.transaction() as c:
            return c.execute("DELETE FROM metrics WHERE iteration <= (SELECT max(iteration) "
                             "FROM metrics) - ?", (keep,)).rowcount

    def prune_resolved(self, keep_questions: int, keep_duplicates: int) -> int:
        """Forget settled questions older than the newest ``keep_questions`` and duplicate
        proposals beyond the newest ``keep_duplicates``, so a long run stays bounded.

        Pending or uncredited records are never touched, and neither is any distinct
        proposal (duplicate detection needs every idea ever proposed); an answer lives on
        as the knowledge item it became. Returns how many rows went.
        """
        with self.transaction() as c:
            gone = c.execute(
                "DELETE FROM questions WHERE status != ? AND credited = 1 AND id <= "
                "(SELECT max(id) FROM questions) - ?", (PENDING, keep_questions)).rowcount
            gone += c.execute(
                "DELETE FROM proposals WHERE status = ? AND credited = 1 AND id NOT IN "
                "(SELECT id FROM proposals WHERE status = ? ORDER BY id DESC LIMIT ?)",
                (DUPLICATE, DUPLICATE, keep_duplicates)).rowcount
            return gone

    # -- training runs and RL --------------------------------------------------------------
    def start_training_run(self, examples: int, forced: bool, now: float) -> int:
        with self.transaction() as c:
            cur = c.execute("INSERT INTO training_runs(started_at, examples, forced, status) "
                            "VALUES(?,?,?,?)", (now, examples, int(forced), "running"))
            return int(cur.lastrowid or 0)

    def update_training_run(self, run_id: int, *, status: str | None = None,
                            val_accuracy: float | None = None,
                            train_accuracy: float | None = None, message: str | None = None,
                            epochs: list[dict[str, Any]] | None = None,
                            finished_at: float | None = None) -> None:
        sets, params = [], []
        for name, value in (("status", status), ("val_accuracy", val_accuracy),
                            ("train_accuracy", train_accuracy), ("message", message),
                            ("finished_at", finished_at)):
            if value is not None:
                sets.append(f"{name}=?")
                params.append(value)
        if epochs is not None:
            sets.append("epochs=?")
            params.append(json.dumps(epochs))
        if not sets:
            return
        with self.transaction() as c:
            c.execute(f"UPDATE training_runs SET {', '.join(sets)} WHERE id=?",
                      (*params, run_id))

    def training_runs(self, limit: int = 20) -> list[TrainingRun]:
        return [
            TrainingRun(id=r["id"], started_at=r["started_at"], finished_at=r["finished_at"],
                        examples=r["examples"], forced=bool(r["forced"]), status=r["status"],
                        val_accuracy=r["val_accuracy"], train_accuracy=r["train_accuracy"],
                        message=r["message"], epochs=_json_list(r["epochs"]))
            for r in self._query("SELECT * FROM training_runs ORDER BY id DESC LIMIT ?",
                                 (limit,))
        ]

    def record_rl_update(self, iteration: int, now: float, loss: float, mean_reward: float,
                         entropy: float, kl: float) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO rl_updates(iteration, at, loss, mean_reward, entropy, kl) "
                      "VALUES(?,?,?,?,?,?)", (iteration, now, loss, mean_reward, entropy, kl))
            # Keep the table bounded on long runs; the count lives in meta.
            c.execute("DELETE FROM rl_updates WHERE id <= (SELECT max(id) FROM rl_updates) - 5000")

    def recent_rl_updates(self, limit: int = 100) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM rl_updates ORDER BY id DESC LIMIT ?", (limit,))[::-1]


def _json_list(raw: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _question(r: sqlite3.Row) -> Question:
    return Question(id=r["id"], text=r["text"], topic=r["topic"], status=r["status"],
                    answer=r["answer"], asked_at=r["asked_at"], iteration=r["iteration"],
                    resolved_at=r["resolved_at"], credited=bool(r["credited"]),
                    reward=r["reward"])


def _proposal(r: sqlite3.Row) -> Proposal:
    try:
        payload = json.loads(r["payload"])
    except ValueError:
        payload = {}
    return Proposal(id=r["id"], kind=r["kind"], payload=payload if isinstance(payload, dict)
                    else {}, text=r["text"], norm=r["norm"], status=r["status"],
                    created_at=r["created_at"], iteration=r["iteration"],
                    resolved_at=r["resolved_at"], credited=bool(r["credited"]),
                    reward=r["reward"], applied=r["applied"], reviewer=r["reviewer"])

