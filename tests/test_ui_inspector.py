"""The decision inspector, driven as a person drives it: ``i``, a click, left and right.

Phase 1: a teacher decision shows its probabilities, outcome, rewards, state and features.
Phase 3: an HRM decision also shows its value estimate and what the teacher and the
imitation policy would have chosen in the same state, computed on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.agent.phases import PHASE_META_KEY, PhaseState
from aegis_tui.paths import DataPaths
from aegis_tui.policy.features import describe_features, featurize
from aegis_tui.storage.database import Database
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.components.event_log import EventLog
from aegis_tui.ui.harness import copy_data_dir, prepare_data_dir, sim_config, wait_ready, wait_until
from aegis_tui.ui.screens.inspector import InspectorScreen

SIZE = (120, 40)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepared") / "data"
    prepare_data_dir(root, 300)
    return root


@pytest.fixture
def paths(prepared: Path, tmp_path: Path) -> DataPaths:
    return copy_data_dir(prepared, tmp_path / "data")


def section(screen: InspectorScreen, name: str) -> str:
    return str(screen.query_one(f"#inspector-{name}").render())


async def run_then_inspect(pilot: Any, app: AegisApp, iterations: int) -> InspectorScreen:
    await wait_ready(app)
    await wait_until(lambda: app._agent_done.is_set(), timeout=30, what="the run to finish")
    await wait_until(lambda: len(app.model.decisions) == iterations, what="the decisions")
    await pilot.press("i")
    await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="the inspector")
    assert isinstance(app.screen, InspectorScreen)
    return app.screen


async def test_inspector_on_a_phase1_teacher_decision(paths: DataPaths) -> None:
    app = AegisApp(sim_config(), paths, iterations=4)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_then_inspect(pilot, app, 4)
        event = app.model.decisions[-1]
        assert screen.event is event and event.iteration == 304 and event.phase == 1
        summary = section(screen, "summary")
        assert "Iteration 304 · Phase 1 · decided by the teacher (rules)" in summary
        assert f"Action {event.action}" in summary and "No value estimate" in summary
        probs = section(screen, "probs")
        for name, p in zip(ACTION_NAMES, event.probs, strict=True):
            line = next(row for row in probs.splitlines() if f" {name} " in row)
            assert f"{p:.1%}" in line
            assert line.startswith("▶") == (name == event.action)
        assert "The teacher decides in this phase" in probs
        # The outcome, with the delayed reward as the database holds it.
        await wait_until(lambda: screen.outcome is not None, what="the database read")
        db = Database(paths.database, readonly=True)
        row = db.metrics_at(304)
        db.close()
        assert row is not None
        outcome = section(screen, "outcome")
        assert f"immediate reward {event.reward:+.2f}" in outcome
        assert f"delayed reward {row['delayed_reward']:+.2f}" in outcome
        assert f"Knowledge gained {event.knowledge_gained}" in outcome
        state = section(screen, "state")
        assert "The state the policy saw (iteration 304)" in state
        for goal in event.snapshot.goals:
            assert goal.text[:40] in state
        features = section(screen, "features")
        for row_ in describe_features(featurize(event.snapshot), event.snapshot):
            assert row_.slot in features and str(row_.token) in features
        # Left and right step through the decisions kept.
        await pilot.press("left")
        assert screen.event.iteration == 303
        assert "Iteration 303" in section(screen, "summary")
        await pilot.press("left", "left", "left", "left")
        assert screen.event.iteration == 301  # the oldest of this run
        await pilot.press("l")
        assert screen.event.iteration == 304
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, InspectorScreen), what="closed")


async def test_clicking_an_iteration_line_opens_the_inspector_on_it(paths: DataPaths) -> None:
    app = AegisApp(sim_config(), paths, iterations=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        await wait_until(lambda: app._agent_done.is_set(), timeout=30, what="the run")
        log = app.query_one(EventLog)
        await wait_until(lambda: any(log.iteration_at(r) == 302 for r in range(60)),
                         what="the line of iteration 302")
        row = next(r for r in range(60) if log.iteration_at(r) == 302)
        top = log.content_region.y - log.region.y  # the border above the lines
        await pilot.click(EventLog, offset=(5, top + row))
        await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="inspector")
        assert app.screen.event.iteration == 302  # type: ignore[attr-defined]


async def test_inspect_with_no_decision_yet_says_so(paths: DataPaths) -> None:
    app = AegisApp(sim_config(), paths, start_paused=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_ready(app)
        await pilot.press("i")
        await pilot.pause()
        assert not isinstance(app.screen, InspectorScreen)
        assert any("No decision yet" in n.message for n in app._notifications)


def phase3(paths: DataPaths) -> Path:
    """Phase 3 with a small imitation model, as if training had just passed the gate."""
    from aegis_tui.policy.checkpoints import save_checkpoint
    from aegis_tui.policy.hrm import HRMConfig, build_model

    db = Database(paths.database)
    db.set_meta(PHASE_META_KEY, PhaseState(phase=3, hrm_active=True, passed_gate=True,
                                           last_val_accuracy=0.9,
                                           training_attempts=1).to_meta())
    db.close()
    model = build_model(HRMConfig(d_model=32, n_heads=2, expansion=2.0), seed=0)
    save_checkpoint(paths.trained_checkpoint, model, meta={"epoch": 1, "val_accuracy": 0.9})
    return paths.trained_checkpoint


@pytest.mark.usefixtures("one_torch_thread")
async def test_inspector_on_a_phase3_hrm_decision_compares_teacher_and_imitation(
        paths: DataPaths) -> None:
    from aegis_tui.policy.hrm_policy import HRMPolicy
    from aegis_tui.policy.rules_teacher import RulesTeacher

    trained = phase3(paths)
    app = AegisApp(sim_config(), paths, iterations=3)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_then_inspect(pilot, app, 3)
        event = screen.event
        assert event.policy == "hrm" and event.phase == 3 and event.value is not None
        summary = section(screen, "summary")
        assert "Phase 3 · decided by the HRM" in summary
        assert f"Value estimate {event.value:+.2f}" in summary
        # The agent has stopped: nothing can be asked, and the screen says why.
        await wait_until(lambda: screen.compare_error != "", what="the comparison")
        assert "the agent has stopped" in section(screen, "probs")

    # While the agent runs, the comparison is computed on demand.
    app = AegisApp(sim_config(think_interval=0.05), paths)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(app)
        await wait_until(lambda: len(app.model.decisions) >= 2, timeout=30, what="decisions")
        await pilot.press("i")
        await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="inspector")
        screen = app.screen
        assert isinstance(screen, InspectorScreen)
        event = screen.event
        assert event.policy == "hrm"
        await wait_until(lambda: screen.what_if is not None, timeout=20, what="what if")
        teacher = RulesTeacher(seed=0).probabilities(event.snapshot)
        imitation = HRMPolicy.from_checkpoint(trained, sample=False).probabilities(
            event.snapshot)
        assert screen.what_if.teacher.probs == pytest.approx(teacher)
        assert screen.what_if.imitation.probs == pytest.approx(imitation)
        probs = section(screen, "probs")
        assert "teacher (rules)" in probs and "imitation" in probs
        for i, name in enumerate(ACTION_NAMES):
            line = next(row for row in probs.splitlines() if f" {name} " in row)
            assert f"{event.probs[i]:.1%}" in line
            assert f"{teacher[i]:.1%}" in line and f"{imitation[i]:.1%}" in line
        best_teacher = ACTION_NAMES[max(range(4), key=teacher.__getitem__)]
        best_imitation = ACTION_NAMES[max(range(4), key=imitation.__getitem__)]
        assert f"The teacher (rules) would choose {best_teacher}" in probs
        assert f"imitation policy (hrm_trained.pt) would choose {best_imitation}" in probs
