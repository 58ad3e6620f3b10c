"""Answering questions and reviewing proposals, from any process.

The dashboard, ``aegis-tui answer``/``review`` in another terminal, and the sim world's
simulated people all resolve records through these two functions, which only write the
record's new status to SQLite. The running agent notices resolved-but-uncredited records on
its next iteration (``Executor.settle``), applies them and credits the reward to the
decision that earned it. So the agent never waits on a person, and a person never needs the
agent to be running.

A person gets a fair window whatever the world's clock (the sim's runs at one second per
iteration): a question on someone's screen is *held* (``hold_question``) and does not
expire until it is released or its hold, measured in wall-clock time, runs out. An answer
that still comes too late is kept as knowledge without reward (``answer_or_keep``), never
dropped.
"""

from __future__ import annotations

import time

from aegis_tui.agent.questions import check_answer
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import ANSWERED, APPROVED, LATE, REJECTED, Proposal, Question

HOLD_META_KEY = "questions_on_screen"  # {question id: wall-clock time the hold ends}


class ResolutionError(ValueError):
    """The record does not exist or is no longer pending; the message says which."""


def answer_question(db: Database, question_id: int, raw: str | bytes, *,
                    now: float | None = None) -> str:
    """Store an answer; returns the text as stored. Raises ``AnswerRefused``/``ResolutionError``."""
    text = check_answer(raw)
    if not db.resolve_question(question_id, ANSWERED, text, time.time() if now is None else now):
        raise ResolutionError(_not_pending("question", question_id, db.question(question_id)))
    return text


def answer_or_keep(db: Database, question_id: int, raw: str | bytes, *,
                   now: float | None = None) -> tuple[str, str]:
    """A person's answer: ``("answered", text)``, or ``("late", text)`` when the question
    had expired, in which case the agent learns the answer as knowledge but credits no
    reward (the decision that asked was already credited with the expiry).

    Raises ``AnswerRefused`` (bad text) or ``ResolutionError`` (no such question, or it
    already has an answer).
    """
    text = check_answer(raw)
    now = time.time() if now is None else now
    if db.resolve_question(question_id, ANSWERED, text, now):
        return ANSWERED, text
    if db.store_late_answer(question_id, text, now):
        return LATE, text
    raise ResolutionError(_not_pending("question", question_id, db.question(question_id)))


def _live_holds(raw: object, now: float) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    return {k: float(v) for k, v in raw.items()
            if isinstance(k, str) and k.isdigit() and isinstance(v, int | float) and v > now}


def hold_question(db: Database, question_id: int, seconds: float, *,
                  now: float | None = None) -> None:
    """A person is reading the question: it does not expire for ``seconds`` of real time."""
    now = time.time() if now is None else now
    with db.transaction():
        holds = _live_holds(db.get_meta(HOLD_META_KEY), now)
        holds[str(question_id)] = now + seconds
        db.set_meta(HOLD_META_KEY, holds)


def release_question(db: Database, question_id: int, *, now: float | None = None) -> None:
    """The person moved on: the question expires by the usual rule again."""
    now = time.time() if now is None else now
    with db.transaction():
        raw = db.get_meta(HOLD_META_KEY)
        if raw is None:
            return
        holds = _live_holds(raw, now)
        holds.pop(str(question_id), None)
        db.set_meta(HOLD_META_KEY, holds or None)


def held_questions(db: Database, *, now: float | None = None) -> set[int]:
    """Questions on someone's screen now (their holds have not run out)."""
    now = time.time() if now is None else now
    return {int(k) for k in _live_holds(db.get_meta(HOLD_META_KEY), now)}


def review_proposal(db: Database, proposal_id: int, approve: bool, *, reviewer: str = "human",
                    now: float | None = None) -> str:
    """Approve or reject a pending proposal; returns the new status."""
    status = APPROVED if approve else REJECTED
    if not db.resolve_proposal(proposal_id, status, reviewer,
                               time.time() if now is None else now):
        raise ResolutionError(_not_pending("proposal", proposal_id, db.proposal(proposal_id)))
    return status


def expire_overdue(db: Database, now: float, question_expiry_s: float,
                   proposal_expiry_s: float, *, held: set[int] | None = None) -> int:
    """Expire questions (but the ``held`` ones) and proposals nobody resolved in time;
    returns how many."""
    return (db.expire_questions(now - question_expiry_s, now, keep=held or ())
            + db.expire_proposals(now - proposal_expiry_s, now))


def _not_pending(kind: str, record_id: int, record: Question | Proposal | None) -> str:
    if record is None:
        return f"there is no {kind} #{record_id}"
    return f"{kind} #{record_id} is already {record.status}"
