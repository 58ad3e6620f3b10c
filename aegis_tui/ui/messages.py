"""Messages the dashboard's worker threads post to the app (posting is thread-safe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from aegis_tui.agent.metrics_view import History, MetricsView


@dataclass
class AgentReady(Message):
    """The runtime is open (lock taken, teacher loaded); the agent is about to run."""

    history: History
    earlier: list[tuple[str, str]]  # (level, line) from the end of aegis.log, before this run


@dataclass
class AgentFailed(Message):
    """The runtime could not be opened; the dashboard exits with this one-line reason."""

    reason: str
    exit_code: int


@dataclass
class AgentFinished(Message):
    """``agent.run`` returned and the runtime is closed (lock released)."""

    summary: Any  # RunSummary, or None when run() raised
    error: str = ""


@dataclass
class MetricsLoaded(Message):
    """A fresh read of the reward curves and phase state (about once a second)."""

    view: MetricsView

    def can_replace(self, message: Message) -> bool:
        # Only the newest read matters; an older one still queued is dropped.
        return isinstance(message, MetricsLoaded)
