"""The world interface every implementation (live, offline, sim) provides.

A world never raises from ``search``: any failure is a ``SearchResponse`` with
``ok=False`` and a one-line ``error``, which the agent scores as a failed search.
Humans and reviewers are asynchronous: the agent records questions and proposals, tells
the world about them, and later ``poll`` returns whatever the world resolved (the sim's
simulated human and reviewer). Real humans answer through the dashboard or the CLI instead,
so the live and offline worlds return nothing from ``poll``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SearchResult:
    title: str
    body: str
    url: str  # where it came from: a URL, a doc reference, or a sim:// id
    topics: tuple[str, ...] = ()  # related topics the world itself can name (optional hint)


@dataclass(frozen=True, slots=True)
class SearchResponse:
    ok: bool
    results: tuple[SearchResult, ...] = ()
    error: str = ""  # why it failed, one line, for the event log
    cached: bool = False
    notice: str = ""  # something the person running the agent should hear once (a warning)


@dataclass(frozen=True, slots=True)
class HumanAnswer:
    question_id: int
    text: str
    responder: str = "sim-human"


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    proposal_id: int
    approved: bool
    reviewer: str = "sim-reviewer"
    note: str = ""


@dataclass(slots=True)
class Resolutions:
    answers: list[HumanAnswer] = field(default_factory=list)
    reviews: list[ReviewDecision] = field(default_factory=list)


class World:
    """Base class: subclasses override ``search`` and, if they simulate people, the rest."""

    name: str = "world"
    simulates_humans: bool = False

    @property
    def description(self) -> str:
        """A short label for the dashboard header, e.g. ``sim (seed 3)``."""
        return self.name

    def now(self) -> float:
        """The world's clock in seconds; the sim keeps a virtual one for determinism."""
        return time.time()

    def advance(self, iteration: int) -> None:
        """Called once at the start of every iteration (the sim's clock ticks here)."""

    def search(self, query: str, max_results: int) -> SearchResponse:
        raise NotImplementedError

    def question_asked(self, question_id: int, text: str, topic: str, iteration: int) -> None:
        """A question was recorded; the sim may schedule an answer."""

    def proposal_made(self, proposal_id: int, kind: str, text: str, iteration: int,
                      knowledge_count: int) -> None:
        """A (non-duplicate) proposal was recorded; the sim may schedule a review."""

    def poll(self, iteration: int) -> Resolutions:
        """Answers and reviews that became due; empty for worlds with real humans."""
        return Resolutions()

    def close(self) -> None:
        """Release sockets, files, connections."""
