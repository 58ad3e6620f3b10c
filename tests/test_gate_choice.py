"""The way forward after a missed gate: ``aegis-tui adopt`` / ``keep-teacher`` and the ``h`` modal.

Each path writes the person's choice to the data directory; the agent applies it on its
next iteration (or when it next starts), and the phase record says who decided.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from headless import cli_in_process, one_line_error

from aegis_tui.agent.phases import PHASE_META_KEY, PhaseState
from aegis_tui.agent.runtime import AgentRuntime
from aegis_tui.config import ImitationSettings
from aegis_tui.paths import DataPaths
from aegis_tui.policy.hrm import HRMConfig
from aegis_tui.storage.database import Database
from aegis_tui.training.example_log import read_examples
from aegis_tui.training.imitation import train_imitation
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.harness import copy_data_dir, prepare_data_dir, sim_config, wait_ready, wait_until
from aegis_tui.ui.screens.gate import GateScreen

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Collection only: training never starts on its own in these runs.
COLLECT = {"collect_threshold": 10_000_000}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 teacher decisions and a (small, quickly) trained HRM from them."""
    root = tmp_path_factory.mktemp("prepared") / "data"
    paths = prepare_data_dir(root, 200, **COLLECT)
    examples = read_examples(paths.examples).examples
    settings = ImitationSettings(epochs=1, checkpoint_every=1, min_examples=50,
                                 model=HRMConfig(d_model=32, n_heads=2, expansion=2.0))
    train_imitation(examples, settings, checkpoint_dir=paths.checkpoints,
                    output=paths.trained_checkpoint)
    return root


@pytest.fixture
def paths(prepared: Path, tmp_path: Path) -> DataPaths:
    return copy_data_dir(prepared, tmp_path / "data")


def phase_state(paths: DataPaths) -> PhaseState:
    db = Database(paths.database, readonly=True)
    try:
        return PhaseState.from_meta(db.get_meta(PHASE_META_KEY))
    finally:
        db.close()


def run_agent(paths: DataPaths, iterations: int, **overrides: Any) -> None:
    with AgentRuntime.open(sim_config(**{**COLLECT, **overrides}), paths) as runtime:
        runtime.agent.run(max_iterations=iterations)


def test_adopt_from_the_cli_hands_the_decisions_to_the_hrm(paths: DataPaths, capsys) -> None:
    assert phase_state(paths).phase == 1
    code, out, _ = cli_in_process(capsys, "adopt", "--data-dir", str(paths.root))
    assert code == 0 and "adopt the trained HRM" in out and "when it next starts" in out
    run_agent(paths, 3)
    state = phase_state(paths)
    assert state.phase == 3 and state.hrm_active and state.adopted_by == "user"


def test_keep_teacher_from_the_cli_stops_automatic_training(paths: DataPaths, capsys) -> None:
    code, out, _ = cli_in_process(capsys, "keep-teacher", "--data-dir", str(paths.root))
    assert code == 0 and "keep the teacher" in out
    # The threshold is now far below the examples logged: training would start at once.
    run_agent(paths, 5, collect_threshold=100)
    state = phase_state(paths)
    assert state.keep_teacher and state.phase == 1 and not state.hrm_active
    assert state.training_attempts == 0


def test_adopt_without_a_trained_hrm_or_data_is_a_clear_error(tmp_path: Path,
                                                              paths: DataPaths, capsys) -> None:
    code, _, err = cli_in_process(capsys, "adopt", "--data-dir", str(tmp_path / "nothing"))
    assert code == 1 and "no agent data" in one_line_error(err)
    paths.trained_checkpoint.unlink()
    code, _, err = cli_in_process(capsys, "adopt", "--data-dir", str(paths.root))
    assert code == 1 and "no trained HRM" in one_line_error(err)
    assert phase_state(paths).phase == 1


async def test_the_gate_modal_adopts_and_keeps(paths: DataPaths) -> None:
    app = AegisApp(sim_config(**COLLECT), paths, start_paused=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(app)
        await pilot.press("h")
        await wait_until(lambda: isinstance(app.screen, GateScreen), what="the gate modal")
        assert not app.screen.query_one("#gate-adopt").disabled
        await pilot.press("escape")  # cancel: nothing changes
        await wait_until(lambda: not isinstance(app.screen, GateScreen), what="the modal closed")
        await pilot.press("h")
        await wait_until(lambda: isinstance(app.screen, GateScreen), what="the gate modal")
        await pilot.press("a")
        # Applied by the agent's thread even while paused.
        await wait_until(lambda: app.agent is not None and app.agent.hrm_deciding,
                         timeout=20, what="the HRM adopted")
        state = app.agent.phase_state()
        assert state.adopted_by == "user"
        await pilot.press("h")
        await wait_until(lambda: isinstance(app.screen, GateScreen), what="the gate modal")
        await pilot.press("k")
        await wait_until(lambda: app.agent.phase_state().keep_teacher, timeout=20,
                         what="the teacher kept")
        assert not app.agent.hrm_deciding


def test_the_training_report_says_how_far_below_the_gate_and_the_way_forward(
        paths: DataPaths, capsys) -> None:
    import json

    db = Database(paths.database)
    try:
        db.set_meta(PHASE_META_KEY, PhaseState(
            phase=1, training_attempts=1, last_val_accuracy=0.508,
            last_baseline_accuracy=0.41, last_probe_accuracy=0.393,
            last_teacher_decisiveness=0.59, gate_failures=1).to_meta())
    finally:
        db.close()
    code, out, _ = cli_in_process(capsys, "training", "--data-dir", str(paths.root))
    assert code == 0
    assert "validation accuracy 50.8% is 9.2% below the gate (60%)" in out
    assert "most frequent choice scores 41.0%" in out and "linear probe 39.3%" in out
    assert "aegis-tui adopt" in out and "keep-teacher" in out
    code, out, _ = cli_in_process(capsys, "training", "--json", "--data-dir", str(paths.root))
    gate = json.loads(out)["gate"]
    assert gate["baseline_accuracy"] == pytest.approx(0.41) and gate["runs_below_gate"] == 1
