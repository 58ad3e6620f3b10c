"""The bench's "tuned heuristic": a small family of hand-written rules and a grid search.

It answers "how close does RL get to what a careful person writes by hand?". Each rule set
reads only what the HRM reads (the snapshot's counters and recent actions) and is
deterministic:

1. after a failed search, idle (when ``idle_after_failure``);
2. propose when an idea is fresh, fewer than ``max_pending_proposals`` proposals wait,
   and at least ``propose_min_knowledge`` items were learnt since the last proposal (the
   reviewer wants fresh findings);
3. ask when no question is pending and ``ask_every`` iterations passed (0: never);
4. search while fewer than ``max_recent_searches`` of the last five actions were
   searches (the search rate limit);
5. otherwise ask if no question is pending, else idle.

``tune`` scores every combination of ``GRID`` on one seed and returns the best; the bench
tunes on a seed of its own and reports the chosen rules on the held-out seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from aegis_tui.actions import ACTIONS, Action, as_probs
from aegis_tui.policy.base import Decision
from aegis_tui.snapshot import StateSnapshot

RATE_LOOKBACK = 5  # the sim's rate limit counts this many earlier iterations and the current

GRID: dict[str, tuple[object, ...]] = {
    "propose_min_knowledge": (3, 6, 10),
    "max_pending_proposals": (1, 2),
    "max_recent_searches": (3, 4, 5),
    "ask_every": (0, 30),
    "idle_after_failure": (False,),
}


@dataclass(frozen=True, slots=True)
class HeuristicRules:
    propose_min_knowledge: int = 6
    max_pending_proposals: int = 1
    max_recent_searches: int = 4
    ask_every: int = 10
    idle_after_failure: bool = True

    def action(self, s: StateSnapshot) -> Action:
        last = s.recent_actions[-1] if s.recent_actions else None
        if self.idle_after_failure and last == Action.WEB_SEARCH and s.last_search_gain < 0:
            return Action.IDLE
        if (s.fresh_ideas > 0 and s.pending_proposals < self.max_pending_proposals
                and s.knowledge_since_proposal >= self.propose_min_knowledge):
            return Action.PROPOSE_IMPROVEMENT
        if (self.ask_every and s.pending_questions == 0
                and s.iterations_since_question >= self.ask_every):
            return Action.ASK_HUMAN
        recent = s.recent_actions[-RATE_LOOKBACK:].count(Action.WEB_SEARCH.value)
        if recent < self.max_recent_searches and (s.curiosity or s.active_goals):
            return Action.WEB_SEARCH
        return Action.ASK_HUMAN if s.pending_questions == 0 else Action.IDLE


class HeuristicPolicy:
    """``HeuristicRules`` as a ``Policy`` (deterministic)."""

    kind = "teacher"

    def __init__(self, rules: HeuristicRules, name: str = "tuned heuristic") -> None:
        self.rules = rules
        self.name = name

    def probabilities(self, snapshot: StateSnapshot) -> tuple[float, float, float, float]:
        chosen = self.rules.action(snapshot)
        return as_probs(1.0 if a is chosen else 0.0 for a in ACTIONS)

    def decide(self, snapshot: StateSnapshot) -> Decision:
        probs = self.probabilities(snapshot)
        return Decision(action=self.rules.action(snapshot), probs=probs, policy="teacher",
                        name=self.name)

    def close(self) -> None:
        pass


def grid() -> list[HeuristicRules]:
    names = list(GRID)
    # The grid mixes ints and bools per field, which one dict type cannot say.
    return [HeuristicRules(**dict(zip(names, values, strict=True)))  # type: ignore[arg-type]
            for values in itertools.product(*(GRID[n] for n in names))]


def tune(workdir: Path, seed: int, iterations: int,
         score: Callable[[Path, int, HeuristicPolicy, int], float],
         log: Callable[[str], None] = lambda _: None) -> tuple[HeuristicRules, float]:
    """The best rule set of ``GRID`` on ``seed`` (by ``score``), and its score."""
    best: tuple[float, HeuristicRules] | None = None
    for k, rules in enumerate(grid()):
        value = score(workdir / "tune", seed, HeuristicPolicy(rules), iterations)
        if best is None or value > best[0]:
            best = (value, rules)
            log(f"tuned heuristic: {k + 1}/{len(grid())} new best {value:+.3f} {asdict(rules)}")
    assert best is not None
    return best[1], best[0]
