"""The offline world: relevant and varied results from Python's docs, paging, robustness."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis_tui.config import DEFAULT_GOALS, Config
from aegis_tui.world import offline_index
from aegis_tui.world.offline import OfflineWorld, fts_query, snippet
from aegis_tui.world.offline_corpus import CorpusDoc, docs_url
from aegis_tui.world.offline_index import CORPUS_VERSION, build_index

GC, ASYNC, REGEX, SERIAL = DEFAULT_GOALS


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real corpus, built once per test session (a few seconds)."""
    path = tmp_path_factory.mktemp("corpus") / "offline_corpus.sqlite3"
    info = build_index(path)
    assert info.documents > 2000
    return path


@pytest.fixture
def world(corpus_path: Path, tmp_path: Path) -> Iterator[OfflineWorld]:
    w = OfflineWorld(Config(), corpus_path, paging_path=tmp_path / "paging.sqlite3")
    yield w
    w.close()


def _modules(results: tuple) -> set[str]:
    return {r.title.split(" ")[0].split(".")[0].split(":")[0] for r in results}


@pytest.mark.parametrize(("goal", "module"), [
    (GC, "gc"), (ASYNC, "asyncio"), (REGEX, "re"), (SERIAL, "pickle"), (SERIAL, "json"),
])
def test_default_goals_find_their_module(world: OfflineWorld, goal: str, module: str) -> None:
    response = world.search(goal, 5)
    assert response.ok, response.error
    assert len(response.results) == 5
    assert module in _modules(response.results)
    if module != "asyncio":  # a package: its submodules' overviews come first
        overview = [r for r in response.results if r.title.startswith(f"{module} — ")]
        assert overview, [r.title for r in response.results]
        url = f"https://docs.python.org/3/library/{module}.html#module-{module}"
        assert overview[0].url == url


@pytest.mark.parametrize("goal", DEFAULT_GOALS)
def test_results_are_varied_and_well_formed(world: OfflineWorld, goal: str) -> None:
    response = world.search(goal, 5)
    assert len(_modules(response.results)) >= 2
    urls = [r.url for r in response.results]
    assert len(set(urls)) == len(urls)
    for result in response.results:
        assert result.title and result.body and len(result.body) <= 300
        assert result.url.startswith(("https://docs.python.org/3/", "pydoc:"))
        assert "\n" not in result.body


def test_results_hint_related_modules(world: OfflineWorld) -> None:
    response = world.search(GC, 5)
    hints = {t for r in response.results for t in r.topics}
    assert "gc" in hints


def test_repeated_search_pages_on_until_the_query_is_read_through(
        corpus_path: Path, tmp_path: Path) -> None:
    world = OfflineWorld(Config(), corpus_path, paging_path=tmp_path / "paging.sqlite3")
    seen: set[str] = set()
    gains = []
    for _ in range(60):
        response = world.search("event loop", 5)
        assert response.ok
        urls = [r.url for r in response.results]
        assert len(set(urls)) == len(urls) == 5
        gains.append(len(set(urls) - seen))
        seen |= set(urls)
    # Full pages of new documents, then (the relevant ones read) nothing new at all.
    first_dry = gains.index(0)
    assert first_dry > 3 and all(g == 5 for g in gains[:first_dry - 1])
    assert set(gains[first_dry:]) == {0}
    # The query's words, not their order or case, identify a repeat.
    again = world.search("Loop EVENT", 5)
    assert not {r.url for r in again.results} - seen
    world.close()


def test_paging_persists_across_restarts_and_queries(corpus_path: Path, tmp_path: Path) -> None:
    paging = tmp_path / "paging.sqlite3"
    first = OfflineWorld(Config(), corpus_path, paging_path=paging)
    served = {r.url for _ in range(3) for r in first.search("regular expressions", 5).results}
    assert len(served) == 15
    assert first.coverage()[0] == 15
    first.close()
    restarted = OfflineWorld(Config(), corpus_path, paging_path=paging)
    assert restarted.coverage()[0] == 15
    page = {r.url for r in restarted.search("regular expressions", 5).results}
    assert len(page - served) == 5, "a restart pages on, not from the first page"
    # Another query on the same subject serves what the first did not.
    other = [r.url for r in restarted.search("regex pattern matching re", 5).results]
    assert set(other) - served - page
    restarted.close()
    # A damaged paging file starts afresh instead of failing searches.
    paging.write_bytes(b"not a database" * 100)
    for extra in paging.parent.glob(paging.name + "-*"):
        extra.unlink()
    fresh = OfflineWorld(Config(), corpus_path, paging_path=paging)
    assert fresh.search("regular expressions", 5).ok
    assert fresh.coverage()[0] == 5
    fresh.close()


def test_hints_point_at_what_is_not_read_yet(world: OfflineWorld) -> None:
    assert "gc" in {t for r in world.search("collector generations", 5).results
                    for t in r.topics}
    world.prepare()
    gc_docs = [h for h in world.index.query('"gc"', 2000) if h.module == "gc"]
    world.paging.add(gc_docs)  # as if every gc document had been read
    assert world.unexplored("gc") == 0
    hints = [t for _ in range(4) for r in world.search("collector generations", 5).results
             for t in r.topics]
    assert "gc" not in hints  # it was the first hint before
    assert all(world.unexplored(h) > 0 for h in hints)


@pytest.mark.parametrize("query", [
    '"', "*", "NEAR(", ")", "", "   ", "AND OR NOT", "title:gc", "^gc", "gc*", '"unclosed',
    "x" * 100_000, "memory " * 5000, "\x00\x1b[2J", "😀 emoji", "ü" * 50, "{}[]()'\"",
])
def test_hostile_queries_never_raise(world: OfflineWorld, query: str) -> None:
    response = world.search(query, 5)
    assert response.ok or response.error
    assert len(response.results) <= 5


def test_fts_query_quotes_terms_and_drops_stopwords() -> None:
    assert fts_query(GC) == '"memory" OR "garbage" OR "collection"'
    assert fts_query('NEAR( "memory" gc* OR') == '"memory" OR "gc"'
    assert fts_query("the and of how") == ""
    assert fts_query("word " * 100).count('"') == 2  # deduplicated


def test_snippet_shows_where_the_query_matches() -> None:
    body = "Intro sentence. " * 40 + "Here the garbage collector runs. " + "Tail. " * 20
    text = snippet(body, ["garbage"])
    assert "garbage collector" in text and len(text) <= 300
    assert snippet("short body", ["x"]) == "short body"


def test_docs_urls() -> None:
    base = "https://docs.python.org/3/library/"
    assert docs_url("json", "dumps") == f"{base}json.html#json.dumps"
    assert docs_url("gc") == f"{base}gc.html#module-gc"
    assert docs_url("posixpath", "join") == f"{base}os.path.html#os.path.join"
    assert docs_url("builtins", "len") == f"{base}functions.html#len"
    assert docs_url("asyncio.events", "new_event_loop") == "pydoc:asyncio.events.new_event_loop"


def test_building_imports_no_side_effect_modules(corpus_path: Path) -> None:
    for name in ("antigravity", "this", "idlelib", "tkinter", "turtle"):
        assert name not in sys.modules


def _tiny_corpus() -> Iterator[CorpusDoc]:
    yield CorpusDoc("gc", "gc — garbage collector", "gc", "The garbage collector.",
                    "https://docs.python.org/3/library/gc.html#module-gc", ("gc",), "module")
    yield CorpusDoc("re", "re — regular expressions", "re", "Regular expressions.",
                    "https://docs.python.org/3/library/re.html#module-re", ("re",), "module")


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuilds use a two-document corpus so these tests stay fast."""
    monkeypatch.setattr(offline_index, "collect_documents", _tiny_corpus)


def _doc_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM docs").fetchone()[0])


@pytest.mark.parametrize("damage", [b"", b"not a database at all" * 100, b"SQLite format 3\x00"])
def test_damaged_corpus_is_rebuilt(tiny: None, data_dir: Path, damage: bytes) -> None:
    path = data_dir / "offline_corpus.sqlite3"
    path.write_bytes(damage)
    world = OfflineWorld(Config(), path)
    response = world.search("garbage collector", 5)
    assert response.ok and response.results[0].title.startswith("gc")
    assert world.index.rebuild_reason
    world.close()
    assert _doc_count(path) == 2


def test_truncated_corpus_is_rebuilt(tiny: None, data_dir: Path, corpus_path: Path) -> None:
    path = data_dir / "offline_corpus.sqlite3"
    path.write_bytes(corpus_path.read_bytes()[: corpus_path.stat().st_size // 2])
    world = OfflineWorld(Config(), path)
    assert world.search("regular expressions", 5).ok
    world.close()
    assert _doc_count(path) == 2


def test_stale_version_is_rebuilt_current_one_reused(tiny: None, data_dir: Path) -> None:
    path = data_dir / "offline_corpus.sqlite3"
    info = OfflineWorld(Config(), path).prepare()
    assert info.built and info.documents == 2
    again = OfflineWorld(Config(), path)
    assert not again.prepare().built
    again.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'old' WHERE key = 'corpus_version'")
    assert CORPUS_VERSION != "old"
    stale = OfflineWorld(Config(), path)
    assert stale.prepare().built
    assert "version" in stale.index.rebuild_reason
    stale.close()
    assert not list(data_dir.glob(".*.tmp"))


def test_unbuildable_corpus_path_fails_searches_cleanly(data_dir: Path) -> None:
    path = data_dir / "a_directory"
    path.mkdir()
    world = OfflineWorld(Config(), path)
    response = world.search("garbage collection", 5)
    assert not response.ok and "corpus" in response.error
    assert world.description == "offline (Python docs)"


def test_empty_corpus_fails_once_and_is_not_rebuilt_per_search(
        monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    builds: list[int] = []

    def nothing() -> Iterator[CorpusDoc]:
        builds.append(1)
        yield from ()

    monkeypatch.setattr(offline_index, "collect_documents", nothing)
    world = OfflineWorld(Config(), data_dir / "offline_corpus.sqlite3")
    first = world.search("garbage collection", 5)
    second = world.search("event loop", 5)
    assert not first.ok and "no documentation" in first.error
    assert not second.ok and second.error == first.error
    assert builds == [1]
