"""The human in the loop, in the dashboard: one key closes the queue, a question on screen
gets a fair window in real time on the sim's fast clock, a late answer is kept and said so,
and the theme chosen in the command palette is there at the next start."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import ANSWERED, EXPIRED, LATE, PENDING
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.harness import copy_data_dir, prepare_data_dir, sim_config, wait_ready, wait_until
from aegis_tui.ui.screens.question import QuestionScreen
from aegis_tui.ui.settings import SETTINGS_FILE

SIZE = (120, 40)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepared") / "data"
    prepare_data_dir(root, 300)
    return root


@pytest.fixture
def paths(prepared: Path, tmp_path: Path) -> DataPaths:
    return copy_data_dir(prepared, tmp_path / "data")


def pending_ids(paths: DataPaths) -> list[int]:
    db = Database(paths.database, readonly=True)
    try:
        return [q.id for q in db.questions(PENDING)]
    finally:
        db.close()


def question(paths: DataPaths, qid: int) -> Any:
    db = Database(paths.database, readonly=True)
    try:
        return db.question(qid)
    finally:
        db.close()


def messages(app: AegisApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_ctrl_l_closes_the_whole_queue(paths: DataPaths) -> None:
    pending = pending_ids(paths)
    assert len(pending) >= 2
    app = AegisApp(sim_config(), paths, start_paused=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("a")
        await wait_until(lambda: isinstance(app.screen, QuestionScreen), what="the modal")
        keys = str(app.screen.query_one(".dialog-keys").render())
        assert f"Ctrl+L close, {len(pending)} left for later" in keys
        await pilot.press("ctrl+l")
        await wait_until(lambda: not isinstance(app.screen, QuestionScreen), what="closed")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, QuestionScreen)  # not the next one
        assert any(f"{len(pending)} left pending for later" in m for m in messages(app))
    assert pending_ids(paths) == pending


async def test_a_question_on_screen_outlives_the_sim_clock(paths: DataPaths) -> None:
    pending = pending_ids(paths)
    first, rest = pending[0], pending[1:]
    # 300 sim seconds = 300 iterations: a second or two of real time at this pace; the
    # hold on the question on screen lasts 300 real seconds.
    app = AegisApp(sim_config(question_expiry_s=300, think_interval=0.002), paths,
                   start_paused=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("a")
        await wait_until(lambda: isinstance(app.screen, QuestionScreen), what="the modal")
        assert app.screen.question_id == first  # type: ignore[attr-defined]
        start = app.agent.iteration
        app.agent.resume()
        await wait_until(lambda: app.agent.iteration > start + 400, timeout=120,
                         what="400 iterations (400 sim seconds)")
        assert question(paths, first).status == PENDING  # held: still open
        assert all(question(paths, q).status != PENDING for q in rest)  # not held
        await pilot.press(*"Anchors")
        await pilot.press("enter")
        await wait_until(lambda: not isinstance(app.screen, QuestionScreen), what="done")
        asked = question(paths, first)
        assert asked.status == ANSWERED and asked.answer == "Anchors"
        await wait_until(lambda: question(paths, first).credited, what="the credit")
        assert question(paths, first).reward == pytest.approx(0.5)
        assert any("Answered 1 question" in m and "before you reached them" in m
                   for m in messages(app))


async def test_an_answer_typed_past_the_hold_is_kept_and_said(paths: DataPaths) -> None:
    first = pending_ids(paths)[0]
    # The hold lasts question_expiry_s of real time: one second here.
    app = AegisApp(sim_config(question_expiry_s=1, think_interval=0.01), paths,
                   start_paused=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("a")
        await wait_until(lambda: isinstance(app.screen, QuestionScreen), what="the modal")
        shown = time.monotonic()
        app.agent.resume()
        await pilot.press(*"Groups capture")
        await wait_until(lambda: question(paths, first).status == EXPIRED, timeout=30,
                         what="the expiry once the hold ran out")
        assert time.monotonic() - shown >= 1.0
        await pilot.press("enter")
        await wait_until(lambda: not isinstance(app.screen, QuestionScreen), what="done")
        assert any(f"Question #{first} had expired" in m and "kept as knowledge" in m
                   for m in messages(app))
        await wait_until(lambda: question(paths, first).credited, what="the agent")
        late = question(paths, first)
        assert late.status in (EXPIRED, LATE) and late.answer == "Groups capture"
        assert late.reward == 0.0
        db = Database(paths.database, readonly=True)
        try:
            assert db.metrics_at(late.iteration)["delayed_reward"] == 0.0
        finally:
            db.close()
        with sqlite3.connect(paths.database) as conn:
            rows = conn.execute("SELECT text FROM knowledge WHERE source=?",
                                (f"human://question/{first}",)).fetchall()
        assert rows == [("Groups capture",)]


async def test_the_theme_chosen_in_the_palette_is_remembered(paths: DataPaths) -> None:
    app = AegisApp(sim_config(), paths, start_paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        assert app.theme != "nord"
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"theme")
        await pilot.pause(0.3)
        await pilot.press("enter")  # "Theme": the list of themes
        await pilot.pause(0.3)
        await pilot.press(*"nord")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(lambda: app.theme == "nord", what="the nord theme")
    saved = json.loads((paths.root / SETTINGS_FILE).read_text())
    assert saved == {"theme": "nord"}
    app = AegisApp(sim_config(), paths, start_paused=True)
    async with app.run_test(size=SIZE):
        await wait_ready(app)
        assert app.theme == "nord"
    # A damaged file is ignored, never fatal.
    (paths.root / SETTINGS_FILE).write_text("{not json")
    app = AegisApp(sim_config(), paths, start_paused=True)
    async with app.run_test(size=SIZE):
        await wait_ready(app)
        assert app.theme == "textual-dark"
