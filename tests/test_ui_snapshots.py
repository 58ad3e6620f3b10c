"""SVG snapshots of the dashboard on the sim world (pytest-textual-snapshot).

Deterministic by construction: a data dir prepared by a headless run (seed 0, the rules
teacher, 300 iterations), the agent paused before it starts, and nothing on screen that
depends on the clock. Update with ``pytest tests/test_ui_snapshots.py --snapshot-update``
and look at the report before accepting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aegis_tui.paths import DataPaths
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.harness import (
    copy_data_dir,
    prepare_data_dir,
    sim_config,
    wait_painted,
    wait_ready,
    wait_until,
)
from aegis_tui.ui.screens.question import QuestionScreen


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepared") / "data"
    prepare_data_dir(root, 300)
    return root


@pytest.fixture
def paths(prepared: Path, tmp_path: Path) -> DataPaths:
    return copy_data_dir(prepared, tmp_path / "data", include_logs=True)


def paused_app(paths: DataPaths) -> AegisApp:
    return AegisApp(sim_config(), paths, start_paused=True)


async def ready(pilot: Any) -> None:
    await wait_ready(pilot.app)
    await pilot.pause(0.3)  # one more drain after the first metrics read
    await wait_painted(pilot.app)


def test_dashboard_80x24(snap_compare: Any, paths: DataPaths) -> None:
    assert snap_compare(paused_app(paths), terminal_size=(80, 24), run_before=ready)


def test_dashboard_160x48(snap_compare: Any, paths: DataPaths) -> None:
    assert snap_compare(paused_app(paths), terminal_size=(160, 48), run_before=ready)


def test_question_modal_80x24(snap_compare: Any, paths: DataPaths) -> None:
    async def open_question(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("a")
        await wait_until(lambda: isinstance(pilot.app.screen, QuestionScreen))
        await pilot.press("enter")  # empty: the refusal shows in place
        await pilot.pause(0.2)

    assert snap_compare(paused_app(paths), terminal_size=(80, 24), run_before=open_question)


def finished_app(paths: DataPaths) -> AegisApp:
    """Three more iterations (deterministic on the sim world), then the run stops."""
    return AegisApp(sim_config(), paths, iterations=3)


async def open_inspector(pilot: Any) -> None:
    from aegis_tui.ui.screens.inspector import InspectorScreen

    app = pilot.app
    await wait_ready(app)
    await wait_until(lambda: app._agent_done.is_set() and len(app.model.decisions) == 3,
                     timeout=30, what="the three iterations")
    # The examples count arrives with the next metrics read: the phase bar depends on it.
    await wait_until(lambda: app.model.examples == 303, timeout=30, what="the examples count")
    await wait_painted(app)
    await pilot.press("i")
    await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="the inspector")
    await wait_until(lambda: app.screen.outcome is not None, what="the database read")
    await pilot.pause(0.2)


def test_inspector_80x24(snap_compare: Any, paths: DataPaths) -> None:
    assert snap_compare(finished_app(paths), terminal_size=(80, 24), run_before=open_inspector)


def test_inspector_160x48(snap_compare: Any, paths: DataPaths) -> None:
    assert snap_compare(finished_app(paths), terminal_size=(160, 48), run_before=open_inspector)
