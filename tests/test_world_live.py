"""The live world with a fake DDGS: timeouts, back-off, cache, validation, cancel, probe,
empty-answer storms, one reused client, search settings and proxies."""

from __future__ import annotations

import contextlib
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
        self.kwargs: list[dict[str, Any]] = []
        self.timeouts: list[float] = []
        self.proxies: list[str | None] = []

    def factory(self, timeout: float, proxy: str | None) -> FakeDDGS:
        self.timeouts.append(timeout)
        self.proxies.append(proxy)
        return self

    def text(self, query: str, **kwargs: Any) -> Any:
        self.calls.append((query, kwargs["max_results"]))
        self.kwargs.append(kwargs)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step()
        return step


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxies come from the tests that set them, not from the machine running the tests."""
    for var in ("DDGS_PROXY", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)


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
    assert world.description == "live (ddgs auto: Wikipedia, then web engines)"
    assert world.poll(1).answers == []


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
    def factory(timeout: float, proxy: str | None) -> Any:
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


# -- "No results found." storms, the one client, the settings, proxies ---------------------------

NO_RESULTS = DDGSException("No results found.")


def test_one_empty_answer_is_no_results_and_not_a_failure() -> None:
    world, _ = make([NO_RESULTS, [hit(1)]], search_backoff_s=30.0)
    response = world.search("a query with no answers", 5)
    assert not response.ok and response.error == "no results" and not response.notice
    assert world.backoff_remaining() == 0


def test_the_same_query_empty_again_stays_a_true_no_results() -> None:
    world, fake = make([NO_RESULTS], search_backoff_s=30.0)
    for _ in range(6):
        response = world.search("xyzzy plugh", 5)
        assert response.error == "no results" and not response.notice
    assert world.backoff_remaining() == 0 and len(fake.calls) == 6


def test_empty_answers_in_a_row_back_off_and_say_so_once() -> None:
    clock = FakeClock()
    world, fake = make([NO_RESULTS], clock, search_backoff_s=30.0)
    first, second = world.search("asyncio", 5), world.search("json", 5)
    assert [first.error, second.error] == ["no results", "no results"]
    third = world.search("pickle", 5)
    assert not third.ok and "no results 3 times in a row" in third.error
    assert "pausing searches for 30 s" in third.error
    assert "rate limit" in third.notice and "No results found." in third.notice
    assert world.backoff_remaining() == pytest.approx(30.0)
    waiting = world.search("regex", 5)
    assert "backing off after 1 failed search" in waiting.error and not waiting.notice
    assert len(fake.calls) == 3  # no network during back-off
    clock.t += 31
    again = world.search("generators", 5)
    assert "pausing searches for 60 s" in again.error  # doubled, and not announced again
    assert not again.notice
    fake.script[:] = [[hit(1)]]
    clock.t += 61
    assert world.search("iterators", 5).ok
    assert world.backoff_remaining() == 0
    assert world.search("closures", 5).ok  # the streak ended with the success


def test_an_empty_answer_does_not_end_a_back_off_streak() -> None:
    clock = FakeClock()
    world, _ = make([DDGSException("boom"), NO_RESULTS, DDGSException("boom")], clock,
                    search_backoff_s=10.0)
    assert "pausing searches for 10 s" in world.search("a", 5).error
    clock.t += 11
    assert world.search("b", 5).error == "no results"
    clock.t += 1
    # The failure before the empty answer still counts: the back-off doubles.
    assert "pausing searches for 20 s" in world.search("c", 5).error


def test_an_engine_error_is_a_failure_not_no_results() -> None:
    world, _ = make([DDGSException("ConnectError: ConnectError('dns error')")],
                    search_backoff_s=30.0)
    response = world.search("json", 5)
    assert "search service error: ConnectError" in response.error
    assert world.backoff_remaining() == pytest.approx(30.0)


def test_one_client_serves_every_search_until_a_call_is_abandoned(
        release: threading.Event) -> None:
    hang = lambda: release.wait(30) and [hit(9)]  # noqa: E731
    fake = FakeDDGS([[hit(1)], [hit(2)], hang, [hit(3)]])
    world = LiveWorld(Config(search_min_interval_s=0.0, search_timeout_s=0.3,
                             search_backoff_s=0.0), ddgs_factory=fake.factory)
    assert world.search("one", 5).ok and world.search("two", 5).ok
    assert world.clients_built == 1 and len(fake.timeouts) == 1
    assert "timed out" in world.search("three", 5).error
    assert world.search("four", 5).ok
    assert world.clients_built == 2  # rebuilt: the hung call may still hold the old one


def test_search_settings_reach_ddgs() -> None:
    world, fake = make([[hit(1)]], search_backend="duckduckgo,bing", region="de-de",
                       safesearch="off")
    assert world.search("json", 5).ok
    assert fake.kwargs == [{"max_results": 5, "backend": "duckduckgo,bing", "region": "de-de",
                            "safesearch": "off"}]
    assert world.description == "live (ddgs: duckduckgo, bing)"


@pytest.mark.parametrize(("env", "setting", "expected"), [
    ({}, "", None),
    ({"HTTPS_PROXY": "http://proxy.example:3128"}, "", "http://proxy.example:3128"),
    ({"https_proxy": "http://lower.example:3128"}, "", "http://lower.example:3128"),
    ({"ALL_PROXY": "socks5://tor.example:9050"}, "", "socks5://tor.example:9050"),
    ({"HTTPS_PROXY": "http://p:1", "DDGS_PROXY": "http://ddgs:2"}, "", "http://ddgs:2"),
    ({"HTTPS_PROXY": "http://p:1"}, "http://mine:3", "http://mine:3"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "localhost,.duckduckgo.com"}, "", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.org"}, "", "http://p:1"),
])
def test_the_proxy_comes_from_the_setting_then_the_environment(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str,
        expected: str | None) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert live.search_proxy(setting) == expected
    world, fake = make([[hit(1)]], proxy=setting)
    assert world.search("json", 5).ok
    assert fake.proxies == [expected]  # the ddgs client gets the same proxy


class FakeProxy:
    """An HTTP proxy on 127.0.0.1 that answers CONNECT with ``status`` and records it."""

    def __init__(self, status: str = "200 Connection established") -> None:
        self.status = status
        self.requests: list[str] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.server.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data.decode("latin-1"))
                conn.sendall(f"HTTP/1.1 {self.status}\r\n\r\n".encode())

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def proxy() -> Iterator[FakeProxy]:
    server = FakeProxy()
    yield server
    server.close()


def test_probe_goes_through_an_http_proxy(proxy: FakeProxy) -> None:
    ok, reason = probe_web(2.0, proxy=proxy.url)
    assert ok and reason.startswith("reached html.duckduckgo.com through the proxy 127.0.0.1:")
    assert proxy.requests[0].startswith("CONNECT html.duckduckgo.com:443 HTTP/1.1\r\n")


def test_probe_through_a_proxy_that_wants_a_password() -> None:
    server = FakeProxy("407 Proxy Authentication Required")
    try:
        host = server.url.removeprefix("http://")
        ok, reason = probe_web(2.0, proxy=f"http://me:s%40cret@{host}")
    finally:
        server.close()
    assert not ok and "wants a user name and password" in reason
    assert "Proxy-Authorization: Basic bWU6c0BjcmV0" in server.requests[0]  # me:s@cret


def test_auto_world_probes_through_https_proxy(proxy: FakeProxy, data_dir: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from aegis_tui.paths import DataPaths
    from aegis_tui.world.select import create_world

    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    world, notice = create_world(Config(world="auto", probe_timeout_s=2.0), DataPaths(data_dir))
    assert isinstance(world, LiveWorld) and world.proxy == proxy.url
    assert notice.endswith("(web reachable)")
    assert proxy.requests and proxy.requests[0].startswith("CONNECT html.duckduckgo.com:443")
