"""Goal keywords, goal matching and curiosity-topic extraction (agent/topics.py)."""

from __future__ import annotations

from aegis_tui.agent.topics import MAX_TOPIC_CHARS, extract_topics, keywords, matches_goal
from aegis_tui.config import DEFAULT_GOALS
from aegis_tui.text import normalize
from aegis_tui.world.base import SearchResult

GC, ASYNC, REGEX, SERIAL = DEFAULT_GOALS


def test_keywords_drop_boilerplate_and_plurals() -> None:
    assert keywords(GC) == ("memory", "garbage", "collection")
    assert keywords(ASYNC) == ("asynchronous", "asyncio", "event", "loop")
    assert keywords(REGEX) == ("regular", "expression", "match", "search", "text")
    assert "json" in keywords(SERIAL) and "pickle" in keywords(SERIAL)
    assert "python" not in keywords("Learn how Python works")
    assert keywords("Event loops, event LOOPS!") == ("event", "loop")
    assert keywords("") == () and keywords("how to learn the") == ()


def test_keywords_light_plural_stripping() -> None:
    assert keywords("queries classes boxes status analysis") == (
        "query", "class", "box", "status", "analysis")


def test_matches_goal_related_docs() -> None:
    assert matches_goal(keywords(GC), "gc — Garbage Collector interface. Tune the collection")
    assert matches_goal(keywords(GC), "Memory management: garbage collection in CPython")
    assert matches_goal(keywords(ASYNC), "asyncio.run: run a coroutine on a new event loop")
    assert matches_goal(keywords(REGEX), "re — Support for regular expressions (RE).")
    assert matches_goal(keywords(SERIAL), "json.dumps: Serialize obj to a JSON formatted str")
    assert matches_goal(keywords(SERIAL), "pickle: pickled objects are serialized data")


def test_matches_goal_rejects_unrelated_docs() -> None:
    assert not matches_goal(keywords(GC), "Memory foam mattresses on sale")
    assert not matches_goal(keywords(ASYNC), "The garbage truck schedule")
    # Only generic words hit: "search" and "text" do not make it about regular expressions.
    assert not matches_goal(keywords(REGEX), "str.find: search text for a substring")
    assert not matches_goal(keywords(SERIAL), "")
    assert not matches_goal((), "anything at all")


def test_matches_goal_single_keyword_goal_needs_one_hit() -> None:
    goal = keywords("Learn Rust")
    assert goal == ("rust",)
    assert matches_goal(goal, "Rust ownership explained")
    assert not matches_goal(goal, "Go concurrency explained")


def _web(title: str, body: str, n: int) -> SearchResult:
    return SearchResult(title=title, body=body, url=f"https://example.com/{n}")


WEB_RESULTS = [
    _web("Garbage Collection in Python - Real Python",
         "Learn how reference counting and the cyclic garbage collector free memory.", 1),
    _web("gc — Garbage Collector interface — Python 3.12 documentation",
         "This module provides an interface to the optional garbage collector. Reference "
         "cycles are found by the cyclic garbage collector.", 2),
    _web("Understanding reference counting | Medium",
         "Reference counting keeps track of how many references point to an object.", 3),
    _web("Memory leaks and weak references - Stack Overflow",
         "Use weak references to break reference cycles and avoid memory leaks.", 4),
    _web("Python memory management explained",
         "Memory management with reference counting, the cyclic garbage collector and "
         "memory pools.", 5),
]


def test_extract_topics_from_web_results() -> None:
    query = "garbage collection"
    topics = extract_topics(WEB_RESULTS, query, known=set(), limit=5)
    names = [t for t, _ in topics]
    assert "reference counting" in names
    assert any("garbage collector" in t for t in names)
    assert normalize(query) not in {normalize(t) for t in names}
    assert not any(t in ("garbage", "collection", "real", "medium", "stack") for t in names)
    for topic, priority in topics:
        assert topic and len(topic) <= MAX_TOPIC_CHARS and 1 <= len(topic.split()) <= 3
        assert 0 < priority <= 1
    priorities = [p for _, p in topics]
    assert priorities == sorted(priorities, reverse=True)
    assert len({normalize(t) for t in names}) == len(names)


def test_extract_topics_skips_known_and_respects_limit() -> None:
    first = extract_topics(WEB_RESULTS, "garbage collection", set(), limit=5)
    known = {normalize(first[0][0])}
    again = extract_topics(WEB_RESULTS, "garbage collection", known, limit=5)
    assert first[0][0] not in [t for t, _ in again]
    assert len(extract_topics(WEB_RESULTS, "garbage collection", set(), limit=2)) <= 2
    assert extract_topics(WEB_RESULTS, "garbage collection", set(), limit=0) == []
    assert extract_topics([], "anything", set()) == []


def test_extract_topics_prefers_world_hints() -> None:
    results = [
        SearchResult("gc — garbage collector", "Garbage collector interface.",
                     "https://docs.python.org/3/library/gc.html", ("gc", "weakref")),
        SearchResult("gc.collect", "Run a full collection.", "pydoc:gc.collect", ("gc",)),
        SearchResult("sys.getrefcount", "Return the reference count.", "pydoc:sys.getrefcount",
                     ("sys", "gc")),
    ]
    topics = extract_topics(results, "memory garbage collection", {"sys"})
    names = [t for t, _ in topics]
    assert names[0] == "gc"  # named by every result
    assert "weakref" in names
    priority = dict(topics)
    assert priority["gc"] > 0.9 and priority["weakref"] < 0.6  # one result of three
    assert "sys" not in names  # already known
    assert "collector interface" not in names  # hints present: no phrase mining


def test_extract_topics_from_sim_like_results() -> None:
    results = [
        SearchResult("Event loop: an overview (#3)", "An overview of event loop.",
                     "sim://event-loop/3", ("coroutines", "callbacks")),
        SearchResult("Event loop: edge cases (#7)", "Edge cases of event loop.",
                     "sim://event-loop/7", ("coroutines",)),
    ]
    topics = extract_topics(results, "event loop", {normalize("callbacks")})
    assert topics == [("coroutines", 1.0)]


def test_extract_topics_hostile_hints() -> None:
    results = [SearchResult("t", "b", "u", ("", "   ", "\x1b[31mred\x1b[0m", "x" * 200,
                                            "event loop"))]
    topics = extract_topics(results, "event loop", set())
    assert topics == [("red", 1.0)]
