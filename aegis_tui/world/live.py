"""The ``live`` world: real web search through ``ddgs`` (a metasearch library), defensively.

The web is slow, flaky and rate-limited, and the agent must never crash or hang on it:

- **One client.** A single ``ddgs.DDGS`` (with the configured proxy and timeout) serves
  every search; it is rebuilt only after a call had to be abandoned (a hung call may still
  be using it).
- **Timeout.** Each call runs in a daemon worker thread and is abandoned after
  ``config.search_timeout_s`` even if the library hangs (the thread finishes, or not, on
  its own; its result is dropped).
- **Spacing.** Calls are at least ``config.search_min_interval_s`` apart; the wait happens
  in short slices so setting ``cancel`` returns within ~0.1 s.
- **Back-off.** After a failed call (a ``DDGSException`` naming an engine error, a
  timeout, our own timeout, or any other exception) the world stops calling for
  ``search_backoff_s``, doubling per consecutive failure up to 10 minutes; during back-off
  ``search`` fails at once, without the network, saying how long is left. A search that
  returns results resets it.
- **Empty answers.** ``ddgs`` 9.x asks its engines in parallel; an engine answering with a
  non-200 status (how a rate limit or a block shows up) contributes nothing and raises
  nothing, so a rate limit and a query that truly has no results both end as
  ``DDGSException("No results found.")``. One such answer is taken at its word: a failed
  search with "no results", no back-off, and nothing reset either. ``EMPTY_STREAK`` of them
  in a row, for different queries, are treated as the failure they almost certainly are:
  the world backs off like any other failure and says so once (``SearchResponse.notice``,
  which the agent logs as a warning); a search with results ends the streak.
- **Cache.** Successful responses are kept (LRU, 256 queries, one hour) keyed by the
  normalised query and the result count; a hit returns ``cached=True`` and needs no network,
  even during back-off.
- **Validation.** Result dicts missing a ``title``/``href``/``body`` string, or with a
  non-http(s) link, are skipped; when nothing valid remains the search fails with
  "malformed results".

Settings: ``search_backend`` (ddgs backends; ``auto`` asks Wikipedia and Grokipedia first and
then other engines, so the label says "ddgs auto", not "DuckDuckGo"), ``region``,
``safesearch``, and ``proxy`` (else ``DDGS_PROXY``, else ``HTTPS_PROXY``/``ALL_PROXY``, the
same variables the model download honours; ``NO_PROXY`` is respected).

``search`` never raises. Humans answer in the dashboard, so ``poll`` returns nothing.
"""

from __future__ import annotations

import base64
import math
import os
import socket
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from aegis_tui.config import Config
from aegis_tui.text import clean, normalize
from aegis_tui.world.base import SearchResponse, SearchResult, World

CACHE_SIZE = 256
EMPTY_STREAK = 3  # "No results found." this many times in a row: the engines are failing
CACHE_TTL_S = 3600.0
MAX_BACKOFF_S = 600.0
WAIT_SLICE_S = 0.1
MAX_URL_CHARS = 2000
PROBE_HOST = "html.duckduckgo.com"
PROBE_PORT = 443


class TextSearcher(Protocol):
    """What ``LiveWorld`` needs from a ``ddgs.DDGS`` instance."""

    def text(self, query: str, **kwargs: Any) -> Any: ...


SearcherFactory = Callable[[float, "str | None"], TextSearcher]


def default_ddgs_factory(timeout_s: float, proxy: str | None) -> TextSearcher:
    """A real ``ddgs.DDGS`` (imported here, on first use, to keep start-up fast)."""
    from ddgs import DDGS

    return DDGS(proxy=proxy, timeout=max(1, math.ceil(timeout_s)))


def backend_label(backend: str) -> str:
    """What the header says: ``ddgs auto`` (Wikipedia first, then web engines) or the names."""
    if backend in ("", "auto"):
        return "ddgs auto: Wikipedia, then web engines"
    return "ddgs: " + backend.replace(",", ", ")


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
        self._empty_streak = 0  # "no results" answers in a row, for different queries
        self._empty_queries: set[str] = set()
        self._current_query = ""
        self._client: TextSearcher | None = None
        self._client_lock = threading.Lock()
        self.proxy = search_proxy(config.proxy, PROBE_HOST)
        self.calls = 0  # network calls made (for tests and the status line)
        self.clients_built = 0

    @property
    def description(self) -> str:
        return f"live ({backend_label(self.config.search_backend)})"

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
        self._current_query = key[0]
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
            return self._empty(key[0])
        results, skipped = parse_results(raw, wanted)
        if not results:
            # The service answered, if with junk: not a network failure, and not results.
            return SearchResponse(ok=False, error=f"malformed results ({skipped} skipped)")
        self._succeeded()
        frozen = tuple(results)
        self._remember(key, frozen)
        return SearchResponse(ok=True, results=frozen)

    def _empty(self, query_key: str) -> SearchResponse:
        """An answer with nothing in it: "no results", until it happens too often."""
        if query_key not in self._empty_queries:
            self._empty_queries.add(query_key)
            self._empty_streak += 1
        if self._empty_streak < EMPTY_STREAK:
            return SearchResponse(ok=False, error="no results")
        first = self._failures == 0
        response = self._failed(f"no results {self._empty_streak} times in a row (the engines "
                                "are probably rate-limiting or failing)")
        if first:
            notice = (f"web search: {self._empty_streak} different queries in a row came back "
                      "empty; ddgs reports a rate limit or an engine error as \"No results "
                      "found.\", so searches are paused with back-off until one returns "
                      "results")
            response = SearchResponse(ok=False, error=response.error, notice=notice)
        return response

    def _exception_response(self, exc: Exception) -> SearchResponse:
        ddgs_error, ratelimit_error = _ddgs_exceptions()
        message = clean(str(exc), 160) or type(exc).__name__
        if isinstance(exc, ImportError):
            return self._failed("web search needs the ddgs package (pip install ddgs)")
        if isinstance(exc, ddgs_error) and message.strip().lower() == "no results found.":
            return self._empty(self._current_query)
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
        self._empty_streak = 0
        self._empty_queries.clear()

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

        cfg = self.config

        def work() -> None:
            try:
                searcher = self._searcher()
                box["value"] = searcher.text(query, max_results=wanted,
                                             backend=cfg.search_backend, region=cfg.region,
                                             safesearch=cfg.safesearch)
            except BaseException as exc:  # handed to the caller, never lost in the thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="aegis-live-search", daemon=True)
        worker.start()
        deadline = self._clock() + timeout
        while worker.is_alive():
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._drop_client()  # the hung call may still be using it
                raise _CallTimedOut
            worker.join(min(WAIT_SLICE_S, remaining))
            if self.cancel.is_set() and worker.is_alive():
                self._drop_client()
                raise _Cancelled
        if "error" in box:
            error = box["error"]
            if isinstance(error, Exception):
                raise error
            raise RuntimeError(f"search thread died: {error!r}")
        return box.get("value")

    def _searcher(self) -> TextSearcher:
        """The one client, built on first use (in the worker: ddgs imports are slow)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._factory(self.config.search_timeout_s, self.proxy)
                self.clients_built += 1
            return self._client

    def _drop_client(self) -> None:
        with self._client_lock:
            self._client = None

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
        self._drop_client()


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated hosts or domains, ``*`` for all) covers ``host``."""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        entry = entry.lstrip(".").split(":")[0]
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def search_proxy(setting: str, host: str = PROBE_HOST) -> str | None:
    """The proxy web search goes through: the ``proxy`` setting, else ``DDGS_PROXY`` (what
    ddgs reads itself), else ``HTTPS_PROXY``/``ALL_PROXY`` (any case) unless ``NO_PROXY``
    covers ``host``; None for a direct connection."""
    if setting:
        return setting
    if os.environ.get("DDGS_PROXY"):
        return os.environ["DDGS_PROXY"]
    proxies = urllib.request.getproxies()  # the environment's *_proxy variables, any case
    if _bypassed(host.lower(), proxies.get("no", "")):
        return None
    return proxies.get("https") or proxies.get("all") or None


def _probe_via_proxy(proxy: str, host: str, port: int, timeout_s: float) -> tuple[bool, str]:
    """Ask an HTTP proxy to ``CONNECT`` to ``host:port``; for SOCKS, reach the proxy itself."""
    url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    scheme = url.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme, 1080)
    phost, pport = url.hostname or "", url.port or default
    where = f"the proxy {phost}:{pport}"
    if not phost:
        return False, f"the proxy URL {clean(proxy, 80)} names no host"
    with socket.create_connection((phost, pport), timeout=timeout_s) as sock:
        if scheme.startswith("socks"):
            return True, f"reached {where} (SOCKS: the search host itself was not probed)"
        sock.settimeout(timeout_s)
        request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if url.username:
            secret = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
            request += f"Proxy-Authorization: Basic {base64.b64encode(secret).decode()}\r\n"
        sock.sendall((request + "\r\n").encode("latin-1"))
        head = b""
        while b"\r\n" not in head and len(head) < 4096:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    status = head.split(b"\r\n", 1)[0].decode("latin-1", "replace").strip()
    parts = status.split()
    code = parts[1] if len(parts) > 1 and status.startswith("HTTP/") else ""
    if code == "200":
        return True, f"reached {host} through {where}"
    if code == "407":
        return False, f"{where} wants a user name and password (put them in the proxy URL)"
    return False, f"{where} did not connect to {host}: {clean(status, 80) or 'no answer'}"


def probe_web(timeout_s: float, host: str = PROBE_HOST, port: int = PROBE_PORT,
              proxy: str | None = None) -> tuple[bool, str]:
    """Whether the web answers: a TCP connect to the search host (through ``proxy``, if one
    is given), bounded by ``timeout_s``.

    DNS resolution can ignore socket timeouts, so the attempt runs in a daemon thread
    that is waited for at most ``timeout_s``. Returns ``(reachable, reason)``.
    """
    outcome: dict[str, tuple[bool, str]] = {}
    target = host
    if proxy:
        target = urlparse(proxy if "://" in proxy else f"http://{proxy}").hostname or proxy

    def attempt() -> None:
        try:
            if proxy:
                outcome["result"] = _probe_via_proxy(proxy, host, port, timeout_s)
                return
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome["result"] = (True, f"reached {host}")
        except socket.gaierror as exc:
            outcome["result"] = (False, f"cannot resolve {target}: "
                                        f"{clean(exc.strerror or exc)}")
        except TimeoutError:
            outcome["result"] = (False, f"connection timed out after {timeout_s:g} s")
        except OSError as exc:
            outcome["result"] = (False, f"cannot connect to {target}: "
                                        f"{clean(exc.strerror or exc, 120)}")
        except Exception as exc:
            outcome["result"] = (False, f"probe failed: {clean(exc, 120)}")

    thread = threading.Thread(target=attempt, name="aegis-web-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive() or "result" not in outcome:
        return False, f"connection timed out after {timeout_s:g} s"
    return outcome["result"]
