"""The dashboard's state, folded from agent events; plain Python so it is tested directly.

The app drains the event bus on a timer and hands each batch to ``DashboardModel.apply``.
Bursts coalesce here: only the newest ``StateChanged`` is kept, ``IterationDone`` events
become counters, and the event log receives at most ``max_log_lines`` lines per batch
(every notice, phase and training line is kept; iteration lines fill what room is left).
``apply`` returns a ``Batch`` naming the panes that changed, so the app repaints only those.
The text the panes show is built here too (``phase_progress``), from cleaned strings.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.agent.event_log import describe
from aegis_tui.agent.metrics_view import EpochPoint, History, MetricsView
from aegis_tui.agent.phases import below_gate_reason
from aegis_tui.config import Config
from aegis_tui.events import (
    DownloadProgress,
    Event,
    IterationDone,
    KnowledgeAdded,
    Notice,
    PhaseChanged,
    ProposalMade,
    ProposalResolved,
    QuestionAsked,
    QuestionResolved,
    RLUpdated,
    RunStateChanged,
    StateChanged,
    TrainingFinished,
    TrainingProgress,
    TrainingStarted,
)
from aegis_tui.policy.model_download import human_bytes
from aegis_tui.text import clean

# Pane names used in ``Batch.changed``.
HEADER, GOALS, CURIOSITY, ACTIONS_PANE, PHASE, CURVES, TRAINING, KNOWLEDGE = (
    "header", "goals", "curiosity", "actions", "phase", "curves", "training", "knowledge")

# Run states the header shows; the agent's own are running | paused | stopped.
STARTING, RUNNING, PAUSED, STOPPING, STOPPED = (
    "starting", "running", "paused", "stopping", "stopped")

_LEVEL_NAMES = {logging.ERROR: "error", logging.WARNING: "warning"}
_QUIET = StateChanged | KnowledgeAdded  # never a log line


# Decisions the inspector can open: this run's latest, each with the snapshot it was made in.
DECISIONS_KEEP = 500
DECISIVENESS_WINDOW = 200  # teacher decisions the decisiveness is averaged over


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str  # info | warning | error | iteration | skipped
    text: str
    iteration: int | None = None  # an iteration line: the decision it describes


@dataclass(slots=True)
class TrainingView:
    """The current (or last) imitation training run as the events told it."""

    active: bool = False
    forced: bool = False
    examples: int = 0
    epochs_total: int = 0
    epochs: list[EpochPoint] = field(default_factory=list)
    finished: TrainingFinished | None = None


@dataclass(slots=True)
class Batch:
    changed: set[str] = field(default_factory=set)
    log: list[LogLine] = field(default_factory=list)
    questions: list[QuestionAsked] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    training_started: bool = False
    events: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """What the phase pane shows: a bar (``total`` None hides it) and words."""

    progress: float
    total: float | None
    words: str


class DashboardModel:
    def __init__(self, config: Config, *, max_log_lines: int = 40,
                 knowledge_keep: int = 30) -> None:
        self.config = config
        self.max_log_lines = max(2, max_log_lines)
        self.state: StateChanged | None = None
        self.run_state = STARTING
        self.iteration = 0
        self.counts: dict[str, list[int]] = {"teacher": [0] * len(ACTION_NAMES),
                                             "hrm": [0] * len(ACTION_NAMES)}
        self.knowledge: deque[tuple[str, str, str]] = deque(maxlen=knowledge_keep)
        self.training = TrainingView()
        self.rl_updates = 0
        self.last_rl: RLUpdated | None = None
        self.metrics: MetricsView | None = None
        self.pending_override: tuple[int, int] | None = None  # set after the user resolves
        self.decisions: deque[IterationDone] = deque(maxlen=DECISIONS_KEEP)
        # How decisive the teacher is: the probability it gave each action it took.
        self.teacher_choice_probs: deque[float] = deque(maxlen=DECISIVENESS_WINDOW)
        self.events_seen = 0
        self.download: DownloadProgress | None = None  # the teacher model's, while starting
        self._logged_run_state = ""

    # -- inputs ----------------------------------------------------------------------------
    def load_history(self, history: History) -> set[str]:
        """Start from what the database already holds (before any event of this run)."""
        for policy, counts in history.action_counts.items():
            if policy in self.counts and len(counts) == len(ACTION_NAMES):
                self.counts[policy] = list(counts)
        self.knowledge.clear()
        self.knowledge.extend(history.latest_knowledge)
        return {ACTIONS_PANE, KNOWLEDGE}

    def set_metrics(self, view: MetricsView) -> set[str]:
        changed = {CURVES, PHASE}
        old = self.metrics
        self.metrics = view
        state = view.phase_state
        self.rl_updates = max(self.rl_updates, state.rl_updates)
        if view.epochs and not self.training.active and not self.training.epochs:
            # A restart: show the last run's curve until a new run starts.
            self.training.epochs = list(view.epochs)
            self.training.epochs_total = self.config.imitation.epochs
            changed.add(TRAINING)
        if old is not None and old.curves == view.curves and old.rolling == view.rolling \
                and old.phase_state == view.phase_state:
            changed.discard(CURVES)
        return changed

    def set_run_state(self, run_state: str) -> set[str]:
        if run_state == self.run_state:
            return set()
        self.run_state = run_state
        return {HEADER}

    def apply(self, events: Iterable[Event]) -> Batch:
        batch = Batch()
        events = list(events)
        batch.events = len(events)
        self.events_seen += len(events)
        latest_state: StateChanged | None = None
        for event in events:
            match event:
                case StateChanged():
                    latest_state = event
                case IterationDone():
                    self.decisions.append(event)
                    if event.policy == "teacher" and event.action in ACTION_NAMES:
                        self.teacher_choice_probs.append(
                            event.probs[ACTION_NAMES.index(event.action)]
                            if len(event.probs) == len(ACTION_NAMES) else 0.0)
                    counts = self.counts.get(event.policy)
                    if counts is not None and event.action in ACTION_NAMES:
                        counts[ACTION_NAMES.index(event.action)] += 1
                    self.iteration = max(self.iteration, event.iteration)
                    batch.changed.update((ACTIONS_PANE, HEADER))
                case KnowledgeAdded():
                    for item in event.items:
                        if len(item) == 3:
                            self.knowledge.appendleft((str(item[0]), str(item[1]),
                                                       str(item[2])))
                    batch.changed.add(KNOWLEDGE)
                case RunStateChanged():
                    if self.run_state != STOPPING or event.state == STOPPED:
                        self.run_state = event.state
                    batch.changed.add(HEADER)
                case TrainingStarted():
                    self.training = TrainingView(active=True, forced=event.forced,
                                                 examples=event.examples,
                                                 epochs_total=event.epochs)
                    batch.training_started = True
                    batch.changed.update((PHASE, TRAINING))
                case TrainingProgress():
                    self.training.active = True
                    self.training.epochs_total = event.epochs
                    self.training.epochs.append(EpochPoint(
                        epoch=event.epoch, loss=event.loss,
                        train_accuracy=event.train_accuracy, val_accuracy=event.val_accuracy))
                    batch.changed.update((PHASE, TRAINING))
                case TrainingFinished():
                    self.training.active = False
                    self.training.finished = event
                    batch.changed.update((PHASE, TRAINING))
                case RLUpdated():
                    self.rl_updates = max(self.rl_updates, event.update)
                    self.last_rl = event
                    batch.changed.add(PHASE)
                case PhaseChanged():
                    batch.changed.update((PHASE, HEADER, CURVES))
                case DownloadProgress():
                    self.download = event
                    batch.changed.add(PHASE)
                case QuestionAsked():
                    batch.questions.append(event)
                case Notice(level="error"):
                    batch.errors.append(clean(event.message, 200))
                case QuestionResolved() | ProposalResolved() | ProposalMade():
                    pass
        if latest_state is not None:
            self.state = latest_state
            self.pending_override = None
            self.iteration = max(self.iteration, latest_state.snapshot.iteration)
            batch.changed.update((HEADER, GOALS, CURIOSITY, PHASE, ACTIONS_PANE, KNOWLEDGE))
        batch.log = self._log_lines(events)
        return batch

    def _log_lines(self, events: list[Event]) -> list[LogLine]:
        """At most ``max_log_lines`` lines: all the rare ones, then the newest iterations."""
        keep = self.max_log_lines
        rare = [i for i, e in enumerate(events)
                if not isinstance(e, IterationDone | _QUIET)][-keep:]
        iterations = [i for i, e in enumerate(events) if isinstance(e, IterationDone)]
        room = max(0, keep - len(rare) - 1)  # one line says what was skipped
        shown = iterations[-room:] if room else []
        skipped = len(iterations) - len(shown)
        lines: list[LogLine] = []
        if skipped:
            lines.append(LogLine("skipped", f"… {skipped} iteration lines skipped "
                                            "(every line is in aegis.log)"))
        for i in sorted(rare + shown):
            event = events[i]
            if isinstance(event, RunStateChanged):
                if event.state == self._logged_run_state:
                    continue  # pause() before run() and run() itself both say "paused"
                self._logged_run_state = event.state
            described = describe(event)
            if described is None:
                continue
            level, text = described
            if isinstance(event, IterationDone):
                lines.append(LogLine("iteration", clean(text, 400), event.iteration))
            else:
                lines.append(LogLine(_LEVEL_NAMES.get(level, "info"), clean(text, 400)))
        return lines

    def decision(self, iteration: int) -> IterationDone | None:
        """The decision made at ``iteration``, if it is among the ones kept."""
        for event in reversed(self.decisions):
            if event.iteration == iteration:
                return event
        return None

    # -- derived views ---------------------------------------------------------------------
    @property
    def phase(self) -> int:
        if self.state is not None:
            return self.state.phase
        if self.metrics is not None:
            return int(self.metrics.phase_state.phase)
        return 1

    @property
    def examples(self) -> int:
        return self.state.examples if self.state is not None else 0

    @property
    def threshold(self) -> int:
        if self.state is not None and self.state.threshold:
            return self.state.threshold
        return self.config.collect_threshold

    @property
    def label_counts(self) -> tuple[int, ...]:
        if self.state is not None and len(self.state.label_counts) == len(ACTION_NAMES):
            return tuple(self.state.label_counts)
        return (0,) * len(ACTION_NAMES)

    def phase_progress(self) -> Progress:
        """The bar and the words of the phase pane for the current phase."""
        phase = self.phase
        training = self.training
        if self.state is None and self.run_state == STARTING:
            download = self.download
            if download is not None and not download.finished:
                return _download_progress(download)
            words = "starting: opening the data directory"
            if self.config.teacher != "rules":
                # Loading a language model takes seconds (minutes on a first download).
                words += f" and loading the teacher model {clean(self.config.teacher_model, 60)}"
            return Progress(0, None, words + "…")
        if phase == 2 or training.active:
            total = training.epochs_total or self.config.imitation.epochs
            if training.epochs:
                e = training.epochs[-1]
                words = (f"epoch {e.epoch}/{total}, loss {e.loss:.2f}, "
                         f"val acc {e.val_accuracy:.0%}")
                return Progress(min(e.epoch, total), total, words)
            return Progress(0, total, f"training on {training.examples} examples, "
                                      f"epoch 0/{total}")
        if phase == 3:
            return self._rl_progress()
        examples, threshold = self.examples, max(1, self.threshold)
        words = (f"examples collected {examples}/{threshold} "
                 f"({min(1.0, examples / threshold):.1%})")
        decisive = self.teacher_decisiveness
        if decisive is not None:
            words += f"; the teacher takes the action it rates {decisive:.0%} likely on average"
        state = self.metrics.phase_state if self.metrics is not None else None
        finished = training.finished  # this run's latest result; else the stored one
        if finished is not None:
            val, passed = finished.val_accuracy, finished.passed_gate
            baseline, probe = finished.baseline_accuracy, finished.probe_accuracy
        elif state is not None:
            val, passed = state.last_val_accuracy, state.passed_gate
            baseline, probe = state.last_baseline_accuracy, state.last_probe_accuracy
        else:
            val, passed, baseline, probe = None, False, None, None
        if state is not None and state.keep_teacher:
            words += "; teacher kept by hand (no training starts on its own)"
        elif val is not None and not passed:
            words += "; last training " + below_gate_reason(
                val, self.config.accuracy_gate, baseline, probe)
            words += "; h: adopt the HRM anyway or keep the teacher"
        elif finished is not None and not finished.ok:
            words += "; last training failed"
        return Progress(min(examples, threshold), threshold, words)

    @property
    def teacher_decisiveness(self) -> float | None:
        """Mean probability the teacher gave the actions it took (its recent decisions)."""
        probs = self.teacher_choice_probs
        return sum(probs) / len(probs) if probs else None

    def _rl_progress(self) -> Progress:
        hrm_deciding = self.state.hrm_active if self.state is not None else True
        rolling = self.metrics.rolling if self.metrics is not None else {}
        state = self.metrics.phase_state if self.metrics is not None else None
        window = self.config.fallback_window
        hrm = f"HRM {_signed(rolling.get('hrm'))} (its last {window})"
        reference = state.reference if state is not None else None
        if reference is not None:
            teacher = (f"teacher {reference.mean:+.2f} ({reference.n} decisions, iterations "
                       f"{reference.first}-{reference.last})")
        else:
            teacher = f"teacher {_signed(rolling.get('teacher'))} (its last {window})"
        rewards = f"rolling reward {hrm} vs {teacher}"
        if not hrm_deciding and state is not None:
            # The bar counts the teacher's stretch until the HRM decides again.
            span = max(1, state.hrm_retry_at - state.fallen_back_at)
            waited = self.iteration - state.fallen_back_at
            why = "measuring the teacher" if state.measuring_teacher else "after a fall-back"
            words = (f"teacher deciding ({why}): measured afresh until iteration "
                     f"{state.hrm_retry_at}; {rewards}")
            return Progress(min(max(waited, 0), span), span, words)
        if state is not None and state.trial:
            done = min(window, max(0, self.iteration - state.trial_started_at))
            words = (f"reward trial after {state.gate_failures} runs below the gate: HRM "
                     f"decides {done}/{window}; {rewards}")
            return Progress(done, window, words)
        every = max(1, self.config.rl.checkpoint_every)
        done = self.rl_updates
        words = f"RL updates {done}, {rewards}"
        return Progress(done % every, every, words)

    @property
    def pending(self) -> tuple[int, int]:
        if self.pending_override is not None:
            return self.pending_override
        if self.state is None:
            return 0, 0
        snap = self.state.snapshot
        return int(snap.pending_questions), int(snap.pending_proposals)


def _download_progress(d: DownloadProgress) -> Progress:
    """The teacher model's download: the bar over all bytes (or the file's), file and rate."""
    file = clean(d.file, 40) or "file list"
    words = f"downloading {clean(d.model, 40)}: {file} ({d.file_index}/{d.files_total}), "
    if d.total_bytes:
        words += f"{human_bytes(d.done_bytes)} of {human_bytes(d.total_bytes)}"
        bar: tuple[float, float | None] = (min(d.done_bytes, d.total_bytes), d.total_bytes)
    elif d.file_total:
        words += f"{human_bytes(d.file_bytes)} of {human_bytes(d.file_total)}"
        bar = (min(d.file_bytes, d.file_total), d.file_total)
    else:
        words += human_bytes(d.done_bytes)
        bar = (0, None)
    words += f", {human_bytes(d.rate_bps)}/s"
    return Progress(bar[0], bar[1], words)


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
