"""The four actions AEGIS can take, in the fixed order every model uses as its class index."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import cast


class Action(StrEnum):
    WEB_SEARCH = "web_search"
    ASK_HUMAN = "ask_human"
    PROPOSE_IMPROVEMENT = "propose_improvement"
    IDLE = "idle"

    @property
    def class_index(self) -> int:
        """The action's position in ``ACTIONS``: the models' class index."""
        return ACTIONS.index(self)

    @classmethod
    def parse(cls, value: str) -> Action:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown action {value!r}; expected one of {', '.join(a.value for a in cls)}"
            ) from None


ACTIONS: tuple[Action, ...] = tuple(Action)
ACTION_NAMES: tuple[str, ...] = tuple(a.value for a in ACTIONS)

Probs = tuple[float, float, float, float]  # one probability per action, in ACTIONS order


def as_probs(values: Iterable[float]) -> Probs:
    """``values`` as a ``Probs`` tuple; ``ValueError`` unless there is one per action."""
    out = tuple(float(v) for v in values)
    if len(out) != len(ACTIONS):
        raise ValueError(f"need {len(ACTIONS)} probabilities, one per action, got {len(out)}")
    return cast(Probs, out)
