"""Driving the dashboard without a person: deterministic data dirs and "wait until" helpers.

Used by the tests, the snapshot tests, the latency probe and the screenshot tool, so they
all prepare data the same way: the sim world and the rules teacher with a fixed seed, run
headless for N iterations, which gives the same data directory every time.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis_tui.agent.runtime import AgentRuntime
from aegis_tui.config import Config, apply_overrides
from aegis_tui.paths import LOCK_FILE, DataPaths


def sim_config(**overrides: Any) -> Config:
    """The sim world and the rules teacher, seed 0, no sleeping between iterations."""
    settings: dict[str, Any] = {"world": "sim", "teacher": "rules", "seed": 0,
                                "think_interval": 0}
    settings.update(overrides)
    return apply_overrides(Config(), settings)


def prepare_data_dir(root: Path, iterations: int, **overrides: Any) -> DataPaths:
    """Run the agent headless for ``iterations`` iterations on a fresh ``root``."""
    paths = DataPaths.resolve(root)
    with AgentRuntime.open(sim_config(**overrides), paths) as runtime:
        runtime.agent.run(max_iterations=iterations)
    return paths


def copy_data_dir(source: Path, target: Path, *, include_logs: bool = False) -> DataPaths:
    """A private copy of a data dir without its lock file (and logs unless asked for)."""
    lock = f"{LOCK_FILE}*"  # the lock and its holder record
    skip = (lock,) if include_logs else (lock, "*.log*")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*skip))
    return DataPaths.resolve(target)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
                     step: float = 0.01, what: str = "condition") -> None:
    """Yield to the event loop until ``predicate()`` holds; raise ``TimeoutError`` if not."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


async def wait_ready(app: Any, timeout: float = 20.0) -> None:
    """Until the runtime is open, the first state has been drawn and the curves read."""
    await wait_until(lambda: bool(app.failure) or (
        app.ready and app.model.state is not None and app.metrics_reads >= 1),
        timeout, what="the dashboard to be ready")


async def wait_painted(app: Any, timeout: float = 10.0) -> None:
    """Until every queued event is drawn, including the panes repainted at a slower rate."""
    await wait_until(lambda: len(app.bus) == 0 and not app.slow_panes_pending, timeout,
                     what="the panes to be repainted")
    await asyncio.sleep(0.05)  # the frame after the last repaint
