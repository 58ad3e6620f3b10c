"""The four actions AEGIS can take, in the fixed order every model uses as its class index."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    WEB_SEARCH = "web_search"
    ASK_HUMAN = "ask_human"
    PROPOSE_IMPROVEMENT = "propose_improvement"
    IDLE = "idle"

    @property
    def index(self) -> int:
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
