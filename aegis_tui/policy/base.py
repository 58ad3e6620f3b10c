"""What every policy returns, and the protocol it implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aegis_tui.actions import ACTIONS, Action
from aegis_tui.snapshot import StateSnapshot


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    probs: tuple[float, float, float, float]  # over ACTIONS, sums to 1
    policy: str  # "teacher" or "hrm"
    name: str  # shown to people: "gpt2", "rules", "HRM"
    value: float | None = None  # the HRM's value estimate, when it has one
    model: str = ""  # an LM teacher's model id or folder, recorded with the example
    revision: str = ""  # the commit that model came from (hub models)

    def __post_init__(self) -> None:
        if len(self.probs) != len(ACTIONS):
            raise ValueError("probs must have one entry per action")


class Policy(Protocol):
    kind: str  # "teacher" or "hrm"
    name: str

    def decide(self, snapshot: StateSnapshot) -> Decision: ...

    def probabilities(self, snapshot: StateSnapshot) -> tuple[float, float, float, float]:
        """What ``decide`` would sample from in ``snapshot``, without deciding: no random
        draw is taken and nothing the next ``decide`` depends on changes."""
        ...

    def close(self) -> None: ...
