"""The ``offline`` world: search over Python's own documentation, no network needed.

The corpus (``offline_corpus``) is indexed once into SQLite FTS5 (``offline_index``) at the
path the caller gives (``DataPaths.corpus``); the first search builds it if needed (a few
seconds), or call ``prepare`` to do that up front.

A query (a goal's text or a curiosity topic) becomes an FTS5 query of its content words,
each one quoted so that FTS syntax in user text cannot break it, OR-combined: BM25 (titles
weighted above bodies) ranks documents that match more of the words, and rarer ones, first.
Only documents scoring at least ``RELEVANCE_FLOOR`` of the best one are candidates, and
each module's documents beyond the first ``PER_MODULE`` are demoted, so results are
varied.

Like a search engine that remembers what it has shown you, the world serves the best
candidates it has *not* served yet (from any query), and fills the page with the top
already-served ones: so the first search of a query pays in full, repeats page on through
what is left, and a query whose relevant documents were all served (through it or through
other queries) brings nothing new. What was served is kept on disk
(``offline_paging.sqlite3`` beside the corpus), so a restart pages on where the last run
stopped. Results hint at related modules, those with the most documents not yet served
first, and modules already read through are not suggested: curiosity points at what is
still unexplored, so searches keep paying until most of the corpus is known.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from pathlib import Path

from aegis_tui.config import Config
from aegis_tui.text import clean
from aegis_tui.world.base import SearchResponse, SearchResult, World
from aegis_tui.world.offline_index import CorpusError, CorpusIndex, Hit, IndexInfo
from aegis_tui.world.words import content_words, stem

MAX_QUERY_TERMS = 12
CANDIDATES = 200  # best-ranked documents considered per query
RELEVANCE_FLOOR = 0.25  # a candidate scores at least this fraction of the best document
HINT_FLOOR = 0.5  # only documents this close to the best suggest their modules as topics
PER_MODULE = 2  # documents of one module at full score (see ``diversify``)
MODULE_DECAY = 0.7
SNIPPET_CHARS = 300


def fts_query(text: str) -> str:
    """The FTS5 MATCH expression for natural-language ``text``; "" when it has no words."""
    terms = content_words(text, singularize=False)[:MAX_QUERY_TERMS]
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def diversify(hits: list[Hit], per_module: int = PER_MODULE) -> list[Hit]:
    """Best first, but each further ``per_module`` documents of one module score lower.

    A module's third and fourth documents count ``MODULE_DECAY`` of their score, the fifth
    and sixth its square, and so on: other modules' good documents get their turn without
    strong documents being pushed behind every weak module's best one.
    """
    seen: dict[str, int] = {}
    keyed = []
    for rank, hit in enumerate(hits):
        count = seen.get(hit.module, 0)
        seen[hit.module] = count + 1
        # bm25 is negative, better is lower: scaling toward 0 demotes.
        keyed.append((hit.score * MODULE_DECAY ** (count // per_module), rank, hit))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [hit for _, _, hit in keyed]


def snippet(body: str, terms: list[str], limit: int = SNIPPET_CHARS) -> str:
    """A one-line excerpt of ``body``: its start, or the sentence where a term first appears."""
    text = clean(body, None)
    if len(text) <= limit or not terms:
        return clean(text, limit)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(stem(t)) for t in terms) + ")",
                         re.IGNORECASE)
    match = pattern.search(text)
    if match is None or match.start() < limit * 0.6:
        return clean(text, limit)
    start = max(text.rfind(". ", 0, match.start()) + 2, match.start() - 120)
    return clean("…" + text[start:], limit)


PAGING_NAME = "offline_paging.sqlite3"
_PAGING_SCHEMA = """
CREATE TABLE IF NOT EXISTS served(url TEXT PRIMARY KEY, module TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Paging:
    """What the world has served, persisted: the URLs, and per module how many.

    The file is a cache of the agent's reading, not user data: when it is damaged or was
    made for another corpus (the corpus was rebuilt), it starts afresh.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self.urls: set[str] = set()
        self.per_module: dict[str, int] = {}

    def open(self, corpus_stamp: str) -> None:
        if self._conn is not None:
            return
        try:
            self._conn = self._connect(corpus_stamp)
        except sqlite3.Error:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._conn = self._connect(corpus_stamp)
        for url, module in self._conn.execute("SELECT url, module FROM served"):
            self.urls.add(url)
            self._count(module)

    def _connect(self, corpus_stamp: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_PAGING_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='corpus'").fetchone()
            if row is None or row[0] != corpus_stamp:
                with conn:
                    conn.execute("DELETE FROM served")
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('corpus', ?)",
                                 (corpus_stamp,))
        except BaseException:
            conn.close()
            raise
        return conn

    def _count(self, module: str) -> None:
        # Counted like ``CorpusIndex.module_sizes``: under the module and its package.
        for name in {module, module.split(".")[0]}:
            self.per_module[name] = self.per_module.get(name, 0) + 1

    def add(self, hits: list[Hit]) -> None:
        new = [h for h in hits if h.url not in self.urls]
        for hit in new:
            self.urls.add(hit.url)
            self._count(hit.module)
        if new and self._conn is not None:
            with self._conn:
                self._conn.executemany("INSERT OR IGNORE INTO served VALUES (?, ?)",
                                       [(h.url, h.module) for h in new])

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None
        self.urls.clear()
        self.per_module.clear()


class OfflineWorld(World):
    name = "offline"

    def __init__(self, config: Config, corpus_path: Path,
                 paging_path: Path | None = None) -> None:
        self.config = config
        self.corpus_path = Path(corpus_path)
        self.index = CorpusIndex(self.corpus_path)
        self.paging = Paging(Path(paging_path) if paging_path is not None
                             else self.corpus_path.with_name(PAGING_NAME))
        self._module_sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return "offline (Python docs)"

    def prepare(self) -> IndexInfo:
        """Open (building if needed) the index now; raises ``CorpusError`` with one line."""
        info = self.index.open()
        with self._lock:
            if not self._module_sizes:
                self._module_sizes = self.index.module_sizes()
            try:
                self.paging.open(self.index.stamp())
            except (OSError, sqlite3.Error) as exc:
                raise CorpusError(f"cannot keep the offline paging state at "
                                  f"{self.paging.path}: {exc}") from None
        return info

    def coverage(self) -> tuple[int, int]:
        """(documents served so far, documents in the corpus)."""
        info = self.prepare()
        return len(self.paging.urls), info.documents

    def search(self, query: str, max_results: int) -> SearchResponse:
        try:
            return self._search(query, max_results)
        except CorpusError as exc:
            return SearchResponse(ok=False, error=clean(str(exc), 200))
        except Exception as exc:  # e.g. the file vanished mid-query: rebuild next time
            self.index.reset()
            return SearchResponse(ok=False, error=clean(f"offline search failed: {exc}", 200))

    def _search(self, query: str, max_results: int) -> SearchResponse:
        if not isinstance(query, str):
            return SearchResponse(ok=False, error="query must be text")
        match = fts_query(query)
        if not match:
            return SearchResponse(ok=False, error="no searchable words in the query")
        wanted = max(1, min(int(max_results), 50))
        self.prepare()
        hits = self.index.query(match, CANDIDATES)
        if not hits:
            return SearchResponse(ok=False, error="no results")
        best = hits[0].score
        relevant = [h for h in hits if h.score <= best * RELEVANCE_FLOOR] if best < 0 else hits
        ordered = diversify(relevant)
        terms = content_words(query, singularize=False)[:MAX_QUERY_TERMS]
        with self._lock:
            fresh = [h for h in ordered if h.url not in self.paging.urls][:wanted]
            # Like a real engine, the top results come back too; the agent deduplicates them.
            again = [h for h in ordered if h.url in self.paging.urls][: wanted - len(fresh)]
            self.paging.add(fresh)
            hint_score = best * HINT_FLOOR
            results = tuple(self._result(hit, terms, hit.score <= hint_score)
                            for hit in again + fresh)
        return SearchResponse(ok=True, results=results)

    def unexplored(self, module: str) -> int:
        """Documents of ``module`` (a top-level or dotted name) not served yet."""
        return self._module_sizes.get(module, 0) - self.paging.per_module.get(module, 0)

    def _result(self, hit: Hit, terms: list[str], central: bool) -> SearchResult:
        # A document that only brushes the query would send curiosity off topic.
        hints: tuple[str, ...] = ()
        if central:
            open_hints = [h for h in hit.hints if self.unexplored(h) > 0]
            hints = tuple(sorted(open_hints, key=lambda h: -self.unexplored(h)))
        return SearchResult(title=clean(hit.title, 160), body=snippet(hit.body, terms),
                            url=hit.url, topics=hints)

    def close(self) -> None:
        self.index.close()
        with self._lock:
            self.paging.close()
            self._module_sizes = {}
