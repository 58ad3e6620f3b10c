"""The ``rules`` teacher: a sensible, deterministic heuristic with a seeded dash of randomness.

It is what the agent falls back to when no language model loads, and what the tests and the
benchmark distil into the HRM. It is deliberately good but not optimal: it proposes on a
fixed schedule instead of when a proposal is likely to be approved, asks on a timer
whatever the human's recent availability, and backs off a failed search by idling. A
policy that reads the state more carefully can beat it, which is what RL is for.
"""

from __future__ import annotations

import random

from aegis_tui.actions import ACTIONS, Action, as_probs
from aegis_tui.policy.base import Decision
from aegis_tui.snapshot import StateSnapshot

PROPOSE_AFTER_ITERATIONS = 20
PROPOSE_MIN_FRESH_KNOWLEDGE = 3
ASK_AFTER_ITERATIONS = 12


def rule_action(s: StateSnapshot) -> Action:
    """The heuristic without randomness (also used by tests to label states)."""
    last = s.recent_actions[-1] if s.recent_actions else None
    if last == Action.WEB_SEARCH and s.last_search_gain < 0:
        return Action.IDLE  # back off after a failed search
    # Propose on a schedule, with something new to say; a duplicate does not restart the
    # schedule, so don't retry one straight away.
    if (s.pending_proposals == 0 and s.iterations_since_proposal >= PROPOSE_AFTER_ITERATIONS
            and s.knowledge_since_proposal >= PROPOSE_MIN_FRESH_KNOWLEDGE
            and s.fresh_ideas > 0
            and Action.PROPOSE_IMPROVEMENT not in s.recent_actions):
        return Action.PROPOSE_IMPROVEMENT
    if s.pending_questions == 0 and s.iterations_since_question >= ASK_AFTER_ITERATIONS:
        return Action.ASK_HUMAN
    if s.curiosity or s.active_goals:
        return Action.WEB_SEARCH
    return Action.IDLE


class RulesTeacher:
    kind = "teacher"
    name = "rules"

    def __init__(self, seed: int = 0, epsilon: float = 0.05) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError("epsilon must be in [0, 1]")
        self.epsilon = epsilon
        self._rng = random.Random(f"rules-teacher:{seed}")

    def _probs(self, chosen: Action) -> tuple[float, float, float, float]:
        share = self.epsilon / len(ACTIONS)
        return as_probs(
            (1.0 - self.epsilon + share) if a is chosen else share for a in ACTIONS)

    def probabilities(self, snapshot: StateSnapshot) -> tuple[float, float, float, float]:
        return self._probs(rule_action(snapshot))

    def decide(self, snapshot: StateSnapshot) -> Decision:
        chosen = rule_action(snapshot)
        probs = self._probs(chosen)
        action = self._rng.choice(ACTIONS) if self._rng.random() < self.epsilon else chosen
        return Decision(action=action, probs=probs, policy="teacher", name=self.name)

    def close(self) -> None:
        pass
