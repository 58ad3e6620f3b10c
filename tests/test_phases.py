"""The phase machine's judgements: the fall-back compares fairly, the gate cannot trap."""

from __future__ import annotations

import random

import pytest

from aegis_tui.agent.comparison import Stretch, measurably_worse
from aegis_tui.agent.phases import Phase, PhaseMachine, PhaseState, below_gate_reason
from aegis_tui.config import Config


def _stretch(policy: str, mean: float, n: int = 200, sd: float = 2.0, first: int = 1,
             seed: int = 0) -> Stretch:
    # Exactly ``mean``, spread ``sd`` (alternating; ``seed`` only reorders them).
    values = [mean + (sd if k % 2 else -sd) for k in range(n)]
    random.Random(seed).shuffle(values)
    rows = [(first + k, v) for k, v in enumerate(values)]
    stretch = Stretch.of(policy, rows)
    assert stretch is not None
    return stretch


def _machine(**config: object) -> PhaseMachine:
    return PhaseMachine(PhaseState(), Config(**config))  # type: ignore[arg-type]


def _deciding(machine: PhaseMachine, reference: Stretch) -> PhaseMachine:
    machine.training_started(1000, 1000)
    machine.training_finished(1000, True, 0.9, True, "passed")
    machine.state.set_reference(reference, "sim (seed 1)")
    machine.state.rl_iterations = 500
    return machine


def test_noise_is_not_a_difference() -> None:
    teacher = _stretch("teacher", 3.0, seed=1)
    assert not measurably_worse(_stretch("hrm", 2.85, seed=2), teacher, margin=0.05)
    assert measurably_worse(_stretch("hrm", 1.0, seed=3), teacher, margin=0.05)
    # Big enough to beat the noise but inside the margin: not worse.
    assert not measurably_worse(_stretch("hrm", 2.5, sd=0.1, seed=4),
                                _stretch("teacher", 3.0, sd=0.1, seed=5), margin=0.25)
    # The test is one-sided: a better HRM is never "worse".
    assert not measurably_worse(_stretch("hrm", 4.0, seed=6), teacher, margin=0.0)


def test_stretch_round_trips_and_describes_itself() -> None:
    s = _stretch("teacher", 2.61, first=801)
    again = Stretch.from_meta(s.to_meta())
    assert again == s
    assert s.describe().startswith("teacher +2.") and "iterations 801-1000" in s.describe()
    assert Stretch.from_meta({"policy": "x"}) is None and Stretch.from_meta(None) is None
    assert Stretch.of("hrm", []) is None


def test_fall_back_needs_a_full_window_and_a_measurable_gap() -> None:
    m = _deciding(_machine(), _stretch("teacher", 3.0))
    assert m.should_fall_back(_stretch("hrm", 0.5, n=50)) == (False, "")
    assert not m.should_fall_back(_stretch("hrm", 2.9))[0]
    fall, reason = m.should_fall_back(_stretch("hrm", 0.5))
    assert fall and "measurably worse" in reason and "reference, teacher +" in reason


def test_a_world_that_got_worse_is_not_blamed_on_the_hrm() -> None:
    m = _deciding(_machine(), _stretch("teacher", 3.0))
    hrm = _stretch("hrm", 1.2, first=2000)
    m.fell_back(2200, "worse", hrm)
    assert not m.hrm_deciding and m.state.fallbacks == 1
    assert m.should_retry_hrm(m.state.hrm_retry_at)
    # Measured again while it decides, the teacher is no better than the HRM was.
    teacher_now = _stretch("teacher", 1.3, n=500, first=2201)
    best, reason = m.hrm_resumed(m.state.hrm_retry_at, teacher_now, "sim (seed 1)")
    assert not best and "world changed" in reason
    assert m.hrm_deciding and m.state.reference == teacher_now
    # From now on the HRM is judged against the teacher of now: no second fall-back.
    m.state.rl_iterations = 500
    assert not m.should_fall_back(_stretch("hrm", 1.2, seed=9))[0]


def test_an_hrm_that_really_was_worse_retries_from_its_best_checkpoint() -> None:
    m = _deciding(_machine(), _stretch("teacher", 3.0))
    m.fell_back(2200, "worse", _stretch("hrm", 0.4, first=2000))
    best, reason = m.hrm_resumed(m.state.hrm_retry_at, _stretch("teacher", 3.1, n=500),
                                 "sim (seed 1)")
    assert best and "best checkpoint" in reason


def test_measuring_the_teacher_blames_nobody() -> None:
    m = _deciding(_machine(fallback_window=100), _stretch("teacher", 3.0))
    reason = m.measure_teacher(5000, "the reference was measured on another world")
    assert "to be measured" in reason and not m.hrm_deciding and m.state.fallbacks == 0
    assert m.state.hrm_retry_at == 5100
    best, _ = m.hrm_resumed(5100, _stretch("teacher", 1.0, n=100), "offline (Python docs)")
    assert not best and m.state.reference_world == "offline (Python docs)"


def test_below_the_gate_says_by_how_much_and_against_what() -> None:
    reason = below_gate_reason(0.41, 0.6, 0.38, 0.39)
    assert "19.0% below the gate (60%)" in reason
    assert "38.0%" in reason and "39.0%" in reason and "barely predictable" in reason
    assert "barely" not in below_gate_reason(0.41, 0.6, 0.38, 0.9)


def test_repeated_failures_lead_to_a_reward_trial_not_endless_retraining() -> None:
    m = _machine(gate_trial_after=2)
    m.training_started(1000, 1000)
    first = m.training_finished(1000, True, 0.3, False, "below", baseline=0.35, probe=0.3)
    assert m.phase is Phase.COLLECTION and "retry at 1500" in first
    m.training_started(1500, 1500)
    second = m.training_finished(1500, True, 0.32, False, "below", baseline=0.35, probe=0.3)
    assert m.phase is Phase.RL and m.hrm_deciding and m.state.trial
    assert "reward trial" in second
    # The trial: not measurably worse than the teacher -> the HRM stays.
    verdict = m.trial_verdict(1700, _stretch("hrm", 2.9), _stretch("teacher", 3.0))
    assert "passed" in verdict and m.hrm_deciding and not m.state.trial
    assert m.state.adopted_by == "reward" and m.state.gate_failures == 0


def test_a_failed_trial_goes_back_to_the_teacher() -> None:
    m = _machine(gate_trial_after=1)
    m.training_started(1000, 1000)
    m.training_finished(1000, True, 0.3, False, "below")
    assert m.state.trial
    verdict = m.trial_verdict(1200, _stretch("hrm", -1.0), _stretch("teacher", 3.0))
    assert "failed" in verdict and m.phase is Phase.COLLECTION and not m.hrm_deciding
    assert m.should_trigger(1500, 1500)


def test_the_person_can_adopt_or_keep_the_teacher() -> None:
    m = _machine(gate_trial_after=0)
    m.training_started(1000, 1000)
    m.training_finished(1000, True, 0.2, False, "below")
    assert m.phase is Phase.COLLECTION and not m.state.trial  # 0: never a trial
    assert "adopted" in m.adopt(1100) and m.hrm_deciding and m.state.adopted_by == "user"
    assert "kept" in m.keep_teacher(1200)
    assert not m.hrm_deciding and m.state.keep_teacher
    assert not m.should_trigger(2000, 5000)  # no training starts on its own any more
    assert m.adopt(2100) and not m.state.keep_teacher


def test_old_phase_records_still_load() -> None:
    old = {"phase": 3, "hrm_active": True, "teacher_baseline": 2.5, "fallbacks": 2,
           "history": [{"iteration": 1}], "unknown": 1, "gate_failures": "x"}
    state = PhaseState.from_meta(old)
    assert state.phase == 3 and state.hrm_active and state.teacher_baseline == 2.5
    assert state.gate_failures == 0 and state.reference is None
    assert PhaseState.from_meta(state.to_meta()) == state


@pytest.mark.parametrize("raw", [None, [], "x", {"phase": 9}])
def test_garbage_phase_records_give_phase_one(raw: object) -> None:
    assert PhaseState.from_meta(raw).phase == Phase.COLLECTION
