"""``Agent.what_if`` with an LM teacher, called from another thread while the agent runs:
the answers are the policies' own (the loop keeps deciding with the same teacher, under
the same lock), and an HRM-deciding agent never waits for the teacher."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from aegis_tui.agent.phases import PHASE_META_KEY, PhaseState
from aegis_tui.events import Event, IterationDone
from tests.fakes import make_runtime
from tests.lm_fixtures import tiny_lm_dir  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def lm_teacher(folder: Path):  # type: ignore[no-untyped-def]
    from aegis_tui.policy.lm_teacher import LMTeacher

    return LMTeacher.load(str(folder), timeout_s=120, seed=0)


def run_in_thread(agent) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    return thread


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_asking_the_lm_teacher_while_it_decides_gives_its_own_answers(data_dir: Path,
                                                        tiny_lm_dir: Path) -> None:  # noqa: F811
    teacher = lm_teacher(tiny_lm_dir)
    with make_runtime(data_dir, teacher=teacher) as rt:
        events: list[Event] = []
        rt.bus.subscribe(events.append)
        thread = run_in_thread(rt.agent)
        wait_for(lambda: any(isinstance(e, IterationDone) for e in events))
        snapshot = next(e for e in events if isinstance(e, IterationDone)).snapshot
        answers = [rt.agent.what_if(snapshot) for _ in range(15)]  # the loop decides too
        start = rt.agent.iteration
        wait_for(lambda: rt.agent.iteration > start + 3)
        rt.agent.stop()
        thread.join(30)
        expected = teacher.probabilities(snapshot)  # before the runtime closes the teacher
    for answer in answers:
        assert answer.teacher is not None and answer.teacher.error == ""
        assert answer.teacher.probs == pytest.approx(expected)
        assert answer.imitation is None  # Phase 1: no imitation model yet
    assert answers[0].teacher_name == "tiny-gpt2"


def test_an_hrm_deciding_agent_never_waits_for_the_teacher(data_dir: Path,
                                                           tiny_lm_dir: Path) -> None:  # noqa: F811
    from aegis_tui.policy.checkpoints import save_checkpoint
    from aegis_tui.policy.hrm import HRMConfig, build_model
    from aegis_tui.policy.hrm_policy import HRMPolicy

    with make_runtime(data_dir) as rt:
        rt.agent.db.set_meta(PHASE_META_KEY, PhaseState(
            phase=3, hrm_active=True, passed_gate=True, last_val_accuracy=0.9,
            training_attempts=1).to_meta())
    trained = data_dir / "checkpoints" / "hrm_trained.pt"
    save_checkpoint(trained, build_model(HRMConfig(d_model=32, n_heads=2, expansion=2.0),
                                         seed=0), meta={"epoch": 1, "val_accuracy": 0.9})
    teacher = lm_teacher(tiny_lm_dir)
    with make_runtime(data_dir, teacher=teacher) as rt:
        events: list[Event] = []
        rt.bus.subscribe(events.append)
        thread = run_in_thread(rt.agent)
        wait_for(lambda: any(isinstance(e, IterationDone) for e in events))
        decision = next(e for e in events if isinstance(e, IterationDone))
        assert decision.policy == "hrm"
        # Hold the teacher as a slow what_if would: the HRM keeps deciding meanwhile.
        with rt.agent._teacher_lock:
            start = rt.agent.iteration
            wait_for(lambda: rt.agent.iteration >= start + 20)
        answer = rt.agent.what_if(decision.snapshot)
        rt.agent.stop()
        thread.join(30)
        expected = teacher.probabilities(decision.snapshot)
    assert answer.teacher is not None
    assert answer.teacher.probs == pytest.approx(expected)
    reference = HRMPolicy.from_checkpoint(trained, sample=False)
    assert answer.imitation is not None
    assert answer.imitation.probs == pytest.approx(reference.probabilities(decision.snapshot))
