"""The agent's state as a policy sees it: an immutable, plain-data snapshot.

Every policy (rules teacher, LM teacher, HRM) decides from a ``StateSnapshot`` and every
training example stores one, so this module is shared by ``agent/``, ``policy/`` and
``training/``. ``to_dict``/``from_dict`` give the msgpack/JSON form; ``from_dict`` checks
the shape so a foreign record is rejected with a clear reason instead of crashing later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aegis_tui.actions import ACTION_NAMES

MAX_RECENT_ACTIONS = 10
MAX_SNAPSHOT_GOALS = 8
MAX_SNAPSHOT_TOPICS = 10
RECENT_WINDOW = 5  # the span of "recent" searches and failures, in actions and searches


@dataclass(frozen=True, slots=True)
class GoalView:
    text: str
    keywords: tuple[str, ...]
    progress: float
    completed: bool


@dataclass(frozen=True, slots=True)
class TopicView:
    topic: str
    priority: float
    times_searched: int
    provenance: str


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """What the agent knows about itself just before a decision."""

    iteration: int
    goals: tuple[GoalView, ...] = ()
    curiosity: tuple[TopicView, ...] = ()  # highest priority first, at most MAX_SNAPSHOT_TOPICS
    curiosity_size: int = 0
    knowledge_count: int = 0
    recent_actions: tuple[str, ...] = ()  # oldest first, at most MAX_RECENT_ACTIONS
    pending_questions: int = 0
    pending_proposals: int = 0
    questions_asked: int = 0
    questions_answered: int = 0
    web_searches: int = 0
    failed_searches: int = 0
    improvements_proposed: int = 0
    improvements_approved: int = 0
    goals_completed: int = 0
    knowledge_since_proposal: int = 0
    iterations_since_proposal: int = 0
    iterations_since_question: int = 0
    last_search_gain: int = 0  # new items from the latest search; -1 when it failed
    fresh_ideas: int = 0  # improvements it could propose now that were never proposed (<= 3)
    recent_failed_searches: int = 0  # of the last RECENT_WINDOW searches, how many failed
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active_goals(self) -> tuple[GoalView, ...]:
        return tuple(g for g in self.goals if not g.completed)

    @property
    def recent_searches(self) -> int:
        """How many of the last ``RECENT_WINDOW`` actions were searches (rate limits)."""
        return self.recent_actions[-RECENT_WINDOW:].count("web_search")

    def to_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "goals": [
                {"text": g.text, "keywords": list(g.keywords), "progress": g.progress,
                 "completed": g.completed}
                for g in self.goals
            ],
            "curiosity": [
                {"topic": t.topic, "priority": t.priority, "times_searched": t.times_searched,
                 "provenance": t.provenance}
                for t in self.curiosity
            ],
            "curiosity_size": self.curiosity_size,
            "knowledge_count": self.knowledge_count,
            "recent_actions": list(self.recent_actions),
            "pending_questions": self.pending_questions,
            "pending_proposals": self.pending_proposals,
            "questions_asked": self.questions_asked,
            "questions_answered": self.questions_answered,
            "web_searches": self.web_searches,
            "failed_searches": self.failed_searches,
            "improvements_proposed": self.improvements_proposed,
            "improvements_approved": self.improvements_approved,
            "goals_completed": self.goals_completed,
            "knowledge_since_proposal": self.knowledge_since_proposal,
            "iterations_since_proposal": self.iterations_since_proposal,
            "iterations_since_question": self.iterations_since_question,
            "last_search_gain": self.last_search_gain,
            "fresh_ideas": self.fresh_ideas,
            "recent_failed_searches": self.recent_failed_searches,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Any) -> StateSnapshot:
        """Rebuild a snapshot, raising ``ValueError`` naming the first field of the wrong shape."""
        if not isinstance(data, dict):
            raise ValueError(f"state must be a map, got {type(data).__name__}")
        try:
            goals = tuple(
                GoalView(
                    text=_str(g, "text"),
                    keywords=tuple(_str_list(g.get("keywords", []), "goal keywords")),
                    progress=_num(g, "progress"),
                    completed=bool(g.get("completed", False)),
                )
                for g in _list(data.get("goals", []), "goals")
            )
            topics = tuple(
                TopicView(
                    topic=_str(t, "topic"),
                    priority=_num(t, "priority"),
                    times_searched=_int(t, "times_searched", 0),
                    provenance=str(t.get("provenance", "")),
                )
                for t in _list(data.get("curiosity", []), "curiosity")
            )
            recent = tuple(_str_list(data.get("recent_actions", []), "recent_actions"))
            for action in recent:
                if action not in ACTION_NAMES:
                    raise ValueError(f"recent_actions holds unknown action {action!r}")
            extra = data.get("extra", {})
            if not isinstance(extra, dict):
                raise ValueError("extra must be a map")
            ints = {
                name: _int(data, name, 0)
                for name in (
                    "curiosity_size", "knowledge_count", "pending_questions",
                    "pending_proposals", "questions_asked", "questions_answered",
                    "web_searches", "failed_searches", "improvements_proposed",
                    "improvements_approved", "goals_completed", "knowledge_since_proposal",
                    "iterations_since_proposal", "iterations_since_question",
                    "last_search_gain", "fresh_ideas", "recent_failed_searches",
                )
            }
            return cls(
                iteration=_int(data, "iteration"),
                goals=goals,
                curiosity=topics,
                recent_actions=recent[-MAX_RECENT_ACTIONS:],
                extra=extra,
                **ints,
            )
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"state has the wrong shape: {exc}") from None


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list")
    for item in value:
        if not isinstance(item, dict) and name in ("goals", "curiosity"):
            raise ValueError(f"{name} entries must be maps")
    return list(value)


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return list(value)


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _num(data: dict[str, Any], key: str) -> float:
    value = data.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return float(value)


_MISSING = object()


def _int(data: dict[str, Any], key: str, default: Any = _MISSING) -> int:
    value = data.get(key, default)
    if value is _MISSING:
        raise ValueError(f"{key} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value
