"""Plain records stored in ``agent.sqlite3``: goals, topics, knowledge, questions, proposals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Lifecycle states shared by questions and proposals.
PENDING = "pending"
ANSWERED = "answered"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
LATE = "late"  # a question answered after it expired (and was credited): knowledge only
DUPLICATE = "duplicate"  # a proposal equal to a pending or earlier one; never reviewed


@dataclass(slots=True)
class Goal:
    id: int
    text: str
    keywords: tuple[str, ...]
    matched: int
    completed: bool
    source: str
    created_at: float

    def progress(self, complete_at: int) -> float:
        return 1.0 if self.completed else min(1.0, self.matched / max(1, complete_at))


@dataclass(slots=True)
class Topic:
    topic: str
    priority: float
    provenance: str
    times_searched: int
    added_at: float
    last_searched: int | None = None


@dataclass(frozen=True, slots=True)
class KnowledgeItem:
    topic: str
    title: str
    text: str
    source: str
    created_at: float = 0.0
    iteration: int = 0
    id: int = 0


@dataclass(slots=True)
class Question:
    id: int
    text: str
    topic: str
    status: str
    answer: str | None
    asked_at: float
    iteration: int
    resolved_at: float | None = None
    credited: bool = False
    reward: float = 0.0


@dataclass(slots=True)
class Proposal:
    id: int
    kind: str
    payload: dict[str, Any]
    text: str
    norm: str
    status: str
    created_at: float
    iteration: int
    resolved_at: float | None = None
    credited: bool = False
    reward: float = 0.0
    applied: str = ""
    reviewer: str = ""


@dataclass(slots=True)
class TrainingRun:
    id: int
    started_at: float
    finished_at: float | None
    examples: int
    forced: bool
    status: str  # running | passed | below_gate | failed | cancelled
    val_accuracy: float | None
    train_accuracy: float | None
    message: str
    epochs: list[dict[str, Any]] = field(default_factory=list)
