"""The ``offline`` world: search over Python's own documentation, no network needed.

The corpus (``offline_corpus``) is indexed once into SQLite FTS5 (``offline_index``) at the
path the caller gives (``DataPaths.corpus``); the first search builds it if needed (a few
seconds), or call ``prepare`` to do that up front.

A query (a goal's text or a curiosity topic) becomes an FTS5 query of its content words,
each one quoted so that FTS syntax in user text cannot break it, OR-combined: BM25 (titles
weighted above bodies) ranks documents that match more of the words, and rarer ones, first.
Only documents scoring at least ``RELEVANCE_FLOOR`` of the best one are candidates, and
each module's documents beyond the first ``PER_MODULE`` are demoted, so results are
varied. Searching the same words again pages on: repeat ``k`` brings
``max(1, n - k)`` not-yet-served candidates (next-best first) and repeats the top
already-served ones to fill up, so repeated searches give diminishing but non-zero new
items until the candidates run out.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
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
MAX_REMEMBERED_QUERIES = 1024


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


@dataclass(slots=True)
class _Served:
    repeats: int = 0  # how many times this query was searched before
    cursor: int = 0  # how many candidates (in diversified order) were served so far


class OfflineWorld(World):
    name = "offline"

    def __init__(self, config: Config, corpus_path: Path) -> None:
        self.config = config
        self.corpus_path = Path(corpus_path)
        self.index = CorpusIndex(self.corpus_path)
        self._served: OrderedDict[str, _Served] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return "offline (Python docs)"

    def prepare(self) -> IndexInfo:
        """Open (building if needed) the index now; raises ``CorpusError`` with one line."""
        return self.index.open()

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
        hits = self.index.query(match, CANDIDATES)
        if not hits:
            return SearchResponse(ok=False, error="no results")
        best = hits[0].score
        relevant = [h for h in hits if h.score <= best * RELEVANCE_FLOOR] if best < 0 else hits
        ordered = diversify(relevant)
        terms = content_words(query, singularize=False)[:MAX_QUERY_TERMS]
        key = " ".join(sorted(set(terms)))
        with self._lock:
            served = self._served.pop(key, None) or _Served()
            self._served[key] = served
            while len(self._served) > MAX_REMEMBERED_QUERIES:
                self._served.popitem(last=False)
            fresh_count = wanted if served.repeats == 0 else max(1, wanted - served.repeats)
            fresh = ordered[served.cursor:served.cursor + fresh_count]
            # Like a real engine, the top results come back too; the agent deduplicates them.
            again = ordered[:served.cursor][: wanted - len(fresh)]
            served.cursor += len(fresh)
            served.repeats += 1
        hint_score = best * HINT_FLOOR
        results = tuple(self._result(hit, terms, hit.score <= hint_score)
                        for hit in again + fresh)
        return SearchResponse(ok=True, results=results)

    def _result(self, hit: Hit, terms: list[str], central: bool) -> SearchResult:
        # A document that only brushes the query would send curiosity off topic.
        return SearchResult(title=clean(hit.title, 160), body=snippet(hit.body, terms),
                            url=hit.url, topics=hit.hints if central else ())

    def close(self) -> None:
        self.index.close()
