"""Choosing torch's thread count for the training worker while other processes run.

On a small machine two processes that both run multi-threaded torch (the training worker,
and the agent scoring with a teacher LM) fight over the cores. OpenMP threads spin while
they wait for each other, and a 2-thread job on 2 busy cores measured ~25x slower per
step than the same job on 1 thread (1.3 s vs 52 ms), while with the cores free 2 threads
are ~1.6x faster than 1. So the worker measures how much CPU *other* processes used since
the last check (``/proc/stat`` minus its own ``os.times``) and uses only the cores they
leave free. Where ``/proc/stat`` does not exist (not Linux) it cannot tell, so it takes
half the cores and leaves the rest to the agent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def _system_busy_seconds() -> float | None:
    """Total non-idle CPU seconds of all cores since boot (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # guest time is already inside user time
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """Calls ``set_threads(n)`` with the number of cores other processes leave free."""

    def __init__(self, max_threads: int, set_threads: Callable[[int], None], *,
                 interval_s: float = 0.5) -> None:
        self.max_threads = max(1, max_threads)
        self.interval_s = interval_s
        self._set_threads = set_threads
        self._last: tuple[float, float, float] | None = None
        self.others_busy = 0.0
        self._sample()
        if self._last is None:
            self.threads = max(1, min(self.max_threads, (os.cpu_count() or 2) // 2))
        else:
            self.threads = self.max_threads
        self._set_threads(self.threads)

    def _sample(self) -> None:
        busy = _system_busy_seconds()
        if busy is not None:
            self._last = (time.monotonic(), busy, _own_cpu_seconds())

    def update(self) -> int:
        """Re-check at most every ``interval_s``; returns the thread count in use."""
        if self.max_threads == 1 or self._last is None:
            return self.threads
        now = time.monotonic()
        last_t, last_busy, last_own = self._last
        if now - last_t < self.interval_s:
            return self.threads
        busy = _system_busy_seconds()
        if busy is None:
            return self.threads
        own = _own_cpu_seconds()
        self._last = (now, busy, own)
        self.others_busy = max(0.0, (busy - last_busy) - (own - last_own)) / (now - last_t)
        free = int((os.cpu_count() or 1) - self.others_busy + 0.5)
        threads = max(1, min(self.max_threads, free))
        if threads != self.threads:
            self.threads = threads
            self._set_threads(threads)
        return self.threads


def default_max_threads() -> int:
    # Matrices this small stop scaling past a few threads.
    return max(1, min(4, os.cpu_count() or 1))
