"""Choosing the world from the config (world/select.py)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from aegis_tui.config import Config, ConfigError
from aegis_tui.paths import DataPaths
from aegis_tui.world.live import LiveWorld
from aegis_tui.world.offline import OfflineWorld
from aegis_tui.world.select import create_world
from aegis_tui.world.sim import SimWorld


def _never(timeout_s: float) -> tuple[bool, str]:
    raise AssertionError("the probe must only run for world = auto")


def test_sim(data_dir: Path) -> None:
    world, notice = create_world(Config(world="sim", seed=3), DataPaths(data_dir), probe=_never)
    assert isinstance(world, SimWorld) and world.seed == 3
    assert notice == "world: sim (seed 3)"


def test_offline_uses_the_corpus_path(data_dir: Path) -> None:
    paths = DataPaths(data_dir)
    world, notice = create_world(Config(world="offline"), paths, probe=_never)
    assert isinstance(world, OfflineWorld) and world.corpus_path == paths.corpus
    assert notice == "world: offline (Python docs)"
    assert not paths.corpus.exists()  # built lazily, not while choosing


def test_live_gets_the_cancel_event(data_dir: Path) -> None:
    cancel = threading.Event()
    world, notice = create_world(Config(world="live"), DataPaths(data_dir), cancel=cancel,
                                 probe=_never)
    assert isinstance(world, LiveWorld) and world.cancel is cancel
    assert notice == "world: live (ddgs auto: Wikipedia, then web engines)"


def test_auto_picks_live_when_the_probe_succeeds(data_dir: Path) -> None:
    asked: list[float] = []

    def probe(timeout_s: float) -> tuple[bool, str]:
        asked.append(timeout_s)
        return True, "reached html.duckduckgo.com"

    config = Config(world="auto", probe_timeout_s=1.5)
    world, notice = create_world(config, DataPaths(data_dir), probe=probe)
    assert isinstance(world, LiveWorld)
    assert asked == [1.5]
    assert notice == "world: live (ddgs auto: Wikipedia, then web engines) (web reachable)"


def test_auto_falls_back_to_offline(data_dir: Path) -> None:
    world, notice = create_world(
        Config(world="auto"), DataPaths(data_dir),
        probe=lambda t: (False, f"connection timed out after {t:g} s"))
    assert isinstance(world, OfflineWorld)
    assert notice == "world: offline (Python docs; web unreachable: connection timed out after 3 s)"


def test_auto_survives_a_broken_probe(data_dir: Path) -> None:
    def broken(timeout_s: float) -> tuple[bool, str]:
        raise OSError("no sockets\nat all")

    world, notice = create_world(Config(world="auto"), DataPaths(data_dir), probe=broken)
    assert isinstance(world, OfflineWorld)
    assert "probe failed: no sockets at all" in notice and "\n" not in notice


def test_unknown_world_is_a_config_error(data_dir: Path) -> None:
    # A Config checks itself, so an unknown world never reaches create_world.
    with pytest.raises(ConfigError, match="world: must be one of auto, live, offline, sim"):
        dataclasses.replace(Config(), world="mars")
