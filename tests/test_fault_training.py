"""A training child that fails in every way, seen through ``Agent.run``: the agent keeps going.

The supervisor's own tests check each failure's message; these check what a user of the
agent sees: the loop never stops or stalls, the phase goes back to collection (and stays
there, no retrigger loop), the run is recorded as failed with a clear one-line message in
the event stream, the database and ``aegis.log``, and no model from the failed run is ever
installed. ``AEGIS_WORKER_FAULT`` makes the real worker misbehave on cue.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_tui.agent.phases import PHASE_META_KEY, Phase
from aegis_tui.events import Event, IterationDone, Notice, PhaseChanged, TrainingFinished
from aegis_tui.training.supervisor import CANDIDATE_NAME
from aegis_tui.training.worker import FAULT_ENV
from tests.fakes import make_runtime

AFTER_FAILURE = 40  # iterations the agent must go on for after the failure


@pytest.mark.parametrize(("fault", "needle"), [
    ("crash", "training worker crashed (exit code 3): "),
    ("hang", "training timed out after"),
    ("garbage", "training worker broke the protocol"),
    ("kill", "training worker was killed by SIGKILL"),
    ("corrupt", "trained model is unusable"),
])
def test_a_failing_training_child_leaves_the_agent_collecting(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch, fault: str, needle: str) -> None:
    monkeypatch.setenv(FAULT_ENV, fault)
    events: list[Event] = []
    finished_at: list[int] = []
    # A short timeout only for the hang: starting a worker (importing torch) takes a second.
    timeout = 1.0 if fault == "hang" else 120.0
    with make_runtime(data_dir, collect_threshold=60, check_every=20,
                      imitation={"epochs": 1, "checkpoint_every": 1},
                      training_timeout_s=timeout) as rt:
        agent = rt.agent

        def watch(event: Event) -> None:
            events.append(event)
            if isinstance(event, TrainingFinished):
                finished_at.append(agent.iteration)
            if finished_at and agent.iteration >= finished_at[0] + AFTER_FAILURE:
                agent.stop()

        rt.bus.subscribe(watch)
        summary = agent.run(max_iterations=20_000)
        phase = agent.learning.phases
        assert summary.stopped_by == "stop", summary
        assert agent.iteration >= finished_at[0] + AFTER_FAILURE
        assert phase.phase is Phase.COLLECTION and not phase.hrm_deciding
        assert rt.agent.db.get_meta(PHASE_META_KEY)["phase"] == 1
        runs = rt.agent.db.training_runs()
        assert len(runs) == 1, "a failed run must not retrigger at once"
        assert runs[0].status == "failed" and needle in runs[0].message
        examples_after = rt.agent.examples.count
    done = [e for e in events if isinstance(e, TrainingFinished)]
    assert len(done) == 1 and not done[0].ok and not done[0].passed_gate
    assert needle in done[0].message and "\n" not in done[0].message
    back = [e for e in events if isinstance(e, PhaseChanged) and e.old == 2]
    assert back and back[0].new == 1 and not back[0].hrm_active
    warnings = [e.message for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert any(m.startswith("training failed: ") and needle in m
               and m.endswith("staying with the teacher") for m in warnings), warnings
    # The teacher kept deciding and every decision was still logged.
    later = [e for e in events if isinstance(e, IterationDone) and e.iteration > finished_at[0]]
    assert len(later) >= AFTER_FAILURE and all(e.policy == "teacher" for e in later)
    assert examples_after >= finished_at[0] + AFTER_FAILURE
    log = (data_dir / "aegis.log").read_text()
    assert "training finished: FAILED" in log and needle in log
    checkpoints = data_dir / "checkpoints"
    assert not (checkpoints / "hrm_trained.pt").exists()
    assert not (checkpoints / CANDIDATE_NAME).exists()
    assert not list(checkpoints.glob(".*.tmp"))
