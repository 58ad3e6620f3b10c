"""The ``live`` world: real web search through ``ddgs`` (DuckDuckGo and friends), defensively.

The web is slow, flaky and rate-limited, and the agent must never crash or hang on it:

- **Timeout.** Each call runs in a daemon worker thread and is abandoned after
  ``config.search_timeout_s`` even if the library hangs (the thread finishes, or not, on
  its own; its result is dropped).
- **Spacing.** Calls are at least ``config.search_min_interval_s`` apart; the wait happens
  in short slices so setting ``cancel`` returns within ~0.1 s.
- **Back-off.** After a failed call (any ``DDGSException`` including rate limits and
  timeouts, our own timeout, or any other exception) the world stops calling for
  ``search_backoff_s``, doubling per consecutive failure up to 10 minutes; during back-off
  ``search`` fails at once, without the network, saying how long is left. A success resets it.
- **Cache.** Successful responses are kept (LRU, 256 queries, one hour) keyed by the
  normalised query and the result count; a hit returns ``cached=True`` and needs no network,
  even during back-off.
- **Validation.** Result dicts missing a ``title``/``href``/``body`` string, or with a
  non-http(s) link, are skipped; when nothing valid remains the search fails with
  "malformed results".
- **Empty results** (an empty list, or ddgs's own "No results found.") are a failed search
  with "no results" and scored as one: the agent learnt nothing. They do not trigger
  back-off, since the service answered.

``search`` never raises. Humans answer in the dashboard, so ``poll`` returns nothing.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from aegis_tui.config import Config
from aegis_tui.text import clean, normalize
from aegis_tui.world.base import SearchResponse, SearchResult, World

CACHE_SIZE = 256
CACHE_TTL_S = 3600.0
MAX_BACKOFF_S = 600.0
WAIT_SLICE_S = 0.1
MAX_URL_CHARS = 2000
PROBE_HOST = "html.duckduckgo.com"
PROBE_PORT = 443


class TextSearcher(Protocol):
    """What ``LiveWorld`` needs from a ``ddgs.DDGS`` instance."""

    def text(self, query: str, **kwargs: Any) -> Any: ...


SearcherFactory = Callable[[float], TextSearcher]


def default_ddgs_factory(timeout_s: float) -> TextSearcher:
    """A real ``ddgs.DDGS`` (imported here, on first use, to keep start-up fast)."""
    from ddgs import DDGS

    return DDGS(timeout=max(1, math.ceil(timeout_s)))


class _CallTimedOut(Exception):
    pass


class _Cancelled(Exception):
    pass


def _ddgs_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """``((DDGSException,), (RatelimitException,))``, or empty tuples without ddgs."""
    try:
        from ddgs.exceptions import DDGSException, RatelimitException
    except ImportError:
        return (), ()
    return (DDGSException,), (RatelimitException,)


def parse_results(raw: object, limit: int) -> tuple[list[SearchResult], int]:
    """Valid results from ddgs's list of dicts, and how many entries were skipped."""
    if not isinstance(raw, list | tuple):
        return [], 1
    results: list[SearchResult] = []
    skipped = 0
    seen: set[str] = set()
    for item in raw:
        if len(results) >= limit:
            break
        if not isinstance(item, dict):
            skipped += 1
            continue
        title, href, body = item.get("title"), item.get("href"), item.get("body")
        if not (isinstance(title, str) and isinstance(href, str) and isinstance(body, str)):
            skipped += 1
            continue
        href = href.strip()
        if (not href.lower().startswith(("http://", "https://")) or len(href) > MAX_URL_CHARS
                or any(ch.isspace() or ord(ch) < 32 for ch in href)):
            skipped += 1
            continue
        title_text = clean(title, 200)
        if not title_text or href in seen:
            skipped += 1
            continue
        seen.add(href)
        results.append(SearchResult(title=title_text, body=clean(body, 1000), url=href))
    return results, skipped


class LiveWorld(World):
    name = "live"

    def __init__(self, config: Config, *, cancel: threading.Event | None = None,
                 ddgs_factory: SearcherFactory | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.cancel = cancel or threading.Event()
        self._factory = ddgs_factory or default_ddgs_factory
        self._clock = clock
        self._lock = threading.Lock()  # one search at a time: spacing and back-off are shared
        self._cache: OrderedDict[tuple[str, int], tuple[float, tuple[SearchResult, ...]]] = (
            OrderedDict())
        self._last_call: float | None = None
        self._failures = 0
        self._backoff_until = 0.0
        self.calls = 0  # network calls made (for tests and the status line)

    @property
    def description(self) -> str:
        return "live (DuckDuckGo)"

    def backoff_remaining(self) -> float:
        """Seconds until the next network call is allowed after failures (0 when none)."""
        return max(0.0, self._backoff_until - self._clock())

    def search(self, query: str, max_results: int) -> SearchResponse:
        try:
            with self._lock:
                return self._search(query, max_results)
        except Exception as exc:  # last line of defence: a bug here must not crash the agent
            return SearchResponse(ok=False, error=clean(f"search failed: {exc!r}", 200))

    # -- the steps ------------------------------------------------------------------------------
    def _search(self, query: str, max_results: int) -> SearchResponse:
        if not isinstance(query, str) or not query.strip():
            return SearchResponse(ok=False, error="empty query")
        query = clean(query, 300)
        wanted = max(1, min(int(max_results), 50))
        key = (normalize(query), wanted)
        cached = self._cached(key)
        if cached is not None:
            return SearchResponse(ok=True, results=cached, cached=True)
        remaining = self.backoff_remaining()
        if remaining > 0:
            failures = f"{self._failures} failed search" + ("es" if self._failures > 1 else "")
            wait = math.ceil(remaining)
            return SearchResponse(ok=False,
                                  error=f"backing off after {failures}: retrying in {wait} s")
        try:
            self._wait_for_spacing()
        except _Cancelled:
            return SearchResponse(ok=False, error="cancelled")
        self._last_call = self._clock()
        self.calls += 1
        try:
            raw = self._call(query, wanted)
        except _Cancelled:
            return SearchResponse(ok=False, error="cancelled")
        except _CallTimedOut:
            return self._failed(f"timed out after {self.config.search_timeout_s:g} s")
        except Exception as exc:
            return self._exception_response(exc)
        finally:
            self._last_call = self._clock()
        if isinstance(raw, list | tuple) and not raw:
            self._succeeded()
            return SearchResponse(ok=False, error="no results")
        results, skipped = parse_results(raw, wanted)
        self._succeeded()  # the service answered, even if with junk
        if not results:
            return SearchResponse(ok=False, error=f"malformed results ({skipped} skipped)")
        frozen = tuple(results)
        self._remember(key, frozen)
        return SearchResponse(ok=True, results=frozen)

    def _exception_response(self, exc: Exception) -> SearchResponse:
        ddgs_error, ratelimit_error = _ddgs_exceptions()
        message = clean(str(exc), 160) or type(exc).__name__
        if isinstance(exc, ImportError):
            return self._failed("web search needs the ddgs package (pip install ddgs)")
        if isinstance(exc, ddgs_error) and "no results" in message.lower():
            self._succeeded()
            return SearchResponse(ok=False, error="no results")
        if isinstance(exc, ratelimit_error):
            return self._failed(f"rate limited by the search service ({message})")
        if isinstance(exc, ddgs_error):
            return self._failed(f"search service error: {message}")
        return self._failed(f"unexpected {type(exc).__name__}: {message}")

    def _failed(self, error: str) -> SearchResponse:
        self._failures += 1
        base = self.config.search_backoff_s
        delay = min(base * 2 ** (self._failures - 1), MAX_BACKOFF_S) if base > 0 else 0.0
        self._backoff_until = self._clock() + delay
        suffix = f"; pausing searches for {math.ceil(delay)} s" if delay > 0 else ""
        return SearchResponse(ok=False, error=clean(error + suffix, 240))

    def _succeeded(self) -> None:
        self._failures = 0
        self._backoff_until = 0.0

    def _wait_for_spacing(self) -> None:
        if self._last_call is None:
            return
        ready_at = self._last_call + self.config.search_min_interval_s
        while (remaining := ready_at - self._clock()) > 0:
            if self.cancel.wait(min(WAIT_SLICE_S, remaining)):
                raise _Cancelled
        if self.cancel.is_set():
            raise _Cancelled

    def _call(self, query: str, wanted: int) -> object:
        """Run the ddgs call in a daemon thread; give up on it after the timeout."""
        timeout = self.config.search_timeout_s
        box: dict[str, object] = {}

        def work() -> None:
            try:
                searcher = self._factory(timeout)
                box["value"] = searcher.text(query, max_results=wanted)
            except BaseException as exc:  # handed to the caller, never lost in the thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="aegis-live-search", daemon=True)
        worker.start()
        deadline = self._clock() + timeout
        while worker.is_alive():
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise _CallTimedOut
            worker.join(min(WAIT_SLICE_S, remaining))
            if self.cancel.is_set() and worker.is_alive():
                raise _Cancelled
        if "error" in box:
            error = box["error"]
            if isinstance(error, Exception):
                raise error
            raise RuntimeError(f"search thread died: {error!r}")
        return box.get("value")

    # -- cache ------------------------------------------------------------------------------
    def _cached(self, key: tuple[str, int]) -> tuple[SearchResult, ...] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        stored_at, results = entry
        if self._clock() - stored_at > CACHE_TTL_S:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return results

    def _remember(self, key: tuple[str, int], results: tuple[SearchResult, ...]) -> None:
        self._cache[key] = (self._clock(), results)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def close(self) -> None:
        self._cache.clear()


def probe_web(timeout_s: float, host: str = PROBE_HOST, port: int = PROBE_PORT) -> tuple[bool, str]:
    """Whether the web answers: a TCP connect to the search host, bounded by ``timeout_s``.

    DNS resolution can ignore socket timeouts, so the attempt runs in a daemon thread
    that is waited for at most ``timeout_s``. Returns ``(reachable, reason)``.
    """
    outcome: dict[str, tuple[bool, str]] = {}

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome["result"] = (True, f"reached {host}")
        except socket.gaierror as exc:
            outcome["result"] = (False, f"cannot resolve {host}: {clean(exc.strerror or exc)}")
        except TimeoutError:
            outcome["result"] = (False, f"connection timed out after {timeout_s:g} s")
        except OSError as exc:
            outcome["result"] = (False, f"cannot connect to {host}: "
                                        f"{clean(exc.strerror or exc, 120)}")
        except Exception as exc:
            outcome["result"] = (False, f"probe failed: {clean(exc, 120)}")

    thread = threading.Thread(target=attempt, name="aegis-web-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive() or "result" not in outcome:
        return False, f"connection timed out after {timeout_s:g} s"
    return outcome["result"]
