"""Sim worlds unlike the default, for measuring learning where it was not tuned.

Each variant changes what a good policy must pace: the reviewer (how fast, how generous,
how much fresh knowledge it wants), the human (how often there), the web (how much there
is, how strict the rate limit) or the reward table itself. The development of the RL
settings used the default world; these are checked, not tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aegis_tui.world.sim import SimParams


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    description: str
    params: SimParams = field(default_factory=SimParams)
    config: dict[str, Any] = field(default_factory=dict)  # e.g. a different reward table


VARIANTS: tuple[Variant, ...] = (
    Variant("quick-reviewer", "a quick, generous reviewer and a rarely available human",
            SimParams(review_delay_min=1, review_delay_max=4, approve_prob_fresh=0.95,
                      fresh_knowledge_for_approval=4, human_available_fraction=0.1)),
    Variant("scarce-web", "small pools, slow publishing and a stricter rate limit",
            SimParams(pool_min=3, pool_max=10, publish_every_min=60, publish_every_max=150,
                      rate_limit=3)),
    Variant("other-rewards", "approvals pay less, answers and knowledge more, duplicates "
                             "cost more",
            config={"rewards": {"improvement_approved": 5.0, "question_answered": 2.0,
                                "knowledge_per_item": 1.5, "duplicate_proposal": -5.0}}),
    Variant("strict-reviewer", "a slow reviewer who wants more fresh findings",
            SimParams(review_delay_min=10, review_delay_max=40,
                      fresh_knowledge_for_approval=10, approve_prob_fresh=0.75)),
)

DEFAULT = Variant("default", "the default sim world")


def variant(name: str) -> Variant:
    for v in (DEFAULT, *VARIANTS):
        if v.name == name:
            return v
    raise KeyError(name)
