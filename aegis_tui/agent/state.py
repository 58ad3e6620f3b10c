"""The agent's state: goals, curiosity queue, knowledge, recent actions and counters.

Goals, topics, knowledge, questions and proposals live in SQLite (``storage.database``); the
small per-iteration counters live here in memory and are written to the ``meta`` table in the
same transaction as the iteration's metrics, so a restart resumes exactly where the last
committed iteration left off. ``snapshot`` turns it all into the immutable ``StateSnapshot``
a policy decides from.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.agent.proposals import count_fresh_ideas
from aegis_tui.agent.topics import keywords, matches_goal
from aegis_tui.config import TUNABLE_SETTINGS, Config
from aegis_tui.snapshot import (
    MAX_RECENT_ACTIONS,
    MAX_SNAPSHOT_GOALS,
    MAX_SNAPSHOT_TOPICS,
    RECENT_WINDOW,
    GoalView,
    StateSnapshot,
    TopicView,
)
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import PENDING, Goal, KnowledgeItem
from aegis_tui.text import clean, normalize
from aegis_tui.world.words import stems

STATE_META_KEY = "agent_state"
# Iterations after which a searched topic is back at full priority (see Database.topics).
CURIOSITY_RECOVERY = 100
SETTINGS_META_KEY = "settings"


@dataclass(slots=True)
class Counters:
    """Everything small that changes every iteration; persisted as one JSON value."""

    iteration: int = 0
    questions_asked: int = 0
    questions_answered: int = 0
    web_searches: int = 0
    failed_searches: int = 0
    improvements_proposed: int = 0
    improvements_approved: int = 0
    duplicate_proposals: int = 0
    goals_completed: int = 0
    knowledge_since_proposal: int = 0
    last_proposal_iteration: int = 0
    last_question_iteration: int = 0
    last_search_gain: int = 0
    recent_actions: list[str] = field(default_factory=list)
    recent_search_gains: list[int] = field(default_factory=list)

    @classmethod
    def from_meta(cls, raw: Any) -> Counters:
        out = cls()
        if not isinstance(raw, dict):
            return out
        for name in asdict(out):
            value = raw.get(name)
            if name in ("recent_actions", "recent_search_gains"):
                if isinstance(value, list):
                    kept = [v for v in value if (v in ACTION_NAMES if name == "recent_actions"
                                                 else isinstance(v, int))]
                    setattr(out, name, kept[-MAX_RECENT_ACTIONS:])
            elif isinstance(value, int) and not isinstance(value, bool):
                setattr(out, name, value)
        return out


class AgentState:
    """State owned by the agent thread. Not thread-safe by itself: one agent drives it."""

    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config
        self.counters = Counters.from_meta(db.get_meta(STATE_META_KEY))
        self.settings = self._load_settings()
        self._recent: deque[str] = deque(self.counters.recent_actions, maxlen=MAX_RECENT_ACTIONS)
        if not db.goals():
            for text in config.goals:
                self.add_goal(text, source="config")

    # -- settings a proposal may change -----------------------------------------------------
    def _load_settings(self) -> dict[str, int]:
        stored = self.db.get_meta(SETTINGS_META_KEY, {})
        out = {key: int(getattr(self.config, key)) for key in TUNABLE_SETTINGS}
        if isinstance(stored, dict):
            for key, (low, high) in TUNABLE_SETTINGS.items():
                value = stored.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
                    out[key] = value
        return out

    def set_setting(self, key: str, value: int) -> None:
        low, high = TUNABLE_SETTINGS[key]
        if not low <= value <= high:
            raise ValueError(f"{key} must stay within {low}..{high}")
        self.settings[key] = value
        self.db.set_meta(SETTINGS_META_KEY, self.settings)

    # -- goals -----------------------------------------------------------------------------
    def add_goal(self, text: str, source: str) -> int | None:
        text = clean(text, 200)
        if not text:
            return None
        return self.db.add_goal(text, normalize(text), keywords(text), source, now=0.0)

    def learn(self, items: list[KnowledgeItem]) -> tuple[list[KnowledgeItem], list[Goal]]:
        """Store knowledge (deduplicated by source, then by title); advance matching goals.

        Returns the items that were new and the goals this completed.
        """
        keyed = [(knowledge_key(item), item) for item in items]
        new = self.db.add_knowledge(keyed)
        if not new:
            return [], []
        self.counters.knowledge_since_proposal += len(new)
        complete_at = self.settings["goal_complete_at"]
        completed: list[Goal] = []
        present = [stems(f"{item.title} {item.text}") for item in new]
        for goal in self.db.goals(active_only=True):
            hits = sum(1 for item_stems in present if matches_goal(goal.keywords, item_stems))
            if not hits:
                continue
            goal.matched += hits
            done = goal.matched >= complete_at
            self.db.update_goal(goal.id, goal.matched, done, now=item_time(new))
            if done:
                self.counters.goals_completed += 1
                completed.append(goal)
        return new, completed

    # -- recent actions and counters -------------------------------------------------------
    @property
    def iteration(self) -> int:
        return self.counters.iteration

    def record_action(self, action: str) -> None:
        self._recent.append(action)
        self.counters.recent_actions = list(self._recent)

    def record_search_gain(self, gain: int) -> None:
        self.counters.last_search_gain = gain
        gains = self.counters.recent_search_gains
        gains.append(gain)
        del gains[:-MAX_RECENT_ACTIONS]

    def save(self) -> None:
        """Persist the counters (call inside the iteration's transaction)."""
        self.db.set_meta(STATE_META_KEY, asdict(self.counters))

    # -- the snapshot a policy sees --------------------------------------------------------
    def snapshot(self, iteration: int) -> StateSnapshot:
        c = self.counters
        complete_at = self.settings["goal_complete_at"]
        active_first = self.db.goals(limit=MAX_SNAPSHOT_GOALS)  # active first, then by id
        topics = self.db.topics(MAX_SNAPSHOT_TOPICS, iteration=iteration,
                                recovery=CURIOSITY_RECOVERY)
        snapshot = StateSnapshot(
            iteration=iteration,
            goals=tuple(GoalView(text=g.text, keywords=g.keywords,
                                 progress=round(g.progress(complete_at), 4),
                                 completed=g.completed) for g in active_first),
            curiosity=tuple(TopicView(topic=t.topic, priority=round(t.priority, 4),
                                      times_searched=t.times_searched,
                                      provenance=t.provenance) for t in topics),
            curiosity_size=self.db.topic_count(),
            knowledge_count=self.db.knowledge_count(),
            recent_actions=tuple(self._recent),
            pending_questions=self.db.count_questions(PENDING),
            pending_proposals=self.db.count_proposals(PENDING),
            questions_asked=c.questions_asked,
            questions_answered=c.questions_answered,
            web_searches=c.web_searches,
            failed_searches=c.failed_searches,
            improvements_proposed=c.improvements_proposed,
            improvements_approved=c.improvements_approved,
            goals_completed=c.goals_completed,
            knowledge_since_proposal=c.knowledge_since_proposal,
            iterations_since_proposal=iteration - c.last_proposal_iteration,
            iterations_since_question=iteration - c.last_question_iteration,
            last_search_gain=c.last_search_gain,
            recent_failed_searches=c.recent_search_gains[-RECENT_WINDOW:].count(-1),
        )
        # Part of the agent's own state: whether it has anything new to propose.
        fresh = count_fresh_ideas(snapshot, self.settings, c.recent_search_gains,
                                  self.db.proposal_exists)
        return replace(snapshot, fresh_ideas=fresh)


def knowledge_key(item: KnowledgeItem) -> str:
    """What makes two knowledge items the same: their source, else their normalised title."""
    source = item.source.strip()
    if "://" in source or source.startswith("pydoc:"):
        return "src:" + source.casefold()
    return "title:" + normalize(item.title) + "|" + normalize(item.text)[:200]


def item_time(items: list[KnowledgeItem]) -> float:
    return max((i.created_at for i in items), default=0.0)
