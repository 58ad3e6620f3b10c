"""What other policies would have chosen in a state: the decision inspector's comparison.

``Agent.what_if`` fills a ``WhatIf`` with the teacher's and the imitation policy's
probabilities for a snapshot, through ``Policy.probabilities`` (no sampling, no state
changed). A policy that fails is reported in words, never raised into the UI.
"""

from __future__ import annotations

from dataclasses import dataclass

from aegis_tui.policy.base import Policy
from aegis_tui.snapshot import StateSnapshot


@dataclass(frozen=True, slots=True)
class Choice:
    """One policy's probabilities over ``ACTIONS`` in a state, or why there are none."""

    probs: tuple[float, ...] | None
    error: str = ""

    @property
    def best(self) -> int | None:
        """Index of the most probable action (what a greedy policy picks)."""
        if not self.probs:
            return None
        return max(range(len(self.probs)), key=self.probs.__getitem__)


@dataclass(frozen=True, slots=True)
class WhatIf:
    teacher: Choice | None  # None when not asked (the teacher made the decision itself)
    teacher_name: str
    imitation: Choice | None  # None before Phase 3: there is no imitation model yet


def evaluate(policy: Policy, snapshot: StateSnapshot) -> Choice:
    try:
        return Choice(tuple(float(p) for p in policy.probabilities(snapshot)))
    except Exception as exc:  # a broken model must not take the inspector down
        return Choice(None, f"{type(exc).__name__}: {exc}")
