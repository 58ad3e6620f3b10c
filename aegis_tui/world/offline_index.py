"""The offline corpus's SQLite FTS5 index: built once, checked on open, rebuilt when stale.

The index is a cache of ``offline_corpus.collect_documents``: it is built into a temporary
file and moved into place with ``os.replace`` (a crash leaves the old index or none, never
half of one), and it records the corpus version and the Python version it was built from.
When either differs, or the file is not a healthy SQLite database, it is simply rebuilt;
nothing in it is user data, so there is nothing to quarantine.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aegis_tui.world.offline_corpus import collect_documents

# Bump whenever collection, document shapes or the schema change: old indexes get rebuilt.
CORPUS_VERSION = "1"
TITLE_WEIGHT = 6.0  # bm25 column weights: a term in the title counts six times one in the body
BODY_WEIGHT = 1.0
MODULE_BOOST = 1.6  # a module's own overview outranks its functions on the same words

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE VIRTUAL TABLE docs USING fts5(
    title, body, name UNINDEXED, module UNINDEXED, url UNINDEXED, hints UNINDEXED,
    kind UNINDEXED, tokenize = 'porter unicode61'
);
"""
_INSERT = "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?)"


class CorpusError(RuntimeError):
    """The index could not be opened or built; the message is one line."""


@dataclass(frozen=True, slots=True)
class IndexInfo:
    documents: int
    size_bytes: int
    build_seconds: float  # how long the build took (when this process built it: also now)
    built: bool  # True when this call built it, False when an existing index was opened


@dataclass(frozen=True, slots=True)
class Hit:
    title: str
    body: str
    name: str
    module: str
    url: str
    hints: tuple[str, ...]
    score: float  # bm25: lower (more negative) is better


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def build_index(path: Path) -> IndexInfo:
    """Build the index at ``path`` from scratch (temp file, then ``os.replace``)."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        conn = sqlite3.connect(tmp)
        try:
            # A half-built temp file is thrown away, so durability only matters at the end.
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.executescript(_SCHEMA)
            count = 0
            batch: list[tuple[str, ...]] = []
            for doc in collect_documents():
                batch.append((doc.title, doc.body, doc.name, doc.module, doc.url,
                              "\n".join(doc.hints), doc.kind))
                if len(batch) >= 500:
                    conn.executemany(_INSERT, batch)
                    count += len(batch)
                    batch.clear()
            conn.executemany(_INSERT, batch)
            count += len(batch)
            conn.execute("INSERT INTO docs(docs) VALUES ('optimize')")
            seconds = time.perf_counter() - started
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("corpus_version", CORPUS_VERSION), ("python_version", python_version()),
                ("documents", str(count)), ("build_seconds", f"{seconds:.3f}"),
            ])
            conn.commit()
        finally:
            conn.close()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return IndexInfo(count, path.stat().st_size, time.perf_counter() - started, True)


def _check(conn: sqlite3.Connection) -> int:
    """Raise CorpusError unless ``conn`` is a healthy index of this version; return doc count."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("corpus_version") != CORPUS_VERSION:
        raise CorpusError(f"corpus version {meta.get('corpus_version')!r} is not current")
    if meta.get("python_version") != python_version():
        raise CorpusError(f"built for Python {meta.get('python_version')}")
    if conn.execute("PRAGMA quick_check").fetchone() != ("ok",):
        raise CorpusError("index is damaged")
    documents = int(meta.get("documents", "0"))
    if documents <= 0:
        raise CorpusError("index is empty")
    return documents


class CorpusIndex:
    """The open index; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.info: IndexInfo | None = None
        self.rebuild_reason = ""  # why the last ``open`` had to build, for the log
        self._broken = ""  # a build that failed is not retried on every search

    def _connect(self) -> sqlite3.Connection:
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def open(self) -> IndexInfo:
        """Open the index, building or rebuilding it when missing, stale or damaged."""
        with self._lock:
            if self._conn is not None and self.info is not None:
                return self.info
            if self._broken:
                raise CorpusError(self._broken)
            self.rebuild_reason = ""
            if self.path.exists():
                try:
                    conn = self._connect()
                except sqlite3.Error as exc:
                    self.rebuild_reason = f"cannot open: {exc}"
                else:
                    try:
                        documents = _check(conn)
                    except (sqlite3.Error, CorpusError, ValueError) as exc:
                        conn.close()
                        self.rebuild_reason = str(exc) or type(exc).__name__
                    else:
                        self._conn = conn
                        size = self.path.stat().st_size
                        self.info = IndexInfo(documents, size, 0.0, False)
                        return self.info
            else:
                self.rebuild_reason = "not built yet"
            try:
                if self.path.is_dir():
                    raise CorpusError(f"{self.path} is a directory")
                info = build_index(self.path)
                if info.documents == 0:
                    raise CorpusError("this Python installation has no documentation to index")
                self._conn = self._connect()
            except (OSError, sqlite3.Error, CorpusError) as exc:
                self._broken = f"cannot build the offline corpus at {self.path}: {exc}"
                raise CorpusError(self._broken) from None
            self.info = info
            return info

    def query(self, match: str, limit: int) -> list[Hit]:
        """Documents matching an FTS5 ``match`` expression, best first."""
        self.open()
        with self._lock:
            if self._conn is None:
                raise CorpusError("offline corpus is closed")
            rows = self._conn.execute(
                "SELECT title, body, name, module, url, hints,"
                " bm25(docs, ?, ?) * (CASE kind WHEN 'module' THEN ? ELSE 1.0 END) AS score"
                " FROM docs WHERE docs MATCH ? ORDER BY score LIMIT ?",
                (TITLE_WEIGHT, BODY_WEIGHT, MODULE_BOOST, match, limit),
            ).fetchall()
        return [Hit(title, body, name, module, url, tuple(h for h in hints.split("\n") if h),
                    float(score))
                for title, body, name, module, url, hints, score in rows]

    def module_sizes(self) -> dict[str, int]:
        """Documents per module name, also counting each under its top-level package."""
        self.open()
        with self._lock:
            if self._conn is None:
                raise CorpusError("offline corpus is closed")
            rows = self._conn.execute("SELECT module, count(*) FROM docs GROUP BY module")
            sizes: dict[str, int] = {}
            for module, count in rows:
                sizes[module] = sizes.get(module, 0) + count
                top = module.split(".")[0]
                if top != module:
                    sizes[top] = sizes.get(top, 0) + count
            return sizes

    def stamp(self) -> str:
        """Identifies this build of the index (paging state made for another is stale)."""
        self.open()
        with self._lock:
            if self._conn is None:
                raise CorpusError("offline corpus is closed")
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        return ":".join(meta.get(k, "") for k in ("corpus_version", "python_version",
                                                  "documents", "build_seconds"))

    def reset(self) -> None:
        """Forget the open connection (after an error) so the next use checks the file again."""
        with self._lock:
            self._broken = ""
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None
            self.info = None

    def close(self) -> None:
        self.reset()
