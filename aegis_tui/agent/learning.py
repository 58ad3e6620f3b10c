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

from aegis_tui.agent.comparison import Stretch
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
from aegis_tui.policy.hrm_policy import HRMPolicy
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.database import Database
from aegis_tui.training.example_log import ExampleLog
from aegis_tui.training.rl_session import RLSession
from aegis_tui.training.supervisor import TrainingSupervisor

if TYPE_CHECKING:
    from aegis_tui.agent.executor import ActionResult, Credit

log = logging.getLogger("aegis")


class LearningController:
    def __init__(self, *, config: Config, paths: DataPaths, db: Database, bus: EventBus,
                 examples: ExampleLog, teacher_label: str, world: str = "") -> None:
        self.config = config
        self.world = world  # the world's description: a teacher reference is per world
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
        self._judged_at = 0  # the HRM decisions (rl_iterations) at the last fall-back check

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
            state = self.phases.state
            if (self.phases.hrm_deciding and state.reference is not None
                    and state.reference_world and self.world
                    and state.reference_world != self.world):
                why = (f"the teacher's reference was measured on {state.reference_world}, "
                       f"this run is on {self.world}")
                events.append(Notice(self.phases.measure_teacher(iteration, why), "warning"))
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
        return [TrainingStarted(examples=count, epochs=self.config.imitation.epochs, forced=forced),
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
        passed, ok, message = event.passed_gate, event.ok, event.message
        if ok:  # loaded even below the gate: a reward trial may hand it the decisions
            loaded = self._load_hrm(iteration, resume=False)
            if any(isinstance(e, Notice) and e.level == "error" for e in loaded):
                passed, ok, message = False, False, "the trained HRM could not be loaded"
            out.extend(loaded)
        old = self.phases.phase
        # The teacher's reference: its latest decisions, just before the HRM decides.
        reference = self._stretch("teacher", self.config.fallback_window)
        reason = self.phases.training_finished(
            iteration, ok, event.val_accuracy, passed, message,
            baseline=event.baseline_accuracy, probe=event.probe_accuracy,
            decisiveness=event.teacher_decisiveness, examples_now=self.examples.count)
        if self.phases.hrm_deciding:
            self.phases.state.set_reference(reference, self.world)
        else:
            self._rl = self._hrm = None
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
        out.append(Notice(reason, "info" if self.phases.hrm_deciding else "warning"))
        return out

    # -- the person's choice after failed gates --------------------------------------------
    def choose(self, iteration: int, choice: str) -> list[Event]:
        """``"adopt"``: the trained HRM decides whatever its agreement; ``"keep_teacher"``."""
        old = self.phases.phase
        if choice == "keep_teacher":
            if self._supervisor is not None and self._supervisor.running:
                return [Notice("training is running; keep the teacher once it has finished",
                               "warning")]
            reason = self.phases.keep_teacher(iteration)
            self._rl = self._hrm = None
        elif choice == "adopt":
            if self._supervisor is not None and self._supervisor.running:
                return [Notice("training is running; adopt the HRM once it has finished",
                               "warning")]
            if not self.paths.trained_checkpoint.exists():
                return [Notice("there is no trained HRM to adopt yet; train one first (t)",
                               "warning")]
            loaded = self._load_hrm(iteration, resume=False)
            if any(isinstance(e, Notice) and e.level == "error" for e in loaded):
                return loaded
            reference = self._stretch("teacher", self.config.fallback_window)
            reason = self.phases.adopt(iteration)
            self.phases.state.set_reference(reference, self.world)
        else:
            return [Notice(f"unknown choice {choice!r}", "warning")]
        self._save()
        return [Notice(reason), PhaseChanged(old=int(old), new=int(self.phases.phase),
                                             hrm_active=self.phases.hrm_deciding,
                                             reason=reason)]

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

        return HRMPolicy(session.trainer.reference, sample=False)

    def _load_hrm(self, iteration: int, *, resume: bool, best: bool = False) -> list[Event]:
        """Load the HRM (and its RL state) from disk; on failure keep the teacher."""
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
        every = self.config.rl.update_every
        if decision.policy == "hrm" and self._rl is not None:
            state.rl_iterations += 1
            self._rl.record(iteration, snapshot, decision, result.reward, result.pending)
            if state.rl_iterations % every == 0:
                stats = self._rl.update()
                if stats is not None:
                    state.rl_updates += 1
                    self.db.record_rl_update(iteration, time.time(), stats.loss,
                                             stats.mean_reward, stats.entropy, stats.kl)
                    events.append(RLUpdated(update=state.rl_updates, loss=stats.loss,
                                            mean_reward=stats.mean_reward,
                                            entropy=stats.entropy, kl=stats.kl))
                    if state.rl_updates % self.config.rl.checkpoint_every == 0:
                        events.extend(self._checkpoint_rl())
                events.extend(self._compare(iteration))
        elif self.phases.should_retry_hrm(iteration):
            events.extend(self._retry_hrm(iteration))
        self._save()
        return events

    def _stretch(self, policy: str, window: int, since: int | None = None) -> Stretch | None:
        return Stretch.of(policy, self.db.policy_rewards(policy, window, since))

    def _hrm_stretch(self) -> Stretch | None:
        """The HRM's rolling reward: its last ``fallback_window`` decisions since it took over."""
        window = min(self.config.fallback_window, self.phases.state.rl_iterations)
        return self._stretch("hrm", window) if window > 0 else None

    def _compare(self, iteration: int) -> list[Event]:
        """End a reward trial, fade the pull to imitation, or fall back (every update)."""
        state = self.phases.state
        hrm = self._hrm_stretch()
        reference = state.reference
        if state.trial:
            if hrm is None or hrm.n < self.config.fallback_window:
                return []
            reason = self.phases.trial_verdict(iteration, hrm, reference)
            events: list[Event] = [Notice(reason, "info" if state.hrm_active else "warning")]
            if not state.hrm_active:
                self._rl = self._hrm = None
            self._save()
            return [*events, PhaseChanged(old=3, new=int(self.phases.phase),
                                          hrm_active=state.hrm_active, reason=reason)]
        self._fade_kl(hrm, reference)
        # Judged once per window of HRM decisions, not on every overlapping one: checking
        # the same noisy mean every ten iterations would find a bad stretch by chance.
        if state.rl_iterations < self._judged_at:  # the HRM took over afresh
            self._judged_at = 0
        if state.rl_iterations < self._judged_at + self.config.fallback_window:
            return []
        self._judged_at = state.rl_iterations
        fall, reason = self.phases.should_fall_back(hrm)
        if not fall:
            return []
        self.phases.fell_back(iteration, reason, hrm)
        events = self._checkpoint_rl()
        self._save()
        msg = (f"FALLBACK to the teacher: {reason}; the teacher decides and is measured "
               f"again until iteration {state.hrm_retry_at}")
        return [*events, Notice(msg, "warning"),
                PhaseChanged(old=3, new=3, hrm_active=False, reason=reason)]

    def _fade_kl(self, hrm: Stretch | None, reference: Stretch | None) -> None:
        """Full pull to the imitation policy until the HRM leads the teacher, none once it
        leads by ``rl.kl_fade`` (a share of the teacher's reward, at least of 1.0)."""
        fade = self.config.rl.kl_fade
        if self._rl is None or fade <= 0 or hrm is None or reference is None:
            return
        if hrm.n < self.config.fallback_window:
            return
        lead = (hrm.mean - reference.mean) / (fade * max(abs(reference.mean), 1.0))
        self._rl.trainer.set_kl_scale(1.0 - lead)

    def _checkpoint_rl(self) -> list[Event]:
        try:
            hrm = self._hrm_stretch()
            self._rl.save(rolling_reward=hrm.mean if hrm is not None else None)
        except Exception as exc:
            return [Notice(f"could not checkpoint the RL policy: {exc}", "error")]
        return []

    def _retry_hrm(self, iteration: int) -> list[Event]:
        state = self.phases.state
        # The teacher's rolling reward now: its last decisions since it took over again.
        teacher_now = self._stretch("teacher", self.config.fallback_window,
                                    since=state.fallen_back_at)
        best, reason = self.phases.hrm_resumed(iteration, teacher_now, self.world)
        events = self._load_hrm(iteration, resume=True, best=best)
        if self._hrm is None or any(isinstance(e, Notice) and e.level == "error"
                                    for e in events):
            state.hrm_active = False
            state.hrm_retry_at = iteration + self.config.fallback_cooldown
            self._save()
            return events
        self._save()
        return [*events, Notice(reason),
                PhaseChanged(old=3, new=3, hrm_active=True, reason=reason)]
