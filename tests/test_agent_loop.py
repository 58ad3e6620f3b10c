"""The loop: iterations, events, autosave lines, pause/resume/stop, restart, the lock."""

from __future__ import annotations

import threading
import time

import pytest

from aegis_tui.events import IterationDone, Notice, RunStateChanged, StateChanged
from aegis_tui.storage.lock import DataDirLocked
from aegis_tui.training.example_log import read_examples
from tests.fakes import make_runtime


def run_in_thread(agent, **kwargs):  # type: ignore[no-untyped-def]
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.setdefault("summary", agent.run(**kwargs)),
                              daemon=True)
    thread.start()
    return thread, box


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_iterations_log_examples_and_publish_events(data_dir):
    with make_runtime(data_dir, autosave_every=50) as rt:
        summary = rt.agent.run(max_iterations=120)
        events = rt.bus.drain()
    assert summary.iterations == 120 and summary.stopped_by == "limit"
    done = [e for e in events if isinstance(e, IterationDone)]
    assert [e.iteration for e in done] == list(range(1, 121))
    assert all(abs(sum(e.probs) - 1) < 1e-6 for e in done)
    assert any(isinstance(e, StateChanged) for e in events)
    lines = [e.message for e in events if isinstance(e, Notice)]
    assert "Collected 50 training examples (auto-saved)" in lines
    assert "Collected 100 training examples (auto-saved)" in lines
    assert read_examples(rt.paths.examples).count == 120
    log = rt.paths.log.read_text()
    assert "Collected 100 training examples (auto-saved)" in log
    assert "[iter 120]" in log


def test_stop_is_prompt_even_mid_sleep(data_dir):
    with make_runtime(data_dir, think_interval=60) as rt:
        thread, box = run_in_thread(rt.agent)
        assert wait_for(lambda: rt.agent.iteration >= 1)
        started = time.monotonic()
        rt.agent.stop()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert time.monotonic() - started < 1.0
        assert box["summary"].stopped_by == "stop"


def test_pause_and_resume(data_dir):
    with make_runtime(data_dir, think_interval=0.01) as rt:
        agent = rt.agent
        thread, _ = run_in_thread(agent)
        assert wait_for(lambda: agent.iteration >= 3)
        assert agent.toggle_pause() is True
        time.sleep(0.1)
        frozen = agent.iteration
        time.sleep(0.3)
        assert agent.iteration == frozen, "a paused agent takes no actions"
        assert agent.toggle_pause() is False
        assert wait_for(lambda: agent.iteration > frozen + 2)
        agent.stop()
        thread.join(timeout=5)
        states = [e.state for e in rt.bus.drain() if isinstance(e, RunStateChanged)]
        assert states[:1] == ["running"] and "paused" in states and states[-1] == "stopped"


def test_state_survives_restart(data_dir):
    with make_runtime(data_dir) as rt:
        rt.agent.run(max_iterations=60)
        goals = [(g.text, g.matched) for g in rt.agent.db.goals()]
        knowledge = rt.agent.db.knowledge_count()
        counters = rt.agent.state.counters
        searches = counters.web_searches
    with make_runtime(data_dir) as rt:
        assert [(g.text, g.matched) for g in rt.agent.db.goals()] == goals
        assert rt.agent.db.knowledge_count() == knowledge
        assert rt.agent.examples.count == 60
        assert rt.agent.iteration == 60
        assert rt.agent.state.counters.web_searches == searches
        rt.agent.run(max_iterations=5)
        assert rt.agent.iteration == 65
        assert rt.agent.examples.count == 65


def test_second_instance_is_refused_with_the_holder_named(data_dir):
    import os

    with make_runtime(data_dir):
        with pytest.raises(DataDirLocked) as info:
            make_runtime(data_dir)
        assert f"pid {os.getpid()}" in str(info.value)
    # Released on close: a new instance may start.
    with make_runtime(data_dir):
        pass


def test_a_failing_iteration_does_not_end_the_run(data_dir):
    with make_runtime(data_dir) as rt:
        calls = {"n": 0}
        original = rt.agent.executor.execute

        def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("disk hiccup")
            return original(*args, **kwargs)

        rt.agent.executor.execute = flaky  # type: ignore[method-assign]
        summary = rt.agent.run(max_iterations=10)
        errors = [e for e in rt.bus.drain() if isinstance(e, Notice) and e.level == "error"]
    assert summary.stopped_by == "limit"
    assert any("disk hiccup" in e.message for e in errors)


def test_repeated_failures_stop_with_a_clear_message(data_dir):
    with make_runtime(data_dir) as rt:
        def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError("No space left on device")

        rt.agent.executor.execute = broken  # type: ignore[method-assign]
        summary = rt.agent.run(max_iterations=50)
    assert summary.stopped_by == "error"
    assert "No space left on device" in summary.message
