"""The web failing in every way ``ddgs`` can fail, under the running agent: a failed search, a
back-off, and the loop goes on.

``tests/test_world_live.py`` checks each failure against ``LiveWorld`` alone; here the real
agent loop searches through a fake ``DDGS`` that cycles through timeouts, rate limits,
service errors, "no results", empty, malformed and hostile results, a hanging call and the
occasional success, and must never stop, never log an iteration failure, and score every
failed search as one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from aegis_tui.config import Config, apply_overrides
from aegis_tui.events import Event, IterationDone, Notice
from aegis_tui.world.live import LiveWorld
from tests.fakes import make_runtime


def _hit(n: int) -> dict[str, str]:
    return {"title": f"Result {n}", "href": f"https://example.com/{n}", "body": f"Body {n}."}


STEPS: list[tuple[str, Any]] = [
    ("timeout", TimeoutException("timed out")),
    ("rate limit", RatelimitException("202 Ratelimit")),
    ("no results", DDGSException("No results found.")),
    ("service error", DDGSException("https://html.duckduckgo.com 503 Service Unavailable")),
    ("bug", RuntimeError("unexpected internals")),
    ("connection", ConnectionResetError(104, "Connection reset by peer")),
    ("empty", []),
    ("none", None),
    ("not a list", "<html>captcha</html>"),
    ("bad entries", [{"title": None}, 7, {"href": "javascript:alert(1)", "title": "x"}]),
    ("hang", "hang"),
    ("success", "success"),
]
EXPECTED = {
    "timeout": "timed out", "rate limit": "rate limited", "no results": "no results",
    "service error": "search service error", "bug": "unexpected RuntimeError",
    "connection": "unexpected ConnectionResetError", "empty": "no results",
    "none": "malformed results", "not a list": "malformed results",
    "bad entries": "malformed results", "hang": "timed out after 0.2 s",
}


class CyclingDDGS:
    """Each call takes the next step of ``STEPS``, round and round."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.calls: list[str] = []
        self.successes = 0

    def factory(self, timeout: float, proxy: str | None) -> CyclingDDGS:
        return self

    def text(self, query: str, **kwargs: Any) -> Any:
        name, step = STEPS[len(self.calls) % len(STEPS)]
        self.calls.append(name)
        if isinstance(step, BaseException):
            raise step
        if step == "hang":
            self.release.wait(30)  # a call that never answers (released at the end)
            return []
        if step == "success":
            self.successes += 1
            return [_hit(self.successes * 10 + k) for k in range(kwargs["max_results"])]
        return step


def test_the_agent_survives_every_web_failure(data_dir: Path) -> None:
    release = threading.Event()
    fake = CyclingDDGS(release)
    events: list[Event] = []
    settings = {"think_interval": 0.002, "search_timeout_s": 0.2, "search_min_interval_s": 0,
                "search_backoff_s": 0.01}
    config = apply_overrides(Config(), settings)
    try:
        world = LiveWorld(config, ddgs_factory=fake.factory)
        with make_runtime(data_dir, world=world, **settings) as rt:
            rt.bus.subscribe(events.append)
            deadline = time.monotonic() + 60
            while len(fake.calls) < 2 * len(STEPS) and time.monotonic() < deadline:
                summary = rt.agent.run(max_iterations=50)
                assert summary.stopped_by == "limit", summary
            counters = rt.agent.state.counters
    finally:
        release.set()
    assert len(fake.calls) >= 2 * len(STEPS), "every failure came up twice"
    assert not [e for e in events if isinstance(e, Notice) and e.level == "error"]
    searches = [e for e in events if isinstance(e, IterationDone) and e.action == "web_search"]
    failed = [e for e in searches if not e.success]
    assert failed and all(e.reward == config.rewards.search_failed for e in failed)
    details = " | ".join(e.detail for e in failed)
    for name, needle in EXPECTED.items():
        assert needle in details, f"{name}: {needle!r} not among the failures"
    assert "backing off after" in details and "pausing searches for" in details
    assert any(e.success and e.knowledge_gained > 0 for e in searches), "success still pays"
    assert counters.failed_searches == len(failed)
    assert "javascript:" not in " ".join(e.detail for e in searches)


class AlwaysEmptyDDGS:
    """ddgs during a rate-limit storm: every engine refused, so "No results found."."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.clients = 0

    def factory(self, timeout: float, proxy: str | None) -> AlwaysEmptyDDGS:
        self.clients += 1
        return self

    def text(self, query: str, **kwargs: Any) -> Any:
        self.queries.append(query)
        raise DDGSException("No results found.")


def test_a_rate_limit_storm_backs_off_and_is_reported_once(data_dir: Path) -> None:
    fake = AlwaysEmptyDDGS()
    events: list[Event] = []
    settings = {"think_interval": 0, "search_min_interval_s": 0, "search_backoff_s": 30.0}
    config = apply_overrides(Config(), settings)
    world = LiveWorld(config, ddgs_factory=fake.factory)
    with make_runtime(data_dir, world=world, **settings) as rt:
        rt.bus.subscribe(events.append)
        summary = rt.agent.run(max_iterations=80)
    assert summary.stopped_by == "limit"
    searches = [e for e in events if isinstance(e, IterationDone) and e.action == "web_search"]
    assert len(searches) > 5 and not any(e.success for e in searches)
    details = [e.detail for e in searches]
    assert sum("failed: no results" in d and "times in a row" not in d for d in details) == 2
    assert any("no results 3 times in a row" in d for d in details)
    assert any("backing off after" in d for d in details[3:])
    warnings = [e for e in events if isinstance(e, Notice) and "came back empty" in e.message]
    assert len(warnings) == 1 and warnings[0].level == "warning"
    assert len(fake.queries) == 3  # the storm stopped the calls: back-off, not every 2 s
    assert len(set(fake.queries)) == 3
    assert fake.clients == 1
