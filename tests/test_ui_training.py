"""Phase 2 and 3 in the dashboard: the panes from events, and forced training for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_tui.events import (
    PhaseChanged,
    RLUpdated,
    RunStateChanged,
    StateChanged,
    TrainingFinished,
    TrainingProgress,
    TrainingStarted,
)
from aegis_tui.paths import DataPaths
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.lock import DataDirLock
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.components.curves import CurvesPane
from aegis_tui.ui.components.header_bar import HeaderBar
from aegis_tui.ui.components.phase_progress import PhaseProgress
from aegis_tui.ui.harness import copy_data_dir, prepare_data_dir, sim_config, wait_ready, wait_until
from aegis_tui.ui.screens.confirm import ConfirmScreen


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepared") / "data"
    prepare_data_dir(root, 80)
    return root


@pytest.fixture
def paths(prepared: Path, tmp_path: Path) -> DataPaths:
    return copy_data_dir(prepared, tmp_path / "data")


def _state(iteration: int, phase: int, hrm: bool) -> StateChanged:
    title = {2: "Phase 2: Imitation Training (HRM learns from rules)",
             3: "Phase 3: RL Fine-tuning (HRM improves beyond rules)"}[phase]
    return StateChanged(snapshot=StateSnapshot(iteration=iteration), examples=80, phase=phase,
                        hrm_active=hrm, running=True, phase_title=title,
                        policy_name="HRM" if hrm else "rules", world="sim (seed 0)",
                        label_counts=(50, 5, 5, 20), threshold=1000)


async def test_training_and_rl_panes_follow_the_events(paths: DataPaths) -> None:
    app = AegisApp(sim_config(imitation={"epochs": 20}), paths, start_paused=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(app)
        curves = app.query_one(CurvesPane)
        phase = app.query_one(PhaseProgress)
        app.bus.publish(TrainingStarted(examples=80, epochs=20, forced=True))
        app.bus.publish(PhaseChanged(old=1, new=2, hrm_active=False, reason="forced"))
        for epoch, (loss, val) in enumerate(((1.2, 0.5), (0.8, 0.7), (0.41, 0.92)), start=1):
            app.bus.publish(TrainingProgress(epoch=epoch, epochs=20, loss=loss,
                                             train_accuracy=val, val_accuracy=val,
                                             elapsed_s=float(epoch)))
        app.bus.publish(_state(81, 2, False))
        await wait_until(lambda: phase.words == "epoch 3/20, loss 0.41, val acc 92%",
                         what="the epoch in the phase pane")
        tabs = curves.query_one("TabbedContent")
        assert tabs.active == "tab-training"  # training start brings its curves forward
        caption = str(curves.query_one("#training-caption").render())
        assert "loss 0.41" in caption and "val 92%" in caption and "epoch 3/20" in caption
        assert curves.training_draws >= 1

        app.bus.publish(TrainingFinished(ok=True, val_accuracy=0.92, passed_gate=True,
                                         message="gate passed"))
        app.bus.publish(PhaseChanged(old=2, new=3, hrm_active=True, reason="gate passed"))
        app.bus.publish(RLUpdated(update=5, loss=0.2, mean_reward=1.1, entropy=1.0, kl=0.01))
        app.bus.publish(RunStateChanged(state="running"))
        app.bus.publish(_state(90, 3, True))
        await wait_until(lambda: phase.words.startswith("RL updates 5, rolling reward HRM"),
                         what="the RL words")
        header = app.query_one(HeaderBar)
        await pilot.pause()
        assert header.info.hrm and "HRM deciding" in str(header.render())
        assert header.info.title.startswith("Phase 3: RL Fine-tuning")
        await pilot.press("g")
        assert tabs.active == "tab-reward"


async def test_forced_training_reaches_the_training_pane_and_quit_stops_the_child(
        paths: DataPaths) -> None:
    app = AegisApp(sim_config(imitation={"epochs": 200, "checkpoint_every": 50}), paths,
                   start_paused=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(app)
        await pilot.press("t")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_until(lambda: app.model.training.active, timeout=20, what="training start")
        phase = app.query_one(PhaseProgress)
        await wait_until(lambda: phase.words.startswith("epoch "), timeout=60,
                         what="the first epoch on screen")
        assert "/200, loss " in phase.words
        assert app.query_one(CurvesPane).query_one("TabbedContent").active == "tab-training"
        supervisor = app.agent.learning._supervisor
        pid = supervisor.pid
        assert pid is not None and supervisor.running
        await pilot.press("q")
        await wait_until(lambda: app._exit, timeout=10, what="the app to exit")
    assert app.return_code == 0
    assert not supervisor.running
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "\nState:\tZ" in status.read_text()
    lock = DataDirLock(paths.lock).acquire()  # released by the agent's shutdown
    lock.release()
