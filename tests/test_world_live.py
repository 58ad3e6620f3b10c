"""The live world with a fake DDGS: timeouts, back-off, cache, validation, cancel, probe."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from aegis_tui.config import Config
from aegis_tui.world import live
from aegis_tui.world.live import MAX_BACKOFF_S, LiveWorld, parse_results, probe_web


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def hit(n: int) -> dict[str, Any]:
    return {"title": f"Result {n}", "href": f"https://example.com/{n}", "body": f"Body {n}."}


class FakeDDGS:
    """Stands in for ``ddgs.DDGS``: each call pops the next behaviour from ``script``."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[tuple[str, int]] = []
        self.timeouts: list[float] = []

    def factory(self, timeout: float) -> FakeDDGS:
        self.timeouts.append(timeout)
        return self

    def text(self, query: str, **kwargs: Any) -> Any:
        self.calls.append((query, kwargs["max_results"]))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step()
        return step


def make(script: list[Any], clock: Callable[[], float] | None = None,
         **settings: Any) -> tuple[LiveWorld, FakeDDGS]:
    fake = FakeDDGS(script)
    config = Config(**{"search_min_interval_s": 0.0, "search_timeout_s": 5.0, **settings})
    world = LiveWorld(config, ddgs_factory=fake.factory, clock=clock or FakeClock())
    return world, fake


def test_success_parses_results() -> None:
    world, fake = make([[hit(1), hit(2), hit(3)]])
    response = world.search("garbage collection", 3)
    assert response.ok and not response.cached
    assert [r.url for r in response.results] == [f"https://example.com/{n}" for n in (1, 2, 3)]
    assert response.results[0].title == "Result 1" and response.results[0].body == "Body 1."
    assert fake.calls == [("garbage collection", 3)]
    assert fake.timeouts == [5.0]
    assert world.description == "live (DuckDuckGo)" and world.poll(1).answers == []


def test_cache_hit_by_normalised_query_and_count() -> None:
    clock = FakeClock()
    world, fake = make([[hit(1), hit(2)]], clock)
    first = world.search("Event Loop", 2)
    second = world.search("  event   loop!", 2)
    assert second.ok and second.cached and second.results == first.results
    assert len(fake.calls) == 1
    assert not world.search("event loop", 3).cached  # another result count is another key
    assert len(fake.calls) == 2
    clock.t += live.CACHE_TTL_S + 1
    assert not world.search("event loop", 2).cached  # expired
    assert len(fake.calls) == 3


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "CACHE_SIZE", 3)
    world, fake = make([[hit(1)]])
    for q in ("a1", "b2", "c3", "d4"):
        world.search(q, 1)
    assert world.search("d4", 1).cached
    assert not world.search("a1", 1).cached  # evicted as least recently used
    assert len(fake.calls) == 5


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let hung fake calls finish


def test_hanging_library_times_out(release: threading.Event) -> None:
    # The timeout itself needs a real clock.
    world, _ = make([lambda: release.wait(30) and [hit(1)]], time.monotonic,
                    search_timeout_s=0.2, search_backoff_s=30.0)
    response = world.search("slow", 5)
    assert not response.ok
    assert "timed out after 0.2 s" in response.error
    assert world.backoff_remaining() > 0  # a timeout counts as a failure


def test_ratelimit_backs_off_then_recovers() -> None:
    clock = FakeClock()
    world, fake = make([RatelimitException("202 Ratelimit"), [hit(1)]], clock,
                       search_backoff_s=30.0)
    failed = world.search("json", 5)
    assert not failed.ok and "rate limited" in failed.error
    assert world.backoff_remaining() == pytest.approx(30.0)
    waiting = world.search("json", 5)
    assert not waiting.ok and "retrying in 30 s" in waiting.error
    assert len(fake.calls) == 1  # no network during back-off
    clock.t += 31
    recovered = world.search("json", 5)
    assert recovered.ok and len(fake.calls) == 2
    assert world.backoff_remaining() == 0


def test_backoff_doubles_and_is_capped() -> None:
    clock = FakeClock()
    world, _ = make([DDGSException("boom")], clock, search_backoff_s=30.0)
    delays = []
    for _ in range(8):
        response = world.search("json", 5)
        assert not response.ok and "search service error: boom" in response.error
        delays.append(world.backoff_remaining())
        clock.t += delays[-1] + 0.01
    assert delays[:5] == pytest.approx([30.0, 60.0, 120.0, 240.0, 480.0])
    assert delays[5:] == pytest.approx([MAX_BACKOFF_S] * 3)


@pytest.mark.parametrize("error", [
    ValueError("bad"), KeyError("x"), RuntimeError("engine died"), OSError("reset"),
    TimeoutException("timed out"), ZeroDivisionError(), RecursionError(),
])
def test_any_exception_is_a_failed_search(error: Exception) -> None:
    world, _ = make([error], search_backoff_s=5.0)
    response = world.search("json", 5)
    assert not response.ok and response.error
    assert world.backoff_remaining() > 0


@pytest.mark.parametrize("raw", [
    None, "a string", {"title": "x"}, 42, [None, 1, "x"],
    [{"title": None, "href": "https://a", "body": "b"}],
    [{"title": "t", "href": None, "body": "b"}],
    [{"title": "t", "href": "https://a"}],
    [{"title": 5, "href": "https://a", "body": "b"}],
    [{"title": "t", "href": "javascript:alert(1)", "body": "b"}],
    [{"title": "t", "href": "https://a b", "body": "b"}],
    [{"title": "   ", "href": "https://a", "body": "b"}],
])
def test_malformed_results_fail(raw: Any) -> None:
    world, _ = make([raw], search_backoff_s=30.0)
    response = world.search("json", 5)
    assert not response.ok and "malformed results" in response.error
    assert world.backoff_remaining() == 0  # the service answered; nothing to back off from


def test_malformed_entries_are_skipped_valid_ones_kept() -> None:
    raw = [hit(1), {"title": None}, "junk", hit(2), hit(2),
           {"title": "\x1b[31mRed\x1b[0m", "href": "https://red", "body": "a\x00b"}]
    results, skipped = parse_results(raw, 10)
    assert [r.url for r in results] == ["https://example.com/1", "https://example.com/2",
                                        "https://red"]
    assert results[2].title == "Red" and "\x00" not in results[2].body
    assert skipped == 3
    assert len(parse_results([hit(n) for n in range(20)], 5)[0]) == 5


@pytest.mark.parametrize("raw", [[], DDGSException("No results found.")])
def test_empty_results_are_a_failed_search_without_backoff(raw: Any) -> None:
    world, _ = make([raw], search_backoff_s=30.0)
    response = world.search("obscure", 5)
    assert not response.ok and response.error == "no results"
    assert world.backoff_remaining() == 0


def test_empty_query_does_not_call() -> None:
    world, fake = make([[hit(1)]])
    assert not world.search("   ", 5).ok
    assert fake.calls == []


def _run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()), daemon=True)
    thread.start()
    return thread, box


def test_cancel_during_spacing_returns_promptly() -> None:
    cancel = threading.Event()
    fake = FakeDDGS([[hit(1)]])
    world = LiveWorld(Config(search_min_interval_s=60.0), cancel=cancel,
                      ddgs_factory=fake.factory)
    assert world.search("first", 5).ok
    thread, box = _run_in_thread(lambda: world.search("second", 5))
    thread.join(0.3)
    assert thread.is_alive()  # waiting for the 60 s spacing
    cancel.set()
    thread.join(5)  # generous: without cancel this would block for a minute
    assert not thread.is_alive()
    assert not box["value"].ok and box["value"].error == "cancelled"
    assert len(fake.calls) == 1


def test_cancel_during_a_hanging_call(release: threading.Event) -> None:
    cancel = threading.Event()
    fake = FakeDDGS([lambda: release.wait(30) and [hit(1)]])
    world = LiveWorld(Config(search_timeout_s=60.0), cancel=cancel, ddgs_factory=fake.factory)
    thread, box = _run_in_thread(lambda: world.search("hang", 5))
    thread.join(0.3)
    cancel.set()
    thread.join(5)
    assert not thread.is_alive() and box["value"].error == "cancelled"


def test_missing_ddgs_is_a_clear_failure() -> None:
    def factory(timeout: float) -> Any:
        raise ModuleNotFoundError("No module named 'ddgs'")

    world = LiveWorld(Config(search_min_interval_s=0.0), ddgs_factory=factory)
    response = world.search("json", 5)
    assert not response.ok and "ddgs" in response.error


def test_probe_reaches_a_listening_socket() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        ok, reason = probe_web(2.0, host="127.0.0.1", port=server.getsockname()[1])
    assert ok and "127.0.0.1" in reason


def test_probe_reports_refused_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: refused
        ok, reason = probe_web(2.0, host="127.0.0.1", port=port)
    assert not ok and "cannot connect" in reason


def test_probe_is_bounded_when_dns_hangs(monkeypatch: pytest.MonkeyPatch,
                                         release: threading.Event) -> None:
    def hang(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        raise OSError("late")

    monkeypatch.setattr(live.socket, "create_connection", hang)
    ok, reason = probe_web(0.2)
    assert not ok and reason == "connection timed out after 0.2 s"


def test_probe_reports_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(live.socket, "create_connection", no_dns)
    ok, reason = probe_web(1.0)
    assert not ok and "cannot resolve html.duckduckgo.com" in reason
