"""The one place that owns AEGIS's phases and the rules for moving between them.

1. Data collection: the teacher decides, every decision is logged. Every ``check_every``
   iterations, once ``collect_threshold`` examples exist (and, after a failed attempt,
   ``retrain_after`` more than last time), training is triggered.
2. Imitation: the HRM trains in a child process while the teacher keeps deciding. A run
   that reaches the accuracy gate moves to Phase 3; anything else returns to Phase 1.
   After ``gate_trial_after`` runs in a row below the gate, the HRM gets a reward trial
   instead: it decides for ``fallback_window`` iterations and stays (Phase 3) unless its
   reward is measurably worse than the teacher's. A near-random teacher can never be
   imitated to 60% agreement, yet the HRM may still decide as well as it or better. The
   person can also adopt the HRM, or keep the teacher for good (no more automatic runs).
3. RL fine-tuning: the HRM decides and learns from rewards. The fall-back compares the
   HRM's rolling reward with the teacher's *reference*: the teacher's most recent
   measurement on this world (``Stretch``: mean, spread, iterations). When the HRM is
   measurably worse (margin and noise, ``agent.comparison``), the teacher decides again
   for ``fallback_cooldown`` iterations and is measured anew. If the fresh measurement is
   no better than what the HRM had, the HRM was not to blame (the world changed): it
   resumes where it was, with the new reference. Otherwise it retries from its best
   checkpoint. A reference measured on another world (a resumed data directory) is
   measured again first.

``PhaseState`` is persisted in the database's meta table, so a restart resumes in the right
phase. A run interrupted mid-training (killed process) resumes in Phase 1 and retriggers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import IntEnum
from typing import Any

from aegis_tui.agent.comparison import Stretch, measurably_worse
from aegis_tui.config import Config

PHASE_META_KEY = "phase_state"
MAX_HISTORY = 200  # phase boundaries kept for the plots


class Phase(IntEnum):
    COLLECTION = 1
    IMITATION = 2
    RL = 3


_TITLES = {
    Phase.COLLECTION: "Data Collection (Bootstrap from {teacher})",
    Phase.IMITATION: "Imitation Training (HRM learns from {teacher})",
    Phase.RL: "RL Fine-tuning (HRM improves beyond {teacher})",
}


def phase_title(phase: int, teacher_label: str) -> str:
    """E.g. ``Phase 1: Data Collection (Bootstrap from GPT-2)``."""
    p = Phase(phase)
    return f"Phase {int(p)}: " + _TITLES[p].format(teacher=teacher_label)


@dataclass(slots=True)
class PhaseState:
    phase: int = Phase.COLLECTION
    hrm_active: bool = False
    training_attempts: int = 0
    last_training_examples: int = 0
    next_training_at: int = 0  # examples the next automatic run waits for (after a failure)
    last_val_accuracy: float | None = None
    last_baseline_accuracy: float | None = None  # always-the-teacher's-favourite, same split
    last_probe_accuracy: float | None = None  # a linear model on the same features
    last_teacher_decisiveness: float | None = None  # mean probability of the chosen action
    last_training_message: str = ""
    passed_gate: bool = False
    gate_failures: int = 0  # training runs in a row that ended below the gate
    trial: bool = False  # the HRM decides on a reward trial after failed gates
    trial_started_at: int = 0
    keep_teacher: bool = False  # the person chose the teacher: no automatic training
    adopted_by: str = ""  # "gate", "reward" (a trial), "user"
    rl_updates: int = 0
    rl_iterations: int = 0
    fallbacks: int = 0
    hrm_retry_at: int = 0  # iteration after which a fallen-back HRM may try again
    fallen_back_at: int = 0  # when the teacher took over (its fresh measurement starts here)
    measuring_teacher: bool = False  # the teacher decides only to be measured (no blame)
    teacher_baseline: float | None = None  # the reference's mean (kept for the displays)
    teacher_reference: dict[str, Any] | None = None  # ``Stretch.to_meta()``
    reference_world: str = ""  # the world the reference was measured on
    hrm_at_fallback: dict[str, Any] | None = None  # the HRM's stretch when it fell back
    switched_at: int = 0  # iteration of the last switch to the HRM
    phase_before_training: int = Phase.COLLECTION  # where a failed training run returns to
    history: list[dict[str, Any]] = field(default_factory=list)  # phase boundaries for plots

    @classmethod
    def from_meta(cls, raw: Any) -> PhaseState:
        state = cls()
        if not isinstance(raw, dict):
            return state
        for f in fields(cls):
            if f.name not in raw:
                continue
            value = raw[f.name]
            if _fits(f.type, value):
                setattr(state, f.name, float(value) if f.type == "float | None"
                        and value is not None else value)
        if state.phase not in (1, 2, 3):
            state.phase = Phase.COLLECTION
        state.history = [h for h in state.history if isinstance(h, dict)][-MAX_HISTORY:]
        return state

    def to_meta(self) -> dict[str, Any]:
        out = asdict(self)
        out["history"] = self.history[-MAX_HISTORY:]
        return out

    def note(self, entry: dict[str, Any]) -> None:
        """Add a phase boundary; only the newest ``MAX_HISTORY`` are kept (in memory too)."""
        self.history.append(entry)
        del self.history[:-MAX_HISTORY]

    @property
    def reference(self) -> Stretch | None:
        return Stretch.from_meta(self.teacher_reference)

    def set_reference(self, stretch: Stretch | None, world: str) -> None:
        self.teacher_reference = stretch.to_meta() if stretch is not None else None
        self.teacher_baseline = stretch.mean if stretch is not None else None
        self.reference_world = world if stretch is not None else ""


def _fits(annotation: object, value: Any) -> bool:
    """Whether a stored value has the field's type (annotations are strings here)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "float | None": value is None or number,
        "dict[str, Any] | None": value is None or isinstance(value, dict),
        "list[dict[str, Any]]": isinstance(value, list),
    }.get(str(annotation), False)


class PhaseMachine:
    """Transition rules; the agent performs the side effects and persists ``state``."""

    def __init__(self, state: PhaseState, config: Config) -> None:
        self.state = state
        self.config = config

    @property
    def phase(self) -> Phase:
        return Phase(self.state.phase)

    @property
    def hrm_deciding(self) -> bool:
        return self.phase is Phase.RL and self.state.hrm_active

    def resume_after_restart(self, iteration: int) -> str | None:
        """A process killed mid-training left Phase 2 behind: go back to collecting."""
        if self.phase is Phase.IMITATION:
            back = Phase(self.state.phase_before_training)
            back = back if back is not Phase.IMITATION else Phase.COLLECTION
            # The attempt never finished, so it must not raise the bar for the next trigger.
            self.state.training_attempts = max(0, self.state.training_attempts - 1)
            self._move(back, iteration, "training was interrupted (restart)")
            return (f"training was interrupted by a restart; back to Phase {int(back)}"
                    + (", will retrigger" if back is Phase.COLLECTION else ""))
        return None

    def examples_needed(self) -> int:
        """How many examples the next automatic trigger needs: after a run, ``retrain_after``
        more than there were when it finished (the teacher keeps collecting while a run
        trains, so counting from its start could retrigger the moment it ends)."""
        if self.state.training_attempts == 0:
            return self.config.collect_threshold
        return max(self.config.collect_threshold,
                   self.state.last_training_examples + self.config.retrain_after,
                   self.state.next_training_at)

    def should_trigger(self, iteration: int, examples: int) -> bool:
        return (self.phase is Phase.COLLECTION and not self.state.keep_teacher
                and iteration > 0 and iteration % self.config.check_every == 0
                and examples >= self.examples_needed())

    def can_force(self, examples: int) -> tuple[bool, str]:
        if self.phase is Phase.IMITATION:
            return False, "training is already running"
        if examples < self.config.min_forced_examples:
            return False, (f"only {examples} examples; forcing training needs at least "
                           f"{self.config.min_forced_examples}")
        return True, ""

    def training_started(self, iteration: int, examples: int) -> None:
        self.state.training_attempts += 1
        self.state.last_training_examples = examples
        self.state.phase_before_training = int(self.phase)
        self._move(Phase.IMITATION, iteration, f"training on {examples} examples")

    def training_finished(self, iteration: int, ok: bool, val_accuracy: float | None,
                          passed_gate: bool, message: str, *,
                          baseline: float | None = None, probe: float | None = None,
                          decisiveness: float | None = None, examples_now: int = 0) -> str:
        """Record the result and move on; returns a one-line reason for the log."""
        st = self.state
        st.next_training_at = examples_now + self.config.retrain_after
        st.last_val_accuracy = val_accuracy
        st.last_baseline_accuracy = baseline
        st.last_probe_accuracy = probe
        st.last_teacher_decisiveness = decisiveness
        st.last_training_message = message
        st.passed_gate = passed_gate
        gate = self.config.accuracy_gate
        if passed_gate:
            self._hand_to_hrm(iteration, "gate")
            reason = (f"validation accuracy {val_accuracy:.1%} reached the gate "
                      f"({gate:.0%}); the HRM takes over")
            self._move(Phase.RL, iteration, reason)
            return reason
        back = Phase(st.phase_before_training)
        back = back if back is not Phase.IMITATION else Phase.COLLECTION
        if not (ok and val_accuracy is not None):
            self._move(back, iteration, f"training failed: {message}")
            return f"training failed: {message}; staying with the teacher"
        st.gate_failures += 1
        reason = below_gate_reason(val_accuracy, gate, baseline, probe)
        trial_after = self.config.gate_trial_after
        if (back is Phase.COLLECTION and trial_after and st.gate_failures >= trial_after
                and not st.keep_teacher):
            self._hand_to_hrm(iteration, "")
            st.trial = True
            st.trial_started_at = iteration
            reason += (f"; after {st.gate_failures} runs below the gate the HRM gets a "
                       f"reward trial: it decides for {self.config.fallback_window} "
                       "iterations and stays unless it does measurably worse than the teacher")
            self._move(Phase.RL, iteration, reason)
            return reason
        # A run forced from Phase 3 returns there with the HRM as it was; otherwise collect.
        reason += f"; staying with the teacher, will retry at {self.examples_needed()} examples"
        self._move(back, iteration, reason)
        return reason

    def _hand_to_hrm(self, iteration: int, adopted_by: str) -> None:
        st = self.state
        st.hrm_active = True
        st.trial = False
        st.measuring_teacher = False
        st.adopted_by = adopted_by
        st.switched_at = iteration
        st.rl_updates = 0
        st.rl_iterations = 0
        if adopted_by:
            st.gate_failures = 0

    # -- the person's way forward after failed gates ---------------------------------------
    def adopt(self, iteration: int) -> str:
        """The person adopts the trained HRM whatever its agreement: RL takes over."""
        self.state.keep_teacher = False
        self._hand_to_hrm(iteration, "user")
        reason = "the HRM was adopted by hand; RL takes over"
        self._move(Phase.RL, iteration, reason)
        return reason

    def keep_teacher(self, iteration: int) -> str:
        """The person keeps the teacher: it decides, and no training starts on its own."""
        st = self.state
        st.keep_teacher = True
        st.hrm_active = False
        st.trial = False
        reason = ("the teacher was kept by hand: it decides from now on and no training "
                  "starts on its own (force one with t / aegis-tui train)")
        self._move(Phase.COLLECTION, iteration, reason)
        return reason

    def trial_verdict(self, iteration: int, hrm: Stretch, teacher: Stretch | None) -> str:
        """End a reward trial: the HRM stays unless it did measurably worse than the teacher."""
        st = self.state
        st.trial = False
        if teacher is None or not measurably_worse(hrm, teacher, self.config.fallback_margin):
            st.adopted_by = "reward"
            st.gate_failures = 0
            against = teacher.describe() if teacher is not None else "no teacher measurement"
            reason = (f"reward trial passed: {hrm.describe()} against {against}; the HRM "
                      "stays and RL takes over")
            st.note({"iteration": iteration, "phase": int(Phase.RL), "hrm": True,
                     "reason": reason})
            return reason
        st.hrm_active = False
        reason = (f"reward trial failed: {hrm.describe()} is measurably worse than "
                  f"{teacher.describe()}; back to the teacher, will retry at "
                  f"{self.examples_needed()} examples")
        self._move(Phase.COLLECTION, iteration, reason)
        return reason

    # -- the fall-back ---------------------------------------------------------------------
    def should_fall_back(self, hrm: Stretch | None) -> tuple[bool, str]:
        """Is the HRM measurably worse than the teacher's reference (over a full window)?"""
        reference = self.state.reference
        if not self.hrm_deciding or self.state.trial or reference is None or hrm is None:
            return False, ""
        if hrm.n < self.config.fallback_window:
            return False, ""
        if measurably_worse(hrm, reference, self.config.fallback_margin):
            return True, (f"{hrm.describe()} is measurably worse than the teacher's "
                          f"reference, {reference.describe()}")
        return False, ""

    def fell_back(self, iteration: int, reason: str, hrm: Stretch | None) -> None:
        self.state.fallbacks += 1
        self._teacher_takes_over(iteration, reason, hrm, max(self.config.fallback_cooldown,
                                                             self.config.fallback_window))

    def measure_teacher(self, iteration: int, why: str) -> str:
        """Let the teacher decide for a window to measure it (the HRM is not to blame)."""
        self.state.measuring_teacher = True
        reason = (f"{why}: the teacher decides for {self.config.fallback_window} iterations "
                  "to be measured, then the HRM resumes")
        self._teacher_takes_over(iteration, reason, None, self.config.fallback_window)
        return reason

    def _teacher_takes_over(self, iteration: int, reason: str, hrm: Stretch | None,
                            for_iterations: int) -> None:
        """The teacher decides from ``iteration`` (measured afresh from there) for at least
        ``for_iterations``; ``hrm`` is the HRM's stretch it took over from, if blamed."""
        st = self.state
        st.hrm_active = False
        st.fallen_back_at = iteration
        st.hrm_at_fallback = hrm.to_meta() if hrm is not None else None
        st.hrm_retry_at = iteration + for_iterations
        st.note({"iteration": iteration, "phase": int(self.phase), "hrm": False,
                 "reason": reason})

    def should_retry_hrm(self, iteration: int) -> bool:
        return (self.phase is Phase.RL and not self.state.hrm_active
                and iteration >= self.state.hrm_retry_at)

    def hrm_resumed(self, iteration: int, teacher_now: Stretch | None,
                    world: str) -> tuple[bool, str]:
        """The HRM decides again; returns (from its best checkpoint?, a reason for the log).

        The teacher's fresh measurement becomes the reference. The HRM resumes from its best
        checkpoint only when the teacher did measurably better than the HRM had.
        """
        st = self.state
        measuring = st.measuring_teacher
        before = Stretch.from_meta(st.hrm_at_fallback)
        if teacher_now is not None:
            st.set_reference(teacher_now, world)
        st.hrm_active = True
        st.measuring_teacher = False
        st.switched_at = iteration
        st.rl_iterations = 0
        now = teacher_now.describe() if teacher_now is not None else "no new measurement"
        if measuring:
            best, reason = False, f"teacher measured: {now}; the HRM resumes"
        elif (before is not None and teacher_now is not None
              and measurably_worse(before, teacher_now, self.config.fallback_margin)):
            best, reason = True, (f"the teacher did better ({now}) than the HRM had "
                                  f"({before.describe()}); the HRM retries from its best "
                                  "checkpoint")
        else:
            was = before.describe() if before is not None else "unknown"
            best, reason = False, (f"the teacher did no better ({now}) than the HRM had "
                                   f"({was}): the world changed, not the HRM; the HRM "
                                   "resumes where it was, compared with the new reference")
        st.note({"iteration": iteration, "phase": int(self.phase), "hrm": True,
                 "reason": reason})
        return best, reason

    def _move(self, phase: Phase, iteration: int, reason: str) -> None:
        self.state.phase = int(phase)
        self.state.note({"iteration": iteration, "phase": int(phase),
                         "hrm": self.state.hrm_active and phase is Phase.RL,
                         "reason": reason})


def gate_verdict(state: PhaseState, gate: float) -> str:
    """The last imitation run against the gate, in one line (reports, the ``h`` modal)."""
    val = state.last_val_accuracy
    if val is None:
        return "no imitation run has finished yet"
    if state.passed_gate:
        return f"validation accuracy {val:.1%} reached the gate ({gate:.0%})"
    return below_gate_reason(val, gate, state.last_baseline_accuracy, state.last_probe_accuracy)


def below_gate_reason(val_accuracy: float, gate: float, baseline: float | None,
                      probe: float | None) -> str:
    """One line: how far below the gate, and against which yardsticks."""
    reason = (f"validation accuracy {val_accuracy:.1%} is {gate - val_accuracy:.1%} below the "
              f"gate ({gate:.0%})")
    if baseline is not None:
        reason += f"; always the teacher's most frequent choice scores {baseline:.1%}"
    if probe is not None:
        reason += f", a linear model on the same features {probe:.1%}"
        if baseline is not None and probe <= baseline + 0.02:
            reason += " (the teacher's choices are barely predictable from the state)"
    return reason
