"""The one place that owns AEGIS's phases and the rules for moving between them.

1. Data collection: the teacher decides, every decision is logged. Every ``check_every``
   iterations, once ``collect_threshold`` examples exist (and, after a failed attempt,
   ``retrain_after`` more than last time), training is triggered.
2. Imitation: the HRM trains in a child process while the teacher keeps deciding. A run
   that reaches the accuracy gate moves to Phase 3; anything else returns to Phase 1.
3. RL fine-tuning: the HRM decides and learns from rewards. If its rolling reward falls
   clearly below the teacher's, the teacher takes over again (``hrm_active`` false) and the
   HRM is retried from its best checkpoint after a cool-down.

``PhaseState`` is persisted in the database's meta table, so a restart resumes in the right
phase. A run interrupted mid-training (killed process) resumes in Phase 1 and retriggers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any

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
    last_val_accuracy: float | None = None
    last_training_message: str = ""
    passed_gate: bool = False
    rl_updates: int = 0
    rl_iterations: int = 0
    fallbacks: int = 0
    hrm_retry_at: int = 0  # iteration after which a fallen-back HRM may try again
    teacher_baseline: float | None = None  # the teacher's rolling reward when the HRM took over
    switched_at: int = 0  # iteration of the last switch to the HRM
    phase_before_training: int = Phase.COLLECTION  # where a failed training run returns to
    history: list[dict[str, Any]] = field(default_factory=list)  # phase boundaries for plots

    @classmethod
    def from_meta(cls, raw: Any) -> PhaseState:
        state = cls()
        if not isinstance(raw, dict):
            return state
        for name, default in asdict(state).items():
            value = raw.get(name, default)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif name in ("last_val_accuracy", "teacher_baseline"):
                ok = value is None or (isinstance(value, int | float)
                                       and not isinstance(value, bool))
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, str):
                ok = isinstance(value, str)
            else:
                ok = isinstance(value, list)
            if ok:
                setattr(state, name, value)
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
        """How many examples the next automatic trigger needs."""
        if self.state.training_attempts == 0:
            return self.config.collect_threshold
        return max(self.config.collect_threshold,
                   self.state.last_training_examples + self.config.retrain_after)

    def should_trigger(self, iteration: int, examples: int) -> bool:
        return (self.phase is Phase.COLLECTION and iteration > 0
                and iteration % self.config.check_every == 0
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
                          passed_gate: bool, message: str) -> str:
        """Record the result and move on; returns a one-line reason for the log."""
        self.state.last_val_accuracy = val_accuracy
        self.state.last_training_message = message
        self.state.passed_gate = passed_gate
        if passed_gate:
            self.state.hrm_active = True
            self.state.switched_at = iteration
            self.state.rl_updates = 0
            self.state.rl_iterations = 0
            reason = (f"validation accuracy {val_accuracy:.1%} reached the gate "
                      f"({self.config.accuracy_gate:.0%}); the HRM takes over")
            self._move(Phase.RL, iteration, reason)
            return reason
        if ok and val_accuracy is not None:
            reason = (f"validation accuracy {val_accuracy:.1%} is below the gate "
                      f"({self.config.accuracy_gate:.0%}); staying with the teacher, will "
                      f"retry at {self.examples_needed()} examples")
        else:
            reason = f"training failed: {message}; staying with the teacher"
        # A run forced from Phase 3 returns there with the HRM as it was; otherwise collect.
        back = Phase(self.state.phase_before_training)
        self._move(back if back is not Phase.IMITATION else Phase.COLLECTION, iteration, reason)
        return reason

    def should_fall_back(self, hrm_mean: float | None, hrm_n: int) -> tuple[bool, str]:
        """Compare the HRM's rolling reward with the teacher's baseline over the window."""
        baseline = self.state.teacher_baseline
        if not self.hrm_deciding or baseline is None or hrm_mean is None:
            return False, ""
        if hrm_n < self.config.fallback_window:
            return False, ""
        limit = baseline - self.config.fallback_margin * max(abs(baseline), 1.0)
        if hrm_mean < limit:
            return True, (f"HRM rolling reward {hrm_mean:+.2f} over {hrm_n} iterations is below "
                          f"the teacher's {baseline:+.2f} by more than the margin")
        return False, ""

    def fell_back(self, iteration: int, reason: str) -> None:
        self.state.hrm_active = False
        self.state.fallbacks += 1
        self.state.hrm_retry_at = iteration + self.config.fallback_cooldown
        self.state.note({"iteration": iteration, "phase": int(self.phase),
                                   "hrm": False, "reason": reason})

    def should_retry_hrm(self, iteration: int) -> bool:
        return (self.phase is Phase.RL and not self.state.hrm_active
                and iteration >= self.state.hrm_retry_at)

    def hrm_resumed(self, iteration: int) -> None:
        self.state.hrm_active = True
        self.state.switched_at = iteration
        self.state.note({"iteration": iteration, "phase": int(self.phase),
                                   "hrm": True, "reason": "HRM retried"})

    def _move(self, phase: Phase, iteration: int, reason: str) -> None:
        self.state.phase = int(phase)
        self.state.note({"iteration": iteration, "phase": int(phase),
                                   "hrm": self.state.hrm_active and phase is Phase.RL,
                                   "reason": reason})
