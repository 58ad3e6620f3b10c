"""The whole pipeline with a language-model teacher: collect, imitate, hand over, RL.

The real agent runs headless in this process (``AgentRuntime``: loop, executor, phase
machine, training subprocess, RL), on a sim world, with a tiny random-weight LM built here
and loaded through ``LMTeacher.load``, the path ``--teacher-model DIR`` takes. Thresholds
are small (a few hundred examples, a few epochs) so it runs in CI; the loop waits for the
training child, so the outcome depends on the seeds alone.

Two sharp random teachers (large initial weights, so their preferences depend on the prompt
and the state can predict them; the default weights give a teacher whose argmax hardly
moves with the state, see ``tests/test_imitation.py`` for that case): a Llama that imitation
learns beyond the gate, and a GPT-2 it learns beyond the majority baseline but not to the
60% gate, which must not trap the run: after one failed run the HRM gets a trial on reward
and, no worse than the teacher, stays.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_tui.agent.phases import PHASE_META_KEY, PhaseState
from aegis_tui.bench.pipeline import PipelineRun, run_pipeline
from aegis_tui.policy.lm_teacher import LMTeacher
from aegis_tui.policy.local_lm import build_local_lm
from aegis_tui.storage.database import Database

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"collect_threshold": 400, "imitation": {"epochs": 6, "checkpoint_every": 3},
        "gate_trial_after": 1, "fallback_window": 100}


def run_with(tmp_path: Path, arch: str, init_range: float, iterations: int) -> PipelineRun:
    model = build_local_lm(tmp_path / f"lm-{arch}", arch=arch, seed=3, init_range=init_range)
    teacher = LMTeacher.load(str(model), timeout_s=120, seed=11, temperature=0.5,
                             device="cpu")
    try:
        return run_pipeline(tmp_path / "run", 11, teacher, iterations, **FAST)
    finally:
        teacher.close()


def final_state(run: PipelineRun) -> PhaseState:
    assert run.paths is not None
    db = Database(run.paths.database, readonly=True)
    try:
        return PhaseState.from_meta(db.get_meta(PHASE_META_KEY))
    finally:
        db.close()


def test_a_sharp_lm_teacher_is_imitated_beyond_the_baseline_and_rl_takes_over(
        tmp_path: Path) -> None:
    run = run_with(tmp_path, "llama", 0.5, 700)
    assert run.gate_runs, "imitation never ran"
    first = run.gate_runs[0]
    assert first.val_accuracy is not None and first.baseline_accuracy is not None
    assert first.val_accuracy > first.baseline_accuracy
    assert first.teacher_decisiveness is not None and first.teacher_decisiveness > 0.25
    assert run.hrm_from is not None and run.hrm_from <= 402
    state = final_state(run)
    assert state.phase == 3 and state.hrm_active
    assert state.rl_updates > 0
    assert run.paths is not None and run.paths.rl_checkpoint.exists()


def test_an_lm_teacher_below_the_gate_does_not_trap_the_run(tmp_path: Path) -> None:
    run = run_with(tmp_path, "gpt2", 0.5, 650)
    first = run.gate_runs[0]
    assert first.val_accuracy is not None and first.baseline_accuracy is not None
    assert first.baseline_accuracy < first.val_accuracy < 0.6 and not first.passed
    assert run.hrm_from is not None and run.hrm_from <= 402
    state = final_state(run)
    assert state.phase == 3 and state.hrm_active
    assert state.adopted_by == "reward"
    assert state.last_baseline_accuracy == pytest.approx(first.baseline_accuracy)
