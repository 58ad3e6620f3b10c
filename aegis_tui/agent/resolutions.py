"""Answering questions and reviewing proposals, from any process.

The dashboard, ``aegis-tui answer``/``review`` in another terminal, and the sim world's
simulated people all resolve records through these two functions, which only write the
record's new status to SQLite. The running agent notices resolved-but-uncredited records on
its next iteration (``AgentCore.settle``), applies them and credits the reward to the
decision that earned it. So the agent never waits on a person, and a person never needs the
agent to be running.
"""

from __future__ import annotations

import time

from aegis_tui.agent.questions import check_answer
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import ANSWERED, APPROVED, REJECTED


class ResolutionError(ValueError):
    """The record does not exist or is no longer pending; the message says which."""


def answer_question(db: Database, question_id: int, raw: str | bytes, *,
                    now: float | None = None) -> str:
    """Store an answer; returns the text as stored. Raises ``AnswerRefused``/``ResolutionError``."""
    text = check_answer(raw)
    if not db.resolve_question(question_id, ANSWERED, text, time.time() if now is None else now):
        raise ResolutionError(_not_pending("question", question_id, db.question(question_id)))
    return text


def review_proposal(db: Database, proposal_id: int, approve: bool, *, reviewer: str = "human",
                    now: float | None = None) -> str:
    """Approve or reject a pending proposal; returns the new status."""
    status = APPROVED if approve else REJECTED
    if not db.resolve_proposal(proposal_id, status, reviewer,
                               time.time() if now is None else now):
        raise ResolutionError(_not_pending("proposal", proposal_id, db.proposal(proposal_id)))
    return status


def expire_overdue(db: Database, now: float, question_expiry_s: float,
                   proposal_expiry_s: float) -> int:
    """Expire questions and proposals nobody resolved in time; returns how many."""
    return (db.expire_questions(now - question_expiry_s, now)
            + db.expire_proposals(now - proposal_expiry_s, now))


def _not_pending(kind: str, record_id: int, record: object) -> str:
    if record is None:
        return f"there is no {kind} #{record_id}"
    return f"{kind} #{record_id} is already {record.status}"  # type: ignore[attr-defined]
