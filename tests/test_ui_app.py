"""Pilot tests of the dashboard: every key, the modals, quitting, and the error paths."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from aegis_tui.events import QuestionAsked
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database
from aegis_tui.storage.lock import DataDirLock
from aegis_tui.storage.records import ANSWERED, APPROVED, PENDING, REJECTED
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.components.event_log import EventLog
from aegis_tui.ui.components.header_bar import HeaderBar
from aegis_tui.ui.harness import copy_data_dir, prepare_data_dir, sim_config, wait_ready, wait_until
from aegis_tui.ui.screens.confirm import ConfirmScreen
from aegis_tui.ui.screens.help import HelpScreen
from aegis_tui.ui.screens.proposal import ProposalScreen
from aegis_tui.ui.screens.question import QuestionScreen
from aegis_tui.ui.screens.report import ReportScreen

SIZE = (120, 40)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepared") / "data"
    prepare_data_dir(root, 300)
    return root


@pytest.fixture
def paths(prepared: Path, tmp_path: Path) -> DataPaths:
    return copy_data_dir(prepared, tmp_path / "data")


def make_app(paths: DataPaths, *, paused: bool = True, iterations: int | None = None,
             keymap: dict[str, str] | None = None, **overrides: Any) -> AegisApp:
    return AegisApp(sim_config(**overrides), paths, start_paused=paused, iterations=iterations,
                    keymap=keymap)


def messages(app: AegisApp) -> list[str]:
    return [n.message for n in app._notifications]


def lock_is_free(paths: DataPaths) -> bool:
    lock = DataDirLock(paths.lock)
    try:
        lock.acquire()
    except Exception:
        return False
    lock.release()
    return True


async def test_p_and_space_pause_and_resume(paths: DataPaths) -> None:
    app = make_app(paths, paused=False, think_interval=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        header = app.query_one(HeaderBar)
        await pilot.press("p")
        assert app.agent.paused
        await wait_until(lambda: header.rendered_state == "paused", what="header says paused")
        stopped_at = app.agent.iteration
        await pilot.pause(0.1)
        assert app.agent.iteration <= stopped_at + 1  # at most the iteration in flight
        await pilot.press("space")
        assert not app.agent.paused
        await wait_until(lambda: header.rendered_state == "running", what="header running")
        await wait_until(lambda: app.agent.iteration > stopped_at + 2, what="iterations again")


async def test_answer_modal_refuses_empty_submits_and_skips(paths: DataPaths) -> None:
    db = Database(paths.database)
    pending = [q.id for q in db.questions(PENDING)]
    db.close()
    assert len(pending) >= 2
    app = make_app(paths)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("a")
        await wait_until(lambda: isinstance(app.screen, QuestionScreen), what="question modal")
        first = app.screen
        assert isinstance(first, QuestionScreen) and first.question_id == pending[0]
        await pilot.press("enter")  # empty: refused in place
        await pilot.pause()
        assert app.screen is first
        assert first.refusal == "answer is empty"
        assert "answer is empty" in str(first.query_one("#refusal").render())
        await pilot.press(*"use re.compile")
        await pilot.press("enter")
        await wait_until(lambda: app.screen is not first, what="the next question")
        assert isinstance(app.screen, QuestionScreen)
        assert app.screen.question_id == pending[1] and app.screen.position == 2
        for _ in pending[1:]:
            await pilot.press("escape")
            await pilot.pause()
        await wait_until(lambda: not isinstance(app.screen, QuestionScreen), what="modals done")
        assert any("Answered 1 question" in m for m in messages(app))
        assert app.model.pending[0] == len(pending) - 1  # the header recounts at once
    db = Database(paths.database)
    try:
        answered = db.question(pending[0])
        assert answered is not None and answered.status == ANSWERED
        assert answered.answer == "use re.compile"
        assert all(db.question(q).status == PENDING for q in pending[1:])  # type: ignore[union-attr]
    finally:
        db.close()


def _settle_pending_proposals(db: Database) -> None:
    """The prepared run may end with a proposal under review; the tests add their own."""
    for p in db.proposals(PENDING):
        db.resolve_proposal(p.id, REJECTED, "test", time.time())


async def test_review_modal_approves_rejects_and_leaves_for_later(paths: DataPaths) -> None:
    db = Database(paths.database)
    _settle_pending_proposals(db)
    ids = [db.add_proposal("add_goal", {"goal": f"Learn about topic {k}"},
                           f"Add goal: Learn about topic {k}", f"add goal topic {k}", PENDING,
                           300, time.time()) for k in range(3)]
    db.close()
    app = make_app(paths)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("r")
        for key in ("a", "x", "l"):
            await wait_until(lambda: isinstance(app.screen, ProposalScreen), what="proposal")
            await pilot.press(key)
            await pilot.pause()
        await wait_until(lambda: not isinstance(app.screen, ProposalScreen), what="done")
        assert any("Reviewed 2 proposals" in m for m in messages(app))
    db = Database(paths.database)
    try:
        statuses = [db.proposal(i).status for i in ids]  # type: ignore[union-attr]
        assert statuses == [APPROVED, REJECTED, PENDING]
        assert db.proposal(ids[0]).reviewer == "dashboard"  # type: ignore[union-attr]
    finally:
        db.close()


async def test_nothing_pending_says_so(paths: DataPaths) -> None:
    db = Database(paths.database)
    for q in db.questions(PENDING):
        db.resolve_question(q.id, ANSWERED, "done", time.time())
    _settle_pending_proposals(db)
    db.close()
    app = make_app(paths)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("a")
        await pilot.press("r")
        await pilot.pause()
        assert "No pending questions." in messages(app)
        assert "No pending proposals." in messages(app)
        assert not isinstance(app.screen, QuestionScreen | ProposalScreen)


async def test_reports_screen_shows_the_cli_reports(paths: DataPaths) -> None:
    app = make_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        await pilot.press("s")
        await wait_until(lambda: isinstance(app.screen, ReportScreen) and app.screen.text,
                         what="the reports")
        text = app.screen.text  # type: ignore[attr-defined]
        assert "AEGIS STATUS" in text and "HRM TRAINING REPORT" in text
        assert "Iterations:             300" in text
        assert "Examples collected:  300/1000" in text
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, ReportScreen), what="closed")


async def test_help_lists_every_key(paths: DataPaths) -> None:
    app = make_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        await pilot.press("question_mark")
        await wait_until(lambda: isinstance(app.screen, HelpScreen), what="help")
        shown = str(app.screen.query_one("#help-keys").render())
        for key, what in (("p, space", "Pause"), ("t", "Force training"), ("a", "Answer"),
                          ("r", "Review"), ("s", "reports"), ("q", "Quit")):
            assert key in shown and what in shown
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, HelpScreen), what="closed")


async def test_force_training_asks_first_below_the_threshold(paths: DataPaths) -> None:
    app = make_app(paths)  # 300 examples: enough to force, below the 1000 threshold
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        await pilot.press("t")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        assert "Only 300 examples" in str(app.screen.query_one("#confirm-message").render())
        await pilot.press("n")
        await wait_until(lambda: not isinstance(app.screen, ConfirmScreen), what="closed")
        assert not app.agent._force_requested.is_set()
        assert app.agent.learning.phases.phase == 1


async def test_force_training_with_too_few_examples_says_why(tmp_path: Path) -> None:
    paths = prepare_data_dir(tmp_path / "few", 10)
    app = make_app(paths)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("t")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        refused = [m for m in messages(app) if m.startswith("Training not started")]
        assert refused and "only 10 examples" in refused[0] and "at least 50" in refused[0]
        log = app.query_one(EventLog)
        assert any("only 10 examples" in line.text for line in log.lines)


async def test_question_notification_names_the_key_and_keys_can_be_remapped(
        paths: DataPaths) -> None:
    app = make_app(paths, keymap={"answer": "ctrl+a", "pause": "ctrl+p"})
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        app.bus.publish(QuestionAsked(question_id=99, text="What is a closure?"))
        await wait_until(lambda: any("What is a closure?" in m for m in messages(app)),
                         what="the notification")
        note = next(m for m in messages(app) if "What is a closure?" in m)
        assert "Press ^a to answer." in note
        await pilot.press("a")  # no longer bound
        await pilot.pause()
        assert not isinstance(app.screen, QuestionScreen)
        await pilot.press("ctrl+a")
        await wait_until(lambda: isinstance(app.screen, QuestionScreen), what="remapped key")


async def test_command_palette_offers_the_dashboard_commands(paths: DataPaths) -> None:
    app = make_app(paths)
    async with app.run_test(size=SIZE):
        await wait_ready(app)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Pause / resume", "Force training", "Answer questions", "Review proposals",
                "Status and training reports", "Help", "Quit"} <= titles
        # One table feeds the bindings, the help screen and the palette: none drifts.
        from aegis_tui.ui.app import KEYS

        assert {k.title for k in KEYS} <= titles
        assert {row[2] for row in app.key_rows()} >= {k.id for k in KEYS}
        bound = {b.id: b for b in app.BINDINGS if hasattr(b, "id")}
        assert all(bound[k.id].tooltip == k.text for k in KEYS)


@pytest.mark.parametrize("key", ["q", "ctrl+q"])
async def test_quit_stops_the_agent_and_releases_the_data_dir(paths: DataPaths,
                                                              key: str) -> None:
    app = make_app(paths, paused=False)  # running flat out (think_interval 0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        await wait_until(lambda: app.agent.iteration > 310, what="some iterations")
        await pilot.press(key)
        await wait_until(lambda: app._exit, timeout=5, what="the app to exit")
    assert app.return_code == 0
    assert app._agent_done.is_set()
    assert app.summary is not None and app.summary.stopped_by == "stop"
    assert lock_is_free(paths)
    db = Database(paths.database, readonly=True)
    try:  # every iteration the agent reported is committed
        assert db.last_iteration() >= app.model.iteration
    finally:
        db.close()


async def test_locked_data_dir_exits_with_the_reason(paths: DataPaths) -> None:
    holder = DataDirLock(paths.lock).acquire()
    try:
        app = make_app(paths)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: bool(app.failure), what="the failure")
            await pilot.pause()
        assert app.return_code == 3
        assert "is in use by" in app.failure and str(paths.root) in app.failure
        assert not app.ready
    finally:
        holder.release()


async def test_teacher_that_fails_to_load_exits_non_zero(paths: DataPaths) -> None:
    from aegis_tui.policy.lm_teacher import TeacherLoadError

    def factory(*args: object) -> object:
        raise TeacherLoadError("no such model 'nope'")

    app = AegisApp(sim_config(), paths, runtime_factory=factory)
    async with app.run_test(size=SIZE):
        await wait_until(lambda: bool(app.failure), what="the failure")
    assert app.return_code == 1
    # The same line the CLI prints, naming the model that failed.
    assert app.failure.startswith("the teacher model (gpt2) could not be loaded: no such model")
    assert lock_is_free(paths)


async def test_iteration_limit_stops_the_agent_but_keeps_the_dashboard(paths: DataPaths) -> None:
    app = make_app(paths, paused=False, iterations=5)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(lambda: app.summary is not None, what="the run to end")
        await pilot.pause()
        assert app.summary.iterations == 5 and app.summary.stopped_by == "limit"
        assert app.model.run_state == "stopped"
        assert any("Finished 5 iterations" in m for m in messages(app))
        assert app.is_running
        assert lock_is_free(paths)
        await pilot.press("p")  # nothing to pause any more: it says so, no crash
        await pilot.pause()
        assert "The agent has stopped." in messages(app)


async def test_a_fast_agent_is_coalesced_and_the_screen_keeps_up(paths: DataPaths) -> None:
    app = make_app(paths, paused=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        await wait_until(lambda: app.model.iteration > 800, timeout=30, what="iterations")
        log = app.query_one(EventLog)
        # Far fewer lines than events reached the log; the counters saw every iteration.
        assert log.lines_written < app.model.events_seen / 2
        assert sum(app.model.counts["teacher"]) >= app.model.iteration - 50
        await pilot.press("p")
        header = app.query_one(HeaderBar)
        await wait_until(lambda: header.rendered_state == "paused", what="paused on screen")
