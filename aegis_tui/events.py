"""Typed events the agent publishes, and the thread-safe bus that carries them.

The agent never calls the UI: it publishes these frozen dataclasses on an ``EventBus``.
The dashboard drains the bus on a timer and repaints once per batch; the headless runner
prints the same events as log lines. The bus is bounded so a fast agent with nobody
draining it cannot grow memory; what was dropped is counted and reported.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """Base class; ``at`` is wall-clock time of publication."""

    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """A line for the event log: level is ``info``, ``warning`` or ``error``."""

    message: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class IterationDone(Event):
    iteration: int
    action: str
    policy: str  # "teacher" or "hrm"
    policy_name: str  # e.g. "gpt2", "rules", "HRM"
    reward: float
    success: bool
    knowledge_gained: int
    detail: str
    probs: tuple[float, ...]
    phase: int
    # For the decision inspector: the HRM's value estimate (None for a teacher) and the
    # state the policy saw (a StateSnapshot; a reference the agent made anyway, no copy).
    value: float | None = None
    snapshot: Any = None


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """The state after an iteration, for panes that show goals, curiosity and counters."""

    snapshot: Any  # StateSnapshot; typed loosely to keep this module a leaf
    examples: int
    phase: int
    hrm_active: bool
    running: bool
    phase_title: str = ""  # e.g. "Phase 1: Data Collection (Bootstrap from GPT-2)"
    policy_name: str = ""  # who decides now: the teacher's label or "HRM"
    world: str = ""  # the world's description, e.g. "sim (seed 0)"
    label_counts: tuple[int, ...] = ()  # teacher labels in the training data, ACTIONS order
    threshold: int = 0  # examples the next automatic training needs
    teacher_device: str = ""  # where an LM teacher runs ("cpu", "cuda", "mps"); "" for the rules


@dataclass(frozen=True, slots=True)
class KnowledgeAdded(Event):
    items: tuple[tuple[str, str, str], ...]  # (title, source, topic)


@dataclass(frozen=True, slots=True)
class QuestionAsked(Event):
    question_id: int
    text: str


@dataclass(frozen=True, slots=True)
class QuestionResolved(Event):
    question_id: int
    status: str  # answered | expired
    reward: float


@dataclass(frozen=True, slots=True)
class ProposalMade(Event):
    proposal_id: int
    kind: str
    text: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ProposalResolved(Event):
    proposal_id: int
    status: str  # approved | rejected | expired
    reward: float
    applied: str = ""


@dataclass(frozen=True, slots=True)
class PhaseChanged(Event):
    old: int
    new: int
    hrm_active: bool
    reason: str


@dataclass(frozen=True, slots=True)
class TrainingStarted(Event):
    examples: int
    epochs: int
    forced: bool


@dataclass(frozen=True, slots=True)
class TrainingProgress(Event):
    epoch: int
    epochs: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class TrainingFinished(Event):
    ok: bool
    val_accuracy: float | None
    passed_gate: bool
    message: str
    baseline_accuracy: float | None = None  # always the teacher's most frequent choice
    probe_accuracy: float | None = None  # a linear model on the same features
    teacher_decisiveness: float | None = None  # mean probability of the action it took


@dataclass(frozen=True, slots=True)
class RLUpdated(Event):
    update: int
    loss: float
    mean_reward: float
    entropy: float
    kl: float


@dataclass(frozen=True, slots=True)
class DownloadProgress(Event):
    """The teacher model is being downloaded (before the agent starts)."""

    model: str
    file: str
    file_bytes: int
    file_total: int | None
    done_bytes: int
    total_bytes: int | None
    rate_bps: float
    file_index: int
    files_total: int
    finished: bool = False
    milestone: bool = False  # worth a log line (a file started or finished, or every 5 s)


@dataclass(frozen=True, slots=True)
class RunStateChanged(Event):
    """The loop started, paused, resumed or stopped."""

    state: str  # running | paused | stopped


class EventBus:
    """A bounded, thread-safe queue of events with optional synchronous listeners."""

    def __init__(self, maxlen: int = 20_000) -> None:
        self._events: deque[Event] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Event], None]] = []
        self.dropped = 0
        self.published = 0

    def publish(self, event: Event) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
            self.published += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def drain(self, limit: int | None = None) -> list[Event]:
        with self._lock:
            if limit is None or limit >= len(self._events):
                out = list(self._events)
                self._events.clear()
            else:
                out = [self._events.popleft() for _ in range(limit)]
        return out

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` in the publishing thread for every event (keep it fast)."""
        with self._lock:
            self._listeners.append(listener)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
