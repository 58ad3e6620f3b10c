"""Phases 2 and 3 as the agent drives them: training trigger, the child process, RL, fall-back.

``LearningController`` performs the side effects the ``PhaseMachine`` decides on: it starts
and watches the imitation child (``training.supervisor``), loads the HRM when the gate is
passed, feeds rewards to the RL trainer, checkpoints the RL policy, and hands control back
to the teacher when the HRM underperforms. torch is imported only when the HRM is needed, so
Phase 1 (and ``aegis-tui status``) never pays for it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from aegis_tui.agent.phases import PHASE_META_KEY, Phase, PhaseMachine, PhaseState, phase_title
from aegis_tui.config import Config
from aegis_tui.events import (
    Event,
    EventBus,
    Notice,
    PhaseChanged,
    RLUpdated,
    TrainingFinished,
    TrainingProgress,
    TrainingStarted,
)
from aegis_tui.paths import DataPaths
from aegis_tui.policy.base import Decision, Policy
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.database import Database
from aegis_tui.training.example_log import ExampleLog

if TYPE_CHECKING:
    from aegis_tui.agent.executor import ActionResult, Credit

log = logging.getLogger("aegis")


class LearningController:
    def __init__(self, *, config: Config, paths: DataPaths, db: Database, bus: EventBus,
                 examples: ExampleLog, teacher_label: str) -> None:
        self.config = config
        self.paths = paths
        self.db = db
        self.bus = bus
        self.examples = examples
        self.teacher_label = teacher_label
        self.phases = PhaseMachine(PhaseState.from_meta(db.get_meta(PHASE_META_KEY)), config)
        self._supervisor: Any = None
        self._run_id: int | None = None
        self._epochs: list[dict[str, Any]] = []
        self._hrm: Policy | None = None
        self._rl: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, iteration: int) -> list[Event]:
        events: list[Event] = []
        note = self.phases.resume_after_restart(iteration)
        if note:
            for run in self.db.training_runs(limit=5):
                if run.status == "running":
                    self.db.update_training_run(run.id, status="interrupted",
                                                message="the process stopped mid-training",
                                                finished_at=time.time())
            events.append(Notice(note, "warning"))
        if self.phases.hrm_deciding:
            events.extend(self._load_hrm(iteration, resume=True))
        self._save()
        events.append(Notice(f"{self.title}; {self.examples.count} examples collected"))
        return events

    def shutdown(self, iteration: int) -> list[Event]:
        """Stop the training child (if any) and checkpoint the RL policy."""
        events: list[Event] = []
        if self._supervisor is not None and self._supervisor.running:
            self._supervisor.cancel()
            events.extend(self._drain_supervisor(iteration))
        if self._supervisor is not None:
            self._supervisor.close()
        if self._rl is not None:
            events.extend(self._checkpoint_rl())
        self._save()
        return events

    @property
    def training_running(self) -> bool:
        return self._supervisor is not None and self._supervisor.running

    @property
    def title(self) -> str:
        return phase_title(self.phases.phase, self.teacher_label)

    def _save(self) -> None:
        self.db.set_meta(PHASE_META_KEY, self.phases.state.to_meta())

    # -- Phase 1 -> 2 ----------------------------------------------------------------------
    def can_force(self, examples: int) -> tuple[bool, str]:
        return self.phases.can_force(examples)

    def maybe_trigger(self, iteration: int) -> list[Event]:
        if not self.phases.should_trigger(iteration, self.examples.count):
            return []
        events: list[Event] = [Notice(
            f"TRAINING TRIGGER: Sufficient data collected! ({self.examples.count} examples)")]
        events.extend(self._start_training(iteration, forced=False))
        return events

    def force(self, iteration: int) -> list[Event]:
        ok, why = self.can_force(self.examples.count)
        if not ok:
            return [Notice(f"training not started: {why}", "warning")]
        events: list[Event] = [Notice(f"TRAINING FORCED on {self.examples.count} examples")]
        events.extend(self._start_training(iteration, forced=True))
        return events

    def _start_training(self, iteration: int, forced: bool) -> list[Event]:
        from aegis_tui.training.supervisor import TrainingSupervisor

        if self._supervisor is None:
            self._supervisor = TrainingSupervisor(self.paths, self.config)
        self.examples.sync()
        count, offset = self.examples.count, self.examples.offset
        old = self.phases.phase
        self.phases.training_started(iteration, count)
        self._run_id = self.db.start_training_run(count, forced, time.time())
        self._epochs = []
        try:
            self._supervisor.start(end_offset=offset, examples=count, forced=forced)
        except Exception as exc:  # e.g. cannot spawn a process
            return [*self._finish(iteration, TrainingFinished(
                ok=False, val_accuracy=None, passed_gate=False,
                message=f"could not start training: {type(exc).__name__}: {exc}"))]
        self._save()
        return [TrainingStarted(examples=count, epochs=self.config.epochs, forced=forced),
                PhaseChanged(old=int(old), new=int(self.phases.phase), hrm_active=False,
                             reason=f"training on {count} examples in a child process")]

    # -- Phase 2 progress ------------------------------------------------------------------
    def poll(self, iteration: int) -> list[Event]:
        if self._supervisor is None:
            return []
        return self._drain_supervisor(iteration)

    def _drain_supervisor(self, iteration: int) -> list[Event]:
        out: list[Event] = []
        for event in self._supervisor.poll():
            if isinstance(event, TrainingProgress):
                self._epochs.append({"epoch": event.epoch, "loss": event.loss,
                                     "train_accuracy": event.train_accuracy,
                                     "val_accuracy": event.val_accuracy,
                                     "elapsed_s": event.elapsed_s})
                if self._run_id is not None:
                    self.db.update_training_run(self._run_id, epochs=self._epochs)
                out.append(event)
            elif isinstance(event, TrainingFinished):
                out.extend(self._finish(iteration, event))
            else:
                out.append(event)
        return out

    def _finish(self, iteration: int, event: TrainingFinished) -> list[Event]:
        out: list[Event] = [event]
        passed = event.passed_gate
        if passed:
            loaded = self._load_hrm(iteration, resume=False)
            if any(isinstance(e, Notice) and e.level == "error" for e in loaded):
                passed = False
            out.extend(loaded)
        old = self.phases.phase
        reason = self.phases.training_finished(iteration, event.ok, event.val_accuracy, passed,
                                               event.message)
        if passed:
            baseline, _ = self.db.rolling_reward("teacher", self.config.fallback_window)
            self.phases.state.teacher_baseline = baseline
        if self._run_id is not None:
            status = "passed" if passed else ("below_gate" if event.ok else "failed")
            last = self._epochs[-1] if self._epochs else {}
            self.db.update_training_run(self._run_id, status=status,
                                        val_accuracy=event.val_accuracy,
                                        train_accuracy=last.get("train_accuracy"),
                                        message=event.message, finished_at=time.time())
            self._run_id = None
        self._save()
        out.append(PhaseChanged(old=int(old), new=int(self.phases.phase),
                                hrm_active=self.phases.hrm_deciding, reason=reason))
        out.append(Notice(reason, "info" if passed else "warning"))
        return out

    # -- Phase 3 ---------------------------------------------------------------------------
    def active_policy(self) -> Policy | None:
        return self._hrm if self.phases.hrm_deciding else None

    def imitation_policy(self) -> Policy | None:
        """The frozen imitation model (RL's KL reference) as a greedy policy, for the
        decision inspector; None before Phase 3. Safe from any thread: it is never trained
        and its forward pass changes nothing."""
        session = self._rl
        if session is None:
            return None
        from aegis_tui.policy.hrm_policy import HRMPolicy

        return HRMPolicy(session.trainer.reference, sample=False)

    def _load_hrm(self, iteration: int, *, resume: bool, best: bool = False) -> list[Event]:
        """Load the HRM (and its RL state) from disk; on failure keep the teacher."""
        from aegis_tui.training.rl_session import RLSession

        try:
            session = RLSession.open(self.paths, self.config, resume=resume, best=best)
        except Exception as exc:
            self.phases.state.hrm_active = False
            self._save()
            return [Notice(f"the HRM could not be loaded ({exc}); the teacher keeps deciding",
                           "error")]
        self._rl = session
        self._hrm = session.policy
        notes: list[Event] = [Notice(w, "warning") for w in session.warnings]
        notes.append(Notice(f"HRM loaded from {session.source} "
                            f"({session.parameters:,} parameters)"))
        return notes

    def credit(self, credits: list[Credit]) -> None:
        if self._rl is not None:
            for c in credits:
                self._rl.credit(c.iteration, c.reward)

    def after_iteration(self, iteration: int, snapshot: StateSnapshot, decision: Decision,
                        result: ActionResult) -> list[Event]:
        if self.phases.phase is not Phase.RL:
            return []
        events: list[Event] = []
        state = self.phases.state
        if decision.policy == "hrm" and self._rl is not None:
            state.rl_iterations += 1
            self._rl.record(iteration, snapshot, decision, result.reward, result.pending)
            if state.rl_iterations % self.config.rl_update_every == 0:
                stats = self._rl.update()
                if stats is not None:
                    state.rl_updates += 1
                    self.db.record_rl_update(iteration, time.time(), stats.loss,
                                             stats.mean_reward, stats.entropy, stats.kl)
                    events.append(RLUpdated(update=state.rl_updates, loss=stats.loss,
                                            mean_reward=stats.mean_reward,
                                            entropy=stats.entropy, kl=stats.kl))
                    if state.rl_updates % self.config.rl_checkpoint_every == 0:
                        events.extend(self._checkpoint_rl())
            if state.rl_iterations % self.config.rl_update_every == 0:
                events.extend(self._check_fallback(iteration))
        elif self.phases.should_retry_hrm(iteration):
            events.extend(self._retry_hrm(iteration))
        self._save()
        return events

    def _checkpoint_rl(self) -> list[Event]:
        try:
            hrm_mean, n = self.db.rolling_reward("hrm", self.config.fallback_window)
            self._rl.save(rolling_reward=hrm_mean if n else None)
        except Exception as exc:
            return [Notice(f"could not checkpoint the RL policy: {exc}", "error")]
        return []

    def _check_fallback(self, iteration: int) -> list[Event]:
        hrm_mean, n = self.db.rolling_reward("hrm", self.config.fallback_window)
        # Only decisions since the last switch count, so a retried HRM gets a fresh window.
        n = min(n, self.phases.state.rl_iterations)
        fall, reason = self.phases.should_fall_back(hrm_mean, n)
        if not fall:
            return []
        self.phases.fell_back(iteration, reason)
        events = self._checkpoint_rl()
        self._save()
        msg = f"FALLBACK to the teacher: {reason}; the HRM will retry from its best checkpoint"
        return [*events, Notice(msg, "warning"),
                PhaseChanged(old=3, new=3, hrm_active=False, reason=reason)]

    def _retry_hrm(self, iteration: int) -> list[Event]:
        self.phases.state.rl_iterations = 0
        events = self._load_hrm(iteration, resume=True, best=True)
        if self._hrm is None or any(isinstance(e, Notice) and e.level == "error"
                                    for e in events):
            self.phases.state.hrm_retry_at = iteration + self.config.fallback_cooldown
            return events
        self.phases.hrm_resumed(iteration)
        self._save()
        return [*events, Notice("the HRM takes over again from its best checkpoint"),
                PhaseChanged(old=3, new=3, hrm_active=True, reason="HRM retried")]
