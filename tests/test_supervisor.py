"""TrainingSupervisor: one TrainingFinished per run, whatever the child does."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from aegis_tui.bench.learning_speed import write_example_log
from aegis_tui.bench.synthetic_states import synthetic_examples
from aegis_tui.config import Config, apply_overrides
from aegis_tui.events import Event, Notice, TrainingFinished, TrainingProgress
from aegis_tui.paths import DataPaths
from aegis_tui.policy.checkpoints import load_checkpoint, save_checkpoint
from aegis_tui.training.supervisor import CANDIDATE_NAME, TrainingSupervisor
from aegis_tui.training.worker import FAULT_ENV

TINY = {"model": {"d_model": 32, "n_heads": 2, "expansion": 2.0}}
CONFIG = apply_overrides(Config(), {"imitation": {"epochs": 3, "checkpoint_every": 1},
                                    "accuracy_gate": 0.0, "training_timeout_s": 120.0})


@pytest.fixture
def data(data_dir: Path) -> tuple[DataPaths, int]:
    end = write_example_log(synthetic_examples(100, seed=3), data_dir)
    return DataPaths(data_dir), end


def _supervisor(paths: DataPaths, config: Config = CONFIG, fault: str | None = None,
                settings: dict | None = None) -> TrainingSupervisor:
    env = {FAULT_ENV: fault} if fault else {}
    if not fault:
        os.environ.pop(FAULT_ENV, None)
    return TrainingSupervisor(paths, config, settings=settings or TINY, env=env)


def _until_finished(sup: TrainingSupervisor, limit_s: float = 120.0,
                    on_poll=None) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        batch = sup.poll()
        events.extend(batch)
        if any(isinstance(e, TrainingFinished) for e in batch):
            break
        if on_poll is not None:
            on_poll(events)
        time.sleep(0.02)
    # Nothing more arrives after the final event.
    assert sup.poll() == [] and not sup.running
    finished = [e for e in events if isinstance(e, TrainingFinished)]
    assert len(finished) == 1, events
    return events


def _finished(events: list[Event]) -> TrainingFinished:
    return next(e for e in events if isinstance(e, TrainingFinished))


def test_happy_path(data) -> None:
    paths, end = data
    sup = _supervisor(paths)
    sup.start(end_offset=end, examples=100, forced=False)
    assert sup.running
    with pytest.raises(RuntimeError, match="already running"):
        sup.start(end_offset=end, examples=100, forced=False)
    events = _until_finished(sup)
    progress = [e for e in events if isinstance(e, TrainingProgress)]
    assert [p.epoch for p in progress] == [1, 2, 3]
    assert all(p.epochs == 3 and 0 <= p.val_accuracy <= 1 for p in progress)
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("training started" in n for n in notices)
    assert sum("checkpoint saved" in n for n in notices) == 3
    done = _finished(events)
    assert done.ok and done.passed_gate and done.val_accuracy is not None
    assert "validation accuracy" in done.message
    assert load_checkpoint(paths.trained_checkpoint).meta["kind"] == "trained"
    assert not (paths.checkpoints / CANDIDATE_NAME).exists()
    assert "=== training run started" in paths.worker_log.read_text()


def test_the_child_trains_with_the_configured_tables(data) -> None:
    # No extras: what the [imitation] and [rl] tables say is what the child trains with.
    paths, end = data
    config = apply_overrides(CONFIG, {"imitation": {"epochs": 2, "label_smoothing": 0.1,
                                                    "model": TINY["model"]},
                                      "rl.gamma": 0.5})
    sup = TrainingSupervisor(paths, config)
    sup.start(end_offset=end, examples=100, forced=True)
    assert _finished(_until_finished(sup)).ok
    checkpoint = load_checkpoint(paths.trained_checkpoint)
    settings = checkpoint.meta["settings"]
    assert (settings["epochs"], settings["label_smoothing"], settings["value_gamma"]) == (
        2, 0.1, 0.5)
    assert checkpoint.config.d_model == 32 and checkpoint.config.expansion == 2.0


def test_gate_not_passed(data) -> None:
    paths, end = data
    sup = _supervisor(paths, apply_overrides(CONFIG, {"imitation.epochs": 1,
                                                      "accuracy_gate": 1.0}))
    sup.start(end_offset=end, examples=100, forced=True)
    done = _finished(_until_finished(sup))
    assert done.ok and not done.passed_gate and "did not pass" in done.message


def test_too_few_examples(data_dir: Path) -> None:
    end = write_example_log(synthetic_examples(4, seed=3), data_dir)
    sup = _supervisor(DataPaths(data_dir))
    sup.start(end_offset=end, examples=4, forced=True)
    done = _finished(_until_finished(sup))
    assert not done.ok and not done.passed_gate
    assert "too few examples" in done.message


def _previous_model(paths: DataPaths) -> bytes:
    from aegis_tui.policy.hrm import HRMConfig, build_model

    paths.ensure()
    save_checkpoint(paths.trained_checkpoint,
                    build_model(HRMConfig(d_model=32, n_heads=2), seed=0), meta={"old": True})
    return paths.trained_checkpoint.read_bytes()


def test_crash_reports_last_log_line_and_keeps_old_model(data) -> None:
    paths, end = data
    before = _previous_model(paths)
    stale = paths.checkpoints / ".hrm_epoch_5.pt.abc123.tmp"  # left by a killed worker
    theirs = paths.checkpoints / ".hrm_rl.pt.def456.tmp"  # the agent's, mid-write
    stale.write_bytes(b"x")
    theirs.write_bytes(b"y")
    sup = _supervisor(paths, fault="crash")
    sup.start(end_offset=end, examples=100, forced=False)
    done = _finished(_until_finished(sup))
    assert not done.ok and "exit code 3" in done.message
    assert "fault injected: simulated crash" in done.message
    assert paths.trained_checkpoint.read_bytes() == before
    assert not (paths.checkpoints / CANDIDATE_NAME).exists()
    assert not stale.exists() and theirs.exists()


def test_killed_child(data) -> None:
    paths, end = data
    sup = _supervisor(paths, fault="hang")

    def kill_once_started(events: list[Event]) -> None:
        if any(isinstance(e, Notice) for e in events) and sup.pid is not None:
            os.kill(sup.pid, signal.SIGKILL)

    sup.start(end_offset=end, examples=100, forced=False)
    done = _finished(_until_finished(sup, on_poll=kill_once_started))
    assert not done.ok and "SIGKILL" in done.message


def test_hanging_child_times_out(data) -> None:
    paths, end = data
    sup = _supervisor(paths, replace(CONFIG, training_timeout_s=2.0), fault="hang")
    sup.start(end_offset=end, examples=100, forced=False)
    pid = sup.pid
    done = _finished(_until_finished(sup))
    assert not done.ok and "timed out" in done.message
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


@pytest.mark.parametrize(("fault", "expected"), [
    ("garbage", "broke the protocol"),
    ("exit0", "without finishing"),
    ("corrupt", "unusable"),
])
def test_protocol_and_output_faults(data, fault: str, expected: str) -> None:
    paths, end = data
    before = _previous_model(paths)
    sup = _supervisor(paths, apply_overrides(CONFIG, {"imitation.epochs": 1}), fault=fault)
    sup.start(end_offset=end, examples=100, forced=False)
    done = _finished(_until_finished(sup))
    assert not done.ok and expected in done.message, done.message
    assert paths.trained_checkpoint.read_bytes() == before
    assert not (paths.checkpoints / CANDIDATE_NAME).exists()


def test_cancel_and_close_reap_the_child(data) -> None:
    paths, end = data
    sup = _supervisor(paths, fault="hang")
    sup.start(end_offset=end, examples=100, forced=False)
    pid = sup.pid
    sup.cancel()
    assert not sup.running
    events = sup.poll()
    assert len(events) == 1 and isinstance(events[0], TrainingFinished)
    assert not events[0].ok and "cancelled" in events[0].message
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    sup.start(end_offset=end, examples=100, forced=False)
    pid = sup.pid
    sup.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    sup.close()  # idempotent
    assert sup.poll()[-1].message == "training cancelled"


def test_python_that_cannot_start(data) -> None:
    paths, end = data
    sup = TrainingSupervisor(paths, CONFIG, python="/nonexistent/python")
    sup.start(end_offset=end, examples=100, forced=False)
    events = sup.poll()
    assert len(events) == 1 and not events[0].ok
    assert "could not start" in events[0].message and not sup.running
