"""The autonomous loop: snapshot, decide, act, score, log, publish, sleep; and its controls.

``Agent.run`` blocks the calling thread (the dashboard runs it in a thread worker, the
headless runner in the main thread). Every control (``pause``, ``resume``, ``stop``,
``request_training``) is thread-safe and takes effect promptly: the loop sleeps on an event
that each control sets, so ``stop`` lands within a fraction of a second even in the middle of
a long ``think_interval``. The loop never calls the UI; it publishes events on the bus.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import traceback
from dataclasses import dataclass

from aegis_tui.agent.executor import ActionExecutor, ActionResult
from aegis_tui.agent.learning import LearningController
from aegis_tui.agent.phases import PhaseState
from aegis_tui.agent.state import AgentState
from aegis_tui.agent.what_if import WhatIf, evaluate
from aegis_tui.config import Config
from aegis_tui.events import (
    Event,
    EventBus,
    IterationDone,
    Notice,
    RunStateChanged,
    StateChanged,
)
from aegis_tui.paths import DataPaths
from aegis_tui.policy.base import Decision, Policy
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.database import Database
from aegis_tui.training.example_log import Example, ExampleLog, Outcome
from aegis_tui.world.base import World

log = logging.getLogger("aegis")

MAX_CONSECUTIVE_ERRORS = 5
# While a training child runs, a loop at --think-interval 0 would take a whole core of a
# small machine from it; a few milliseconds between iterations leave the child the CPU
# it needs (on 2 cores, training otherwise ran several times slower).
MIN_PACE_WHILE_TRAINING_S = 0.005
STATE_EVENT_INTERVAL_S = 0.1  # the dashboard repaints at ~10 Hz, more is wasted work
METRICS_KEEP = 50_000
QUESTIONS_KEEP = 2_000  # settled questions kept (answers live on as knowledge)
DUPLICATES_KEEP = 1_000  # duplicate proposals kept (the original of each stays)
TRAINING_REQUEST_META_KEY = "training_requested"
CHOICE_META_KEY = "gate_choice"  # "adopt" | "keep_teacher", from ``aegis-tui adopt`` & co.
CHOICES = ("adopt", "keep_teacher")


@dataclass(slots=True)
class RunSummary:
    iterations: int
    stopped_by: str  # "limit" | "stop" | "error"
    message: str = ""


class Agent:
    def __init__(self, *, config: Config, paths: DataPaths, db: Database, examples: ExampleLog,
                 world: World, teacher: Policy, bus: EventBus, teacher_label: str,
                 stop_event: threading.Event | None = None) -> None:
        self.config = config
        self.paths = paths
        self.db = db
        self.examples = examples
        self.world = world
        self.teacher = teacher
        self.teacher_label = teacher_label
        self.bus = bus
        self.state = AgentState(db, config)
        self.executor = ActionExecutor(self.state, world, config)
        self.learning = LearningController(config=config, paths=paths, db=db, bus=bus,
                                           examples=examples, teacher_label=teacher_label,
                                           world=world.description)
        self._emergency_teacher = RulesTeacher(seed=config.seed)
        # Shared with the world, so a live search waiting out its spacing also stops promptly.
        self._stop = stop_event or threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._wake = threading.Event()
        self._force_requested = threading.Event()
        self._choice: str | None = None  # set by ``choose`` from another thread
        self._last_state_event = 0.0
        self._consecutive_errors = 0
        # Serialises the teacher between the loop and ``what_if`` (an LM's tokenizer is not
        # thread-safe); the loop takes it only while the teacher decides.
        self._teacher_lock = threading.Lock()

    # -- thread-safe controls --------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def iteration(self) -> int:
        return self.state.counters.iteration

    def pause(self) -> None:
        if not self.paused:
            self._running.clear()
            self._wake.set()
            self.bus.publish(RunStateChanged(state="paused"))

    def resume(self) -> None:
        if self.paused:
            self._running.set()
            self._wake.set()
            self.bus.publish(RunStateChanged(state="running"))

    def toggle_pause(self) -> bool:
        """Pause or resume; returns True when now paused."""
        if self.paused:
            self.resume()
        else:
            self.pause()
        return self.paused

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def examples_collected(self) -> int:
        return self.examples.count

    @property
    def hrm_deciding(self) -> bool:
        return self.learning.phases.hrm_deciding

    def can_force_training(self) -> tuple[bool, str]:
        """Whether training could be forced now, and if not, why."""
        return self.learning.can_force(self.examples.count)

    def phase_state(self) -> PhaseState:
        """A copy of the phase record (the gate's last result, who decides, the trial)."""
        return copy.deepcopy(self.learning.phases.state)

    def choose(self, choice: str) -> None:
        """Adopt the trained HRM (``"adopt"``) or keep the teacher (``"keep_teacher"``);
        applied by the agent's thread on its next iteration."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}")
        self._choice = choice
        self._wake.set()

    def request_training(self) -> tuple[bool, str]:
        """Ask for training now; answers at once whether it can start (checked again later)."""
        ok, why = self.learning.can_force(self.examples.count)
        if not ok:
            return False, why
        self._force_requested.set()
        self._wake.set()
        return True, f"training requested on {self.examples.count} examples"

    def what_if(self, snapshot: StateSnapshot, *, teacher: bool = True) -> WhatIf:
        """What the teacher (unless ``teacher=False``) and the imitation policy would
        choose in ``snapshot``.

        For the decision inspector; call it from any thread but the agent's (it takes as
        long as one teacher decision, ~0.5 s for GPT-2 on a CPU). The teacher is shared
        with the loop under a lock, which the loop holds only while the teacher decides,
        so an HRM-deciding agent never waits on it (and the inspector asks the teacher
        only about HRM decisions). The imitation model is frozen and its forward pass
        changes nothing, so it needs no lock.
        """
        choice = None
        if teacher:
            with self._teacher_lock:
                choice = evaluate(self.teacher, snapshot)
        imitation = self.learning.imitation_policy()
        return WhatIf(teacher=choice, teacher_name=self.teacher_label,
                      imitation=evaluate(imitation, snapshot) if imitation else None)

    # -- the loop --------------------------------------------------------------------------
    def run(self, max_iterations: int | None = None) -> RunSummary:
        """Run until ``stop()``, an unrecoverable error, or ``max_iterations`` more iterations."""
        start = self.iteration
        stopped_by, message = "stop", ""
        try:
            self._publish(self.learning.start(self.iteration))
            self.bus.publish(RunStateChanged(state="paused" if self.paused else "running"))
            self._publish_state(force=True)
            while not self._stop.is_set():
                if max_iterations is not None and self.iteration - start >= max_iterations:
                    stopped_by = "limit"
                    break
                self._service_requests()
                if self.paused:
                    self._publish(self.learning.poll(self.iteration))
                    self._wake.wait(0.2)
                    self._wake.clear()
                    continue
                current = self.iteration + 1
                try:
                    self._iterate()
                    self._consecutive_errors = 0
                except Exception as exc:  # keep running: one bad iteration must not end a long run
                    self._consecutive_errors += 1
                    log.error("iteration %d failed:\n%s", current, traceback.format_exc())
                    self.bus.publish(Notice(f"iteration {current} failed: "
                                            f"{type(exc).__name__}: {exc}", "error"))
                    if self._consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                        stopped_by = "error"
                        message = (f"stopped after {MAX_CONSECUTIVE_ERRORS} failed iterations in "
                                   f"a row; last error: {type(exc).__name__}: {exc}")
                        self.bus.publish(Notice(message, "error"))
                        break
                pace = self.config.think_interval
                if self.learning.training_running:
                    pace = max(pace, MIN_PACE_WHILE_TRAINING_S)
                self._sleep(pace)
        finally:
            self._publish(self.learning.shutdown(self.iteration))
            self.examples.sync()
            self._publish_state(force=True, running=False)
            self.bus.publish(RunStateChanged(state="stopped"))
        return RunSummary(self.iteration - start, stopped_by, message)

    def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(min(left, 0.25))
            self._wake.clear()
            if self.paused or self._force_requested.is_set():
                return

    def _service_requests(self) -> None:
        requested = self._force_requested.is_set()
        if not requested and self.db.get_meta(TRAINING_REQUEST_META_KEY):
            requested = True  # ``aegis-tui train`` from another terminal
        if requested:
            self._force_requested.clear()
            self.db.set_meta(TRAINING_REQUEST_META_KEY, None)
            self._publish(self.learning.force(self.iteration))
        choice, self._choice = self._choice, None
        stored = self.db.get_meta(CHOICE_META_KEY)
        if choice is None and stored in CHOICES:
            choice = stored  # ``aegis-tui adopt`` / ``keep-teacher`` from another terminal
        if stored is not None:
            self.db.set_meta(CHOICE_META_KEY, None)
        if choice is not None:
            self._publish(self.learning.choose(self.iteration, choice))

    def _decide(self, policy: Policy, snapshot: StateSnapshot) -> Decision:
        try:
            if policy is self.teacher:
                with self._teacher_lock:
                    return policy.decide(snapshot)
            return policy.decide(snapshot)
        except Exception as exc:  # a broken model must not stop the agent
            log.error("policy %s failed:\n%s", policy.name, traceback.format_exc())
            self.bus.publish(Notice(f"{policy.name} failed to decide ({type(exc).__name__}: "
                                    f"{exc}); the rules heuristic decided instead", "error"))
            return self._emergency_teacher.decide(snapshot)

    def _iterate(self) -> None:
        i = self.iteration + 1
        self.world.advance(i)
        credits, events = self.executor.settle(i)
        self.learning.credit(credits)
        events.extend(self.learning.poll(i))
        snapshot = self.state.snapshot(i)
        hrm = self.learning.active_policy()
        decision = self._decide(hrm if hrm is not None else self.teacher, snapshot)
        result = self.executor.execute(decision.action, snapshot, i)
        self.state.record_action(decision.action.value)
        self.state.counters.iteration = i
        phase = int(self.learning.phases.phase)
        with self.db.transaction():
            self.db.record_iteration(i, time.time(), phase, decision.policy,
                                     decision.action.value, result.reward,
                                     result.knowledge_gained, result.success)
            self.state.save()
        if i % 1000 == 0:
            self.db.prune_metrics(METRICS_KEEP)
            self.db.prune_resolved(QUESTIONS_KEEP, DUPLICATES_KEEP)
        events.append(IterationDone(
            iteration=i, action=decision.action.value, policy=decision.policy,
            policy_name=decision.name, reward=result.reward, success=result.success,
            knowledge_gained=result.knowledge_gained, detail=result.detail,
            probs=tuple(decision.probs), phase=phase, value=decision.value,
            snapshot=snapshot))
        events.extend(result.events)
        if decision.policy == "teacher":
            events.extend(self._log_example(i, snapshot, decision, result))
        events.extend(self.learning.after_iteration(i, snapshot, decision, result))
        self._publish(events)
        self._publish_state()
        if self.config.wait_for_training:
            self._wait_for_training(i)

    def _wait_for_training(self, iteration: int) -> None:
        """Hold the loop while the training child runs (``wait_for_training``)."""
        while self.learning.training_running and not self._stop.is_set():
            self._publish(self.learning.poll(iteration))
            self._wake.wait(0.05)
            self._wake.clear()
        self._publish(self.learning.poll(iteration))

    def _log_example(self, i: int, snapshot: StateSnapshot, decision: Decision,
                     result: ActionResult) -> list[Event]:
        count = self.examples.append(Example(
            iteration=i, time=time.time(), state=snapshot, action=decision.action.value,
            probs=decision.probs, policy=decision.name,
            teacher_model=decision.model, teacher_revision=decision.revision,
            outcome=Outcome(success=result.success, knowledge_gained=result.knowledge_gained,
                            details=result.detail[:300]),
            reward=result.reward))
        events: list[Event] = []
        if count % self.config.autosave_every == 0:
            self.examples.sync()
            events.append(Notice(f"Collected {count} training examples (auto-saved)"))
        events.extend(self.learning.maybe_trigger(i))
        return events

    # -- events ----------------------------------------------------------------------------
    def _publish(self, events: list[Event]) -> None:
        for event in events:
            self.bus.publish(event)

    def _publish_state(self, *, force: bool = False, running: bool | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_state_event < STATE_EVENT_INTERVAL_S:
            return
        self._last_state_event = now
        phases = self.learning.phases
        self.bus.publish(StateChanged(
            snapshot=self.state.snapshot(self.iteration), examples=self.examples.count,
            phase=int(phases.phase), hrm_active=phases.hrm_deciding,
            running=(not self.paused) if running is None else running,
            phase_title=self.learning.title,
            policy_name="HRM" if phases.hrm_deciding else self.teacher_label,
            world=self.world.description, label_counts=tuple(self.examples.label_counts),
            threshold=phases.examples_needed(),
            teacher_device=str(getattr(self.teacher, "device", ""))))

