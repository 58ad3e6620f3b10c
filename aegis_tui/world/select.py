"""Choosing the world from ``config.world``: sim, offline, live, or auto (probe the web).

``auto`` runs a bounded probe (``live.probe_web``, through the proxy web search would use)
and picks ``live`` when the web answers, else ``offline``; the returned notice says which
and why, for the log and the header.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from aegis_tui.config import WORLDS, Config, ConfigError
from aegis_tui.paths import DataPaths
from aegis_tui.text import clean
from aegis_tui.world.base import World
from aegis_tui.world.live import PROBE_HOST, LiveWorld, probe_web, search_proxy
from aegis_tui.world.offline import OfflineWorld
from aegis_tui.world.sim import SimWorld

Probe = Callable[[float], tuple[bool, str]]


def create_world(config: Config, paths: DataPaths, *, cancel: threading.Event | None = None,
                 probe: Probe | None = None) -> tuple[World, str]:
    """Build the configured world; return it with a one-line notice such as
    ``world: offline (web unreachable: connection timed out after 3 s)``.

    Raises ``ConfigError`` for a world name ``Config`` would have rejected.
    """
    choice = config.world
    if choice == "sim":
        world: World = SimWorld(config, seed=config.seed)
        return world, f"world: {world.description}"
    if choice == "offline":
        world = OfflineWorld(config, paths.corpus)
        return world, f"world: {world.description}"
    if choice == "live":
        world = LiveWorld(config, cancel=cancel)
        return world, f"world: {world.description}"
    if choice == "auto":
        if probe is None:
            # Through the same proxy the searches would use (HTTPS_PROXY and friends).
            proxy = search_proxy(config.proxy, PROBE_HOST)
            probe = lambda timeout_s: probe_web(timeout_s, proxy=proxy)  # noqa: E731
        try:
            reachable, reason = probe(config.probe_timeout_s)
        except Exception as exc:  # a broken probe means we cannot tell: stay offline
            reachable, reason = False, f"probe failed: {exc}"
        reason = clean(reason, 120)
        if reachable:
            world = LiveWorld(config, cancel=cancel)
            return world, f"world: {world.description} (web reachable)"
        world = OfflineWorld(config, paths.corpus)
        return world, f"world: offline (Python docs; web unreachable: {reason})"
    raise ConfigError(f"world: must be one of {', '.join(WORLDS)}, got {choice!r}")
