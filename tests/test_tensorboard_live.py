"""``--tensorboard DIR``: scalars logged live while the agent runs, read back with
TensorBoard's own reader (skipped without the extra), and the event-to-scalar mapping."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aegis_tui.agent.tensorboard_log import ACTION_EVERY, LiveScalars
from aegis_tui.cli import main
from aegis_tui.events import (
    IterationDone,
    QuestionResolved,
    RLUpdated,
    TrainingProgress,
    TrainingStarted,
)

RUN = ["run", "--headless", "--quiet", "--world", "sim", "--teacher", "rules",
       "--think-interval", "0", "--collect-threshold", "100000"]


def done(i: int, action: str = "idle", reward: float = -0.1) -> IterationDone:
    return IterationDone(iteration=i, action=action, policy="teacher", policy_name="rules",
                         reward=reward, success=True, knowledge_gained=0, detail="",
                         probs=(0.25,) * 4, phase=1)


def progress(epoch: int) -> TrainingProgress:
    return TrainingProgress(epoch=epoch, epochs=2, loss=1.0 / epoch, train_accuracy=0.6,
                            val_accuracy=0.5, elapsed_s=1.0)


def test_events_become_scalars_with_steps_that_only_grow() -> None:
    live = LiveScalars(epochs_before=20)
    out = []
    for i in range(1, 11):
        if i == 5:
            out += live.scalars(QuestionResolved(question_id=1, status="answered", reward=0.5))
        out += live.scalars(done(i, "web_search" if i % 2 else "idle", float(i)))
    out += live.scalars(RLUpdated(update=1, loss=0.3, mean_reward=1.0, entropy=1.2, kl=0.01))
    for _ in range(2):
        out += live.scalars(TrainingStarted(examples=100, epochs=2, forced=False))
        out += live.scalars(progress(1)) + live.scalars(progress(2))
    by_tag: dict[str, list[tuple[int, float]]] = {}
    for tag, value, step, _ in out:
        by_tag.setdefault(tag, []).append((step, value))
    assert by_tag["reward/immediate"] == [(i, float(i)) for i in range(1, 11)]
    assert by_tag["reward/credited"] == [(5, 0.5)]  # credited during iteration 5
    assert by_tag["actions/web_search"] == [(ACTION_EVERY, 0.5)]
    assert by_tag["rl/loss"] == [(10, 0.3)]  # the iteration the update ran at
    assert [s for s, _ in by_tag["imitation/loss"]] == [21, 22, 23, 24]  # after 20 earlier
    for series in by_tag.values():
        steps = [s for s, _ in series]
        assert steps == sorted(steps)


def test_a_headless_run_logs_live_and_tensorboard_reads_it(data_dir: Path,
                                                           tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    assert main([*RUN, "--iterations", "50", "--data-dir", str(data_dir),
                 "--tensorboard", str(logdir)]) == 0
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    conn = sqlite3.connect(data_dir / "agent.sqlite3")
    rows = conn.execute("SELECT iteration, reward, action FROM metrics ORDER BY iteration"
                        ).fetchall()
    conn.close()
    immediate = acc.Scalars("reward/immediate")
    assert [(s.step, s.value) for s in immediate] == [
        (i, pytest.approx(r)) for i, r, _ in rows]
    idle = acc.Scalars("actions/idle")
    assert [s.step for s in idle] == [10, 20, 30, 40, 50]
    assert idle[-1].value == pytest.approx([a for _, _, a in rows].count("idle") / 50)


def test_a_failing_writer_stops_logging_never_the_agent(data_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard")
    import aegis_tui.agent.tensorboard_log as tb

    def broken(log_dir: Path) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tb, "_writer", broken)
    assert main([*RUN, "--iterations", "30", "--data-dir", str(data_dir),
                 "--tensorboard", str(tmp_path / "tb")]) == 0
    assert "tensorboard logging to" in (data_dir / "aegis.log").read_text()


async def test_the_dashboard_logs_live_too(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from aegis_tui.paths import DataPaths
    from aegis_tui.ui.app import AegisApp
    from aegis_tui.ui.harness import sim_config, wait_until

    logdir = tmp_path / "tb"
    app = AegisApp(sim_config(), DataPaths.resolve(tmp_path / "data"), iterations=25,
                   tensorboard_dir=logdir)
    async with app.run_test(size=(100, 30)):
        await wait_until(lambda: app._agent_done.is_set(), timeout=60, what="the run")
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    assert [s.step for s in acc.Scalars("reward/immediate")] == list(range(1, 26))
    assert [s.step for s in acc.Scalars("actions/web_search")] == [10, 20]
