"""What became of one decision, read from the database: delayed reward and follow-ups.

A decision's immediate reward is known when it is made; what it earns later (an answer to
its question, the review of its proposal) lands in ``metrics.delayed_reward`` and in the
question or proposal record. The decision inspector reads both here, on a read-only
connection, in a thread worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from aegis_tui.storage.database import Database


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The question or proposal a decision made, as it stands now."""

    kind: str  # question | proposal
    id: int
    status: str  # pending | answered | expired | late | approved | rejected | duplicate
    reward: float  # what was credited for it (0 until credited)
    credited: bool
    text: str  # untrusted: shown literally
    answer: str | None = None  # a question's answer (untrusted)
    applied: str = ""  # an approved proposal's effect


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    found: bool  # False: the metrics row is gone (pruned) or was never committed
    reward: float = 0.0
    delayed_reward: float = 0.0
    follow_ups: tuple[FollowUp, ...] = ()


def read_outcome(db: Database, iteration: int) -> DecisionOutcome:
    row = db.metrics_at(iteration)
    follow_ups = [
        FollowUp("question", q.id, q.status, q.reward, q.credited, q.text, answer=q.answer)
        for q in db.questions_asked_at(iteration)
    ] + [
        FollowUp("proposal", p.id, p.status, p.reward, p.credited, p.text, applied=p.applied)
        for p in db.proposals_made_at(iteration)
    ]
    if row is None:
        return DecisionOutcome(False, follow_ups=tuple(follow_ups))
    return DecisionOutcome(True, float(row["reward"]), float(row["delayed_reward"]),
                           tuple(follow_ups))
